// The conformance echo app with gRPC: examples/echo (HTTP on PORTS) plus the
// weft.test.Echo gRPC service (grpc-echo.proto) on GRPC_PORT (default 7070),
// h2c. Echo answers with the pod's name and the request metadata it received,
// which is what the Mesh-GRPC conformance scenarios check (upstream's echo
// server reports its hostname and request headers the same way).
//   Workload: command: [node, conformance/apps/grpc-echo-app.mjs]  env: { PORTS: "8080", GRPC_PORT: "7070" }
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
// The HTTP echo app of examples/ (from the source tree, or from dist/conformance/apps/ in a built copy).
{
  const here = new URL('.', import.meta.url);
  const src = new URL('../../examples/echo/echo.mjs', here);
  await import(existsSync(fileURLToPath(src)) ? src.href : new URL('../../../examples/echo/echo.mjs', here).href);
}

const host = process.env.POD_IP || '127.0.0.1';
const port = Number(process.env.GRPC_PORT || 7070);
const pod = process.env.POD_NAME || '';

const def = protoLoader.loadSync(fileURLToPath(new URL('./grpc-echo.proto', import.meta.url)), { longs: Number, defaults: true, bytes: Buffer });
const Echo = grpc.loadPackageDefinition(def).weft.test.Echo;

function metadataOf(md) {
  const out = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

const server = new grpc.Server();
server.addService(Echo.service, {
  Echo: (call, cb) => cb(null, { text: call.request.text, seq: call.request.seq, pod, metadata: metadataOf(call.metadata) }),
  Slow: (call, cb) => {
    const timer = setTimeout(() => cb(null, { pod }), call.request.delayMs || 5000);
    call.on('cancelled', () => clearTimeout(timer));
  },
  ServerStream: (call) => {
    for (let i = 0; i < (call.request.count || 0); i++) call.write({ seq: i, pod });
    call.end();
  },
  ClientStream: (call, cb) => {
    let n = 0;
    call.on('data', () => n++);
    call.on('end', () => cb(null, { count: n, pod }));
  },
  Bidi: (call) => {
    call.on('data', (m) => call.write({ seq: m.seq, text: m.text, pod }));
    call.on('end', () => call.end());
  },
});
server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`grpc echo: ${err.message}`);
    process.exit(1);
  }
  console.log(`grpc echo ${pod} listening on ${host}:${port}`);
});
process.on('SIGTERM', () => server.forceShutdown());
process.on('SIGINT', () => server.forceShutdown());

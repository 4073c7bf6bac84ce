// The app behind the authorization tests: it counts everything that reaches
// it, so a test can prove that nothing denied ever got through.
//   HTTP on PORTS (default 8080,8081): answers {pod, port, path, peer}.
//   gRPC weft.test.Echo on GRPC_PORT (default 9000), h2c.
//   TCP echo on TCP_PORT (default 6000): echoes bytes back.
//   COUNT_PORT (default 8099): GET /counts → {http, grpc, tcp, tcpBytes}; not in the mesh (tests call it directly).
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const host = process.env.POD_IP || '127.0.0.1';
const pod = process.env.POD_NAME || '';
const ports = (process.env.PORTS || '8080,8081').split(',').map(Number).filter((p) => p > 0);
const counts = { http: 0, grpc: 0, tcp: 0, tcpBytes: 0, paths: {} };

for (const port of ports) {
  http
    .createServer((req, res) => {
      counts.http++;
      const path = (req.url ?? '/').split('?')[0];
      counts.paths[path] = (counts.paths[path] ?? 0) + 1;
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ pod, port, path, peer: req.headers['x-weft-peer-identity'] ?? '' }));
      });
    })
    .listen(port, host);
}

http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(counts));
  })
  .listen(Number(process.env.COUNT_PORT || 8099), host);

net
  .createServer((s) => {
    counts.tcp++;
    s.on('data', (d) => {
      counts.tcpBytes += d.length;
      s.write(d);
    });
    s.on('error', () => {});
  })
  .listen(Number(process.env.TCP_PORT || 6000), host);

const def = protoLoader.loadSync(fileURLToPath(new URL('../../conformance/apps/grpc-echo.proto', import.meta.url)), { longs: Number, defaults: true, bytes: Buffer });
const Echo = grpc.loadPackageDefinition(def).weft.test.Echo;
const server = new grpc.Server();
const unimpl = (call, cb) => cb({ code: grpc.status.UNIMPLEMENTED });
server.addService(Echo.service, {
  Echo: (call, cb) => {
    counts.grpc++;
    cb(null, { text: call.request.text, pod });
  },
  Slow: unimpl,
  ServerStream: (call) => call.end(),
  ClientStream: unimpl,
  Bidi: (call) => call.end(),
});
server.bindAsync(`${host}:${Number(process.env.GRPC_PORT || 9000)}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`authz app: ${err.message}`);
    process.exit(1);
  }
});

// A test app that fails on purpose and remembers every try it saw, for the
// resilience end-to-end tests (issue 14). HTTP on PORTS (default 8080); with
// GRPC_PORT set, also the weft.test.Echo gRPC service (conformance/apps/grpc-echo.proto).
//
//   GET|POST /fail/<id>?n=N&code=C   answers C (default 503) to the first N tries of <id>, then 200
//   GET|POST /always/<code>          always answers <code>
//   GET      /tries/<id>             [{at, method, bodyBytes, bodySha256, pod}] of every try of <id>
//   GET      /count                  {requests} seen since start (or since POST /reset)
//   POST     /mode?fail=C            from now on every request but /mode, /count, /tries answers C (0: heal)
//   POST     /reset                  forgets counts and tries
//   anything else                    200 with {pod, path}; ?delay=ms answers after ms
//   gRPC Echo: text "fail:<n>:<id>" answers UNAVAILABLE to the first n calls of <id>, then OK
//              (with pod); the tries are under /tries/grpc-<id>.
//
// Call /tries, /count, /mode and /reset at POD_IP:PORT directly (not through
// the mesh): the answers describe this one replica.
import { createHash } from 'node:crypto';
import http from 'node:http';

const host = process.env.POD_IP || '127.0.0.1';
const ports = (process.env.PORTS || process.env.PORT || '8080').split(',').map(Number).filter((p) => p > 0);
const pod = process.env.POD_NAME || '';

const tries = new Map();
let requests = 0;
let failMode = 0;

function record(id, method, body) {
  const list = tries.get(id) ?? [];
  list.push({ at: performance.timeOrigin + performance.now(), method, bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest('hex'), pod });
  tries.set(id, list);
  return list.length;
}

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function handler(req, res) {
  const parts = [];
  req.on('data', (c) => parts.push(c));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    if (p === '/count') return send(res, 200, { requests, pod });
    if (p.startsWith('/tries/')) return send(res, 200, tries.get(p.slice(7)) ?? []);
    if (p === '/reset' && req.method === 'POST') {
      tries.clear();
      requests = 0;
      return send(res, 200, { pod });
    }
    if (p === '/mode' && req.method === 'POST') {
      failMode = Number(url.searchParams.get('fail') ?? '0') || 0;
      return send(res, 200, { pod, failMode });
    }
    requests++;
    if (failMode) return send(res, failMode, { pod, failMode });
    let m = /^\/fail\/([^/]+)$/.exec(p);
    if (m) {
      const n = record(m[1], req.method, body);
      const failFor = Number(url.searchParams.get('n') ?? '1');
      const code = Number(url.searchParams.get('code') ?? '503');
      return send(res, n <= failFor ? code : 200, { pod, try: n, bodyBytes: body.length });
    }
    m = /^\/always\/(\d{3})$/.exec(p);
    if (m) return send(res, Number(m[1]), { pod });
    const delay = Number(url.searchParams.get('delay') ?? '0');
    if (delay > 0) return void setTimeout(() => send(res, 200, { pod, path: p, bodyBytes: body.length }), delay);
    return send(res, 200, { pod, path: p, bodyBytes: body.length });
  });
}

for (const port of ports) {
  const s = http.createServer(handler);
  s.keepAliveTimeout = 65_000;
  s.listen(port, host, () => console.log(`flaky ${pod} listening on ${host}:${port}`));
}

if (process.env.GRPC_PORT) {
  const { fileURLToPath } = await import('node:url');
  const grpc = await import('@grpc/grpc-js');
  const protoLoader = await import('@grpc/proto-loader');
  const def = protoLoader.loadSync(fileURLToPath(new URL('../../conformance/apps/grpc-echo.proto', import.meta.url)), { longs: Number, defaults: true, bytes: Buffer });
  const Echo = grpc.loadPackageDefinition(def).weft.test.Echo;
  const server = new grpc.Server();
  const unimplemented = (call, cb) => cb({ code: grpc.status.UNIMPLEMENTED });
  server.addService(Echo.service, {
    Echo: (call, cb) => {
      requests++;
      const m = /^fail:(\d+):(.+)$/.exec(call.request.text ?? '');
      if (m) {
        const n = record(`grpc-${m[2]}`, 'grpc', Buffer.alloc(0));
        if (n <= Number(m[1])) return cb({ code: grpc.status.UNAVAILABLE, details: `try ${n} fails on purpose` });
      }
      cb(null, { text: call.request.text, pod });
    },
    Slow: unimplemented,
    ServerStream: (call) => call.end(),
    ClientStream: unimplemented,
    Bidi: (call) => call.end(),
  });
  server.bindAsync(`${host}:${process.env.GRPC_PORT}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      console.error(`flaky grpc: ${err.message}`);
      process.exit(1);
    }
    console.log(`flaky grpc ${pod} listening on ${host}:${process.env.GRPC_PORT}`);
  });
}

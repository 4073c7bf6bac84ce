// The admin's /app-probe/... on real sockets: an HTTP app, a TCP port, a
// gRPC health server; only listed probes are served.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { AppProbe } from '../../../api/index.js';
import { serveAppProbe, healthStatus } from '../app-probe.js';

const ip = '127.0.0.1';
const listen = (s: net.Server): Promise<number> => new Promise((r) => s.listen(0, ip, () => r((s.address() as net.AddressInfo).port)));

async function adminWith(probes: Record<string, AppProbe>): Promise<{ get(path: string, method?: string): Promise<{ status: number; body: string }> }> {
  const admin = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!serveAppProbe(req, res, path, probes, ip)) {
      res.writeHead(404);
      res.end('not found\n');
    }
  });
  const port = await listen(admin);
  t.teardown(() => admin.close());
  return {
    get: (path, method = 'GET') =>
      new Promise((resolve, reject) => {
        http
          .request({ host: ip, port, path, method, agent: false }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          })
          .on('error', reject)
          .end();
      }),
  };
}

/** grpc.health.v1.Health/Check with hand-rolled (de)serializers: status per service name. */
async function healthServer(statuses: Record<string, number>): Promise<number> {
  const server = new grpc.Server();
  const parseService = (b: Buffer): string => (b.length > 2 && b[0] === 0x0a ? b.subarray(2, 2 + b[1]!).toString('utf8') : '');
  server.addService(
    { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: (x: Buffer) => x, requestDeserialize: (b: Buffer) => b, responseSerialize: (n: number) => Buffer.from([0x08, n]), responseDeserialize: (b: Buffer) => b[1], originalName: '' } } as grpc.ServiceDefinition,
    {
      Check: (call: grpc.ServerUnaryCall<Buffer, number>, cb: grpc.sendUnaryData<number>) => {
        const svc = parseService(call.request);
        if (!(svc in statuses)) return cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' } as grpc.ServiceError, null);
        cb(null, statuses[svc]!);
      },
    },
  );
  const port = await new Promise<number>((r, j) => server.bindAsync(`${ip}:0`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? j(e) : r(p))));
  t.teardown(() => server.forceShutdown());
  return port;
}

t.test('HTTP, TCP and gRPC probes reach the app; the kubelet sees the app\'s verdict', async (t) => {
  const seen: Array<{ path?: string; headers: http.IncomingHttpHeaders }> = [];
  const app = http.createServer((req, res) => {
    seen.push({ path: req.url, headers: req.headers });
    res.writeHead(req.url === '/sick' ? 500 : 200);
    res.end('app\n');
  });
  const appPort = await listen(app);
  t.teardown(() => app.close());
  const closed = net.createServer();
  const closedPort = await listen(closed);
  await new Promise<void>((r) => closed.close(() => r()));
  const grpcPort = await healthServer({ '': 1, 'web.v1': 1, sick: 2 });
  const admin = await adminWith({
    '/app-probe/web/livez': { kind: 'http', port: appPort, path: '/healthz?deep=1', scheme: 'HTTP', headers: [{ name: 'X-Probe', value: 'kubelet' }] },
    '/app-probe/web/sick': { kind: 'http', port: appPort, path: '/sick', scheme: 'HTTP' },
    '/app-probe/web/readyz': { kind: 'tcp', port: appPort },
    '/app-probe/web/down': { kind: 'tcp', port: closedPort },
    '/app-probe/web/startupz': { kind: 'grpc', port: grpcPort },
    '/app-probe/web/grpc-svc': { kind: 'grpc', port: grpcPort, service: 'web.v1' },
    '/app-probe/web/grpc-sick': { kind: 'grpc', port: grpcPort, service: 'sick' },
    '/app-probe/web/grpc-unknown': { kind: 'grpc', port: grpcPort, service: 'nope' },
  });
  t.equal((await admin.get('/app-probe/web/livez')).status, 200, 'HTTP probe: the app answered 200');
  t.equal(seen.at(-1)?.path, '/healthz?deep=1', 'the original path and query');
  t.equal(seen.at(-1)?.headers['x-probe'], 'kubelet', 'the original headers');
  t.equal((await admin.get('/app-probe/web/sick')).status, 500, 'the app\'s failure is the probe\'s failure');
  t.equal((await admin.get('/app-probe/web/readyz')).status, 200, 'TCP probe: the port accepts');
  const down = await admin.get('/app-probe/web/down');
  t.equal(down.status, 503, 'TCP probe: nothing listens');
  t.match(down.body, /ECONNREFUSED/);
  t.equal((await admin.get('/app-probe/web/startupz')).status, 200, 'gRPC probe: SERVING');
  t.equal((await admin.get('/app-probe/web/grpc-svc')).status, 200, 'gRPC probe of a named service');
  t.equal((await admin.get('/app-probe/web/grpc-sick')).status, 503, 'NOT_SERVING fails');
  t.equal((await admin.get('/app-probe/web/grpc-unknown')).status, 503, 'an unknown service fails');
  t.equal((await admin.get('/app-probe/web/other')).status, 404, 'a path the injector did not list is not forwarded');
  t.equal((await admin.get('/app-probe/web/livez', 'POST')).status, 405, 'GET only');
});

t.test('health response parsing', async (t) => {
  t.equal(healthStatus(Buffer.from([0, 0, 0, 0, 2, 0x08, 1])), 1);
  t.equal(healthStatus(Buffer.from([0, 0, 0, 0, 0])), 0, 'empty message: UNKNOWN');
  t.equal(healthStatus(Buffer.from([0])), undefined, 'truncated');
});

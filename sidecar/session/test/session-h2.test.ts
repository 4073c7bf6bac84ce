// Session persistence on the HTTP/2 (gRPC) path: h2c to the outbound
// sidecar, three h2c endpoints without sidecars. A GRPCRoute rule's Header
// session and an HTTP/2 Cookie session pin one endpoint; without a token the
// balancer spreads; a tampered token is ignored; weight 0 is honoured.
import t from 'tap';
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CompiledRule, ServiceConfig, SessionConfig } from '../../../api/index.js';
import { issueToken, startSidecar, verifyToken } from '../../index.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const EPS = [ip(2), ip(3), ip(4)];
const ZERO = ip(5);
const CLIENT = ip(6);
const PORT = 9091;
const SECRET = randomBytes(32);

function h2App(name: string, host: string): Promise<http2.Http2Server> {
  const s = http2.createServer();
  s.on('stream', (st) => {
    st.on('error', () => {});
    st.resume();
    st.on('end', () => {
      st.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-app': name }, { waitForTrailers: true });
      st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
      st.end(Buffer.alloc(5));
    });
  });
  return new Promise((r) => s.listen(PORT, host, () => r(s)));
}

const scope = (i: number) => `GRPCRoute/demo/g/rules/${i}`;
function serviceConfig(): ServiceConfig {
  const sess: SessionConfig[] = [
    { type: 'Header', name: 'x-grpc-session', permanent: false, scope: scope(0), source: 'route' },
    { type: 'Cookie', name: 'h2c', permanent: false, path: '/weft.test.Echo/Cookie', scope: scope(1), source: 'route' },
    { type: 'Header', name: 'x-zero', permanent: false, scope: scope(2), source: 'route' },
  ];
  const rules: CompiledRule[] = sess.map((session, i) => ({
    route: { kind: 'GRPCRoute', namespace: 'demo', name: 'g', ruleIndex: i, ruleName: `r${i}` },
    filters: [],
    backends: i === 2 ? [{ backend: 'demo/three:80', weight: 1, filters: [] }, { backend: 'demo/zero:80', weight: 0, filters: [] }] : [{ backend: 'demo/three:80', weight: 1, filters: [] }],
    session,
  }));
  const methods = ['Header', 'Cookie', 'Zero'];
  return {
    service: 'demo/g', namespace: 'demo', name: 'g', consumerNamespace: 'demo', clusterIP: '10.96.0.30', sessionSecret: SECRET.toString('base64'),
    backends: {
      'demo/three:80': { key: 'demo/three:80', namespace: 'demo', name: 'three', port: 80, endpoints: EPS.map((h) => ({ ip: h, port: PORT, ready: true })) },
      'demo/zero:80': { key: 'demo/zero:80', namespace: 'demo', name: 'zero', port: 80, endpoints: [{ ip: ZERO, port: PORT, ready: true }] },
    },
    ports: [{
      port: 80, targetPort: PORT, appProtocol: 'grpc', routeKind: 'GRPCRoute', defaultBackend: 'demo/three:80', rules,
      matches: methods.map((m, i) => ({ rule: i, path: { type: 'Exact' as const, value: `/weft.test.Echo/${m}` }, headers: [], queryParams: [] })),
    }],
  };
}

t.test('session persistence over HTTP/2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-session-h2-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'g', cluster_ip: '10.96.0.30', ports: [{ name: 'grpc', port: 80, target_port: PORT, app_protocol: 'grpc' }], meshed: true }] });
  control.setService(serviceConfig(), 'v1');
  const apps = await Promise.all([...EPS.map((h, i) => h2App(`ep${i}`, h)), h2App('zero', ZERO)]);
  t.teardown(() => apps.forEach((a) => a.close()));
  const client = await startSidecar({ control: control.address, stateDir: control.stateDir, namespace: 'demo', podIP: CLIENT, workload: 'client', serviceAccount: 'client', log: () => {} });
  t.teardown(() => client.close(100));
  await client.ready;
  const session = http2.connect(`http://${client.outboundAddress}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());

  const call = (method: string, headers: Record<string, string> = {}) =>
    new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': `/weft.test.Echo/${method}`, ':authority': 'g', 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let h: http2.IncomingHttpHeaders = {};
      s.on('response', (x) => (h = x));
      s.on('error', reject);
      s.on('close', () => resolve(h));
      s.resume();
      s.end(Buffer.alloc(5));
    });
  const many = async (n: number, method: string, headers: Record<string, string> = {}) => {
    const out: http2.IncomingHttpHeaders[] = [];
    for (let i = 0; i < n; i++) out.push(await call(method, headers));
    return out;
  };
  const apps1 = (rs: http2.IncomingHttpHeaders[]) => new Set(rs.map((r) => String(r['x-app'])));

  await t.test('Header: the first response carries the token, 100 calls with it reach one endpoint', async (t) => {
    const first = await call('Header');
    const tok = first['x-grpc-session'];
    t.type(tok, 'string');
    t.equal(verifyToken(SECRET, scope(0), tok as string)?.endpoint, `${EPS[Number(String(first['x-app']).slice(2))]}:${PORT}|`);
    const rs = await many(100, 'Header', { 'x-grpc-session': tok as string });
    t.same([...apps1(rs)], [first['x-app']]);
    t.ok(apps1(await many(60, 'Header')).size >= 2, 'without it: spread');
    const bad = (tok as string).replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    t.ok(apps1(await many(30, 'Header', { 'x-grpc-session': bad })).size >= 2, 'tampered: ignored');
  });

  await t.test('Cookie over HTTP/2', async (t) => {
    const first = await call('Cookie');
    const sc = ([] as string[]).concat(first['set-cookie'] ?? []);
    const c = sc.find((x) => x.startsWith('h2c='));
    t.match(c, /^h2c=[^;]+; Path=\/weft\.test\.Echo\/Cookie; HttpOnly; SameSite=Lax$/);
    const rs = await many(50, 'Cookie', { cookie: c!.split(';')[0]! });
    t.same([...apps1(rs)], [first['x-app']]);
  });

  await t.test('persistence beats weights on the HTTP/2 path too', async (t) => {
    const now = Date.now();
    const tok = issueToken(SECRET, scope(2), { endpoint: `${ZERO}:${PORT}|`, issued: now, lastUsed: now });
    t.same([...apps1(await many(20, 'Zero', { 'x-zero': tok }))], ['zero']);
    t.notOk(apps1(await many(20, 'Zero')).has('zero'));
  });
});

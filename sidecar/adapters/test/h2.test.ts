// The HTTP/2 path of the sidecar against a fake control (real weft.proto,
// real mTLS) and raw node:http2 apps: trailers, resets both ways, large
// bodies under flow control, gRPC errors the mesh makes, rule timeouts with
// grpc-timeout propagation, and h2c straight to an endpoint without a sidecar.
import t from 'tap';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendConfig, CompiledRule, MatchEntry, ServiceConfig } from '../../../api/index.js';
import { startSidecar, type SidecarHandle } from '../../index.js';
import { encodeGrpcMessage, formatGrpcTimeout, grpcCodeOfMeshStatus, parseGrpcTimeout } from '../../errors/grpc-status.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const MESHED = ip(2);
const PLAIN = ip(3);
const CLIENT = ip(4);
const APP_PORT = 9090;
const C = http2.constants;

t.test('grpc-status helpers', async (t) => {
  t.equal(parseGrpcTimeout('100m'), 100);
  t.equal(parseGrpcTimeout('2S'), 2000);
  t.equal(parseGrpcTimeout('1H'), 3_600_000);
  t.equal(parseGrpcTimeout('5000u'), 5);
  t.equal(parseGrpcTimeout('123456789m'), undefined, 'at most 8 digits');
  t.equal(parseGrpcTimeout('10x'), undefined);
  t.equal(parseGrpcTimeout(undefined), undefined);
  t.equal(formatGrpcTimeout(99.2), '100m');
  t.equal(formatGrpcTimeout(0), '1m');
  t.equal(formatGrpcTimeout(200_000_000), '200000S');
  t.equal(encodeGrpcMessage('no route 100% ✓'), 'no route 100%25 %E2%9C%93');
  t.same([404, 500, 503, 504, 502].map(grpcCodeOfMeshStatus), [12, 14, 14, 4, 14]);
});

interface AppSeen {
  path: string;
  headers: http2.IncomingHttpHeaders;
  closedWith?: number;
}

/** A raw h2c app: /trailers echoes the body and sends trailers, /reset resets after headers, /hang never answers, /grpc answers gRPC. */
function h2App(name: string, host: string, seen: AppSeen[]): Promise<http2.Http2Server> {
  const s = http2.createServer();
  s.on('stream', (st, h) => {
    const rec: AppSeen = { path: String(h[':path']), headers: h };
    seen.push(rec);
    st.on('error', () => {});
    st.once('close', () => (rec.closedWith = st.rstCode));
    const path = rec.path.split('?')[0];
    if (path === '/reset-before') {
      st.close(C.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    }
    if (path === '/reset-after') {
      // destroy() resets at once (close() would end the stream first, then reset a closed stream).
      st.respond({ ':status': 200 });
      st.write('partial');
      setTimeout(() => st.destroy(new Error('app gives up')), 20);
      return;
    }
    if (path === '/hang' || path?.startsWith('/weft.test.Echo/Slow')) return;
    if (path?.startsWith('/weft.test.Echo/')) {
      st.resume();
      st.on('end', () => {
        st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0', 'x-app': name }));
        st.end(Buffer.alloc(5));
      });
      return;
    }
    // Echo the body back (backpressure by pipe), then trailers with the byte count.
    let n = 0;
    st.on('data', (c: Buffer) => (n += c.length));
    st.respond({ ':status': 200, 'x-app': name }, { waitForTrailers: true });
    st.on('wantTrailers', () => st.sendTrailers({ 'x-bytes': String(n) }));
    st.pipe(st);
  });
  return new Promise((r) => s.listen(APP_PORT, host, () => r(s)));
}

const meshedEp = { ip: MESHED, port: APP_PORT, identity: { namespace: 'demo', serviceAccount: 'echo' }, ready: true, workload: 'echo' };
const backend = (name: string, endpoints: BackendConfig['endpoints']): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints });
const rule = (name: string, backends: CompiledRule['backends'], extra: Partial<CompiledRule> = {}): CompiledRule => ({
  route: { kind: 'GRPCRoute', namespace: 'demo', name: 'r', ruleIndex: 0, ruleName: name },
  filters: [],
  backends,
  ...extra,
});
const to = (b: string) => ({ backend: `demo/${b}:80`, weight: 1, filters: [] });

function serviceConfig(): ServiceConfig {
  const rules: CompiledRule[] = [
    rule('fixed', [], { fixed: { status: 500, reason: 'all backendRefs are invalid' } }),
    rule('slow', [to('meshed')], { timeouts: { requestMs: 300 } }),
    rule('grpc', [to('meshed')]),
    rule('nobody', [to('nobody')]),
    rule('plain', [to('plain')]),
    rule('mirror', [to('meshed')], { filters: [{ type: 'RequestMirror', backend: 'demo/plain:80' }] }),
    rule('meshed', [to('meshed')]),
  ];
  const paths: Array<[MatchEntry['path']['type'], string]> = [
    ['Exact', '/weft.test.Echo/Fixed'], ['PathPrefix', '/weft.test.Echo/Slow'], ['PathPrefix', '/weft.test.Echo'], ['PathPrefix', '/nobody'], ['PathPrefix', '/plain'], ['PathPrefix', '/mirror'], ['PathPrefix', '/'],
  ];
  return {
    service: 'demo/echo', namespace: 'demo', name: 'echo', consumerNamespace: 'demo', clusterIP: '10.96.0.10', sessionSecret: '',
    backends: {
      'demo/meshed:80': backend('meshed', [meshedEp]),
      'demo/plain:80': backend('plain', [{ ip: PLAIN, port: APP_PORT, ready: true }]),
      'demo/nobody:80': backend('nobody', []),
      'demo/echo:80': backend('echo', [meshedEp]),
    },
    ports: [{
      port: 80, targetPort: APP_PORT, appProtocol: 'grpc', routeKind: 'GRPCRoute', defaultBackend: 'demo/echo:80', rules,
      matches: paths.map(([type, value], i) => ({ rule: i, path: { type, value }, headers: [], queryParams: [] })),
    }],
  };
}

interface Answer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  rstCode: number | undefined;
}

function call(s: http2.ClientHttp2Session, path: string, o: { body?: Buffer; grpc?: boolean; headers?: http2.OutgoingHttpHeaders } = {}): Promise<Answer> {
  const st = s.request({
    ':method': o.body || o.grpc ? 'POST' : 'GET',
    ':path': path,
    ':authority': 'echo',
    ...(o.grpc ? { 'content-type': 'application/grpc', te: 'trailers' } : {}),
    ...o.headers,
  }, { endStream: !o.body && !o.grpc });
  if (o.grpc) st.end(o.body ?? Buffer.alloc(5));
  else if (o.body) st.end(o.body);
  return new Promise((resolve) => {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => (headers = h));
    st.on('trailers', (h) => (trailers = h));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('error', () => {});
    st.on('close', () => resolve({ headers, trailers, body: Buffer.concat(chunks), rstCode: st.rstCode }));
  });
}

t.test('HTTP/2 through two sidecars', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-h2-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'echo', cluster_ip: '10.96.0.10', ports: [{ name: 'grpc', port: 80, target_port: APP_PORT, app_protocol: 'grpc' }], meshed: true }] });
  control.setService(serviceConfig(), 'v1');

  const seen: AppSeen[] = [];
  const apps = await Promise.all([h2App('meshed', MESHED, seen), h2App('plain', PLAIN, seen)]);
  t.teardown(() => apps.forEach((a) => a.close()));

  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const common = { control: control.address, stateDir: control.stateDir, namespace: 'demo', log: () => {} };
  sidecars.push(await startSidecar({ ...common, podIP: MESHED, workload: 'echo', serviceAccount: 'echo', appPorts: [APP_PORT] }));
  const client = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client', subscribe: ['echo'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const session = http2.connect(`http://${client.outboundAddress}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());

  await t.test('a body of 8 MiB goes up and comes back under flow control, trailers pass through', async (t) => {
    const body = Buffer.alloc(8 << 20);
    for (let i = 0; i < body.length; i += 1013) body[i] = i & 0xff;
    const r = await call(session, '/echo', { body });
    t.equal(r.headers[':status'], 200);
    t.equal(r.headers['x-app'], 'meshed');
    t.ok(r.body.equals(body), 'same bytes back');
    t.equal(r.trailers['x-bytes'], String(body.length), 'the app’s trailers arrive');
    const last = seen.filter((s) => s.path === '/echo').pop();
    t.equal(last?.headers['x-weft-peer-identity'], 'spiffe://cluster.local/ns/demo/sa/client');
  });

  await t.test('an upstream reset passes through with its code, before and after the response started', async (t) => {
    const before = await call(session, '/reset-before');
    t.equal(before.headers[':status'], undefined, 'no response');
    t.equal(before.rstCode, C.NGHTTP2_ENHANCE_YOUR_CALM);
    const after = await call(session, '/reset-after');
    t.equal(after.headers[':status'], 200);
    t.equal(after.body.toString(), 'partial');
    t.equal(after.rstCode, C.NGHTTP2_INTERNAL_ERROR);
  });

  await t.test('a client reset cancels the app’s stream', async (t) => {
    const st = session.request({ ':method': 'GET', ':path': '/hang', ':authority': 'echo' });
    st.on('error', () => {});
    await waitUntil(() => seen.some((s) => s.path === '/hang'), 3000);
    st.close(C.NGHTTP2_CANCEL);
    await waitUntil(() => seen.find((s) => s.path === '/hang')?.closedWith !== undefined, 3000);
    t.equal(seen.find((s) => s.path === '/hang')?.closedWith, C.NGHTTP2_CANCEL);
  });

  await t.test('RequestMirror: the mirror gets a copy with the body; the caller gets the main answer', async (t) => {
    const body = Buffer.from('mirrored body');
    const r = await call(session, '/mirror/x', { body });
    t.equal(r.headers['x-app'], 'meshed');
    t.equal(r.body.toString(), 'mirrored body');
    await waitUntil(() => seen.some((s) => s.path === '/mirror/x' && s.closedWith !== undefined && !s.headers['x-weft-peer-identity']), 3000);
    const copies = seen.filter((s) => s.path === '/mirror/x');
    t.equal(copies.length, 2, 'the app behind the hop and the mirror each saw it once');
    t.ok(copies.some((s) => !s.headers['x-weft-peer-identity']), 'the plain mirror endpoint got its copy directly');
  });

  await t.test('a request addressed to the sidecar itself is refused with 508, not looped', async (t) => {
    const r = await call(session, '/x', { headers: { ':authority': client.outboundAddress } });
    t.equal(r.headers[':status'], 508);
    const g = await call(session, '/x', { grpc: true, headers: { ':authority': client.outboundAddress } });
    t.equal(g.headers['grpc-status'], '14');
  });

  await t.test('gRPC: trailers-only errors made by the mesh', async (t) => {
    const fixed = await call(session, '/weft.test.Echo/Fixed', { grpc: true });
    t.equal(fixed.headers[':status'], 200);
    t.equal(fixed.headers['grpc-status'], '14', 'a rule’s fixed 500 → UNAVAILABLE');
    t.equal(fixed.body.length, 0);
    const nobody = await call(session, '/nobody', { grpc: true });
    t.equal(nobody.headers['grpc-status'], '14', 'no endpoint → UNAVAILABLE');
    t.match(String(nobody.headers['grpc-message']), /no endpoints/);
    const plain404 = await call(session, '/nobody');
    t.equal(plain404.headers[':status'], 503, 'non-gRPC callers get HTTP statuses');
    t.ok(plain404.headers['weft-proxy-error']);
  });

  await t.test('gRPC: a rule timeout ends in DEADLINE_EXCEEDED and propagates grpc-timeout', async (t) => {
    const start = performance.now();
    const r = await call(session, '/weft.test.Echo/Slow', { grpc: true, headers: { 'grpc-timeout': '10S' } });
    const took = performance.now() - start;
    t.equal(r.headers[':status'], 200);
    t.equal(r.headers['grpc-status'] ?? r.trailers['grpc-status'], '4');
    t.ok(took >= 250 && took < 3000, `after ${Math.round(took)} ms`);
    const app = seen.filter((s) => s.path.startsWith('/weft.test.Echo/Slow')).pop()!;
    const sent = parseGrpcTimeout(app.headers['grpc-timeout']);
    t.ok(sent !== undefined && sent <= 300, `the app was told ${String(app.headers['grpc-timeout'])}`);
    await waitUntil(() => app.closedWith !== undefined, 3000);
    t.equal(app.closedWith, C.NGHTTP2_CANCEL, 'the app’s stream was cancelled');
  });

  await t.test('gRPC: OK from the app, through the hop and to a plain endpoint; grpc_status in metrics', async (t) => {
    const r = await call(session, '/weft.test.Echo/Echo', { grpc: true });
    t.equal(r.trailers['grpc-status'], '0');
    t.equal(r.trailers['x-app'], 'meshed');
    const p = await call(session, '/plain/x');
    t.equal(p.headers['x-app'], 'plain', 'h2c straight to an endpoint without a sidecar');
    const m = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    t.match(m, /weft_requests_total\{[^}]*route_kind="GRPCRoute"[^}]*grpc_status="0"[^}]*\} [1-9]/);
    t.match(m, /weft_requests_total\{[^}]*grpc_status="4"[^}]*\} [1-9]/);
    t.match(m, /weft_requests_total\{[^}]*grpc_status="14"[^}]*\} [1-9]/);
  });
});

async function waitUntil(fn: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

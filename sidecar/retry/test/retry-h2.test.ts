// Retries on the HTTP/2 path, through a real sidecar (fake control, real
// node:http2 apps without a sidecar, so h2c to them): a stream the app
// refuses (RST_STREAM REFUSED_STREAM: nothing processed) goes at once to the
// other endpoint, for a POST too, with its body; a gRPC call whose
// trailers-only answer is UNAVAILABLE is tried again when the rule says so.
import t from 'tap';
import http2 from 'node:http2';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendConfig, CompiledRule, ServiceConfig } from '../../../api/index.js';
import { startSidecar } from '../../index.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const PORT = 9191;
const C = http2.constants;

interface Seen {
  app: string;
  path: string;
  body: Buffer;
}

/** refuse: RST_STREAM REFUSED_STREAM on every stream. unavailable: gRPC UNAVAILABLE the first `n` calls of each path, then OK. */
function app(name: string, host: string, mode: 'refuse' | 'ok' | 'unavailable', seen: Seen[], n = 0): Promise<http2.Http2Server> {
  const s = http2.createServer();
  const calls = new Map<string, number>();
  s.on('stream', (st, h) => {
    st.on('error', () => {});
    const path = String(h[':path']);
    if (mode === 'refuse') {
      st.close(C.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const parts: Buffer[] = [];
    st.on('data', (c: Buffer) => parts.push(c));
    st.on('end', () => {
      seen.push({ app: name, path, body: Buffer.concat(parts) });
      if (mode === 'unavailable') {
        const k = (calls.get(path) ?? 0) + 1;
        calls.set(path, k);
        if (k <= n) {
          st.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'try later' }, { endStream: true });
          return;
        }
        st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
        st.end(Buffer.alloc(5));
        return;
      }
      st.respond({ ':status': 200, 'x-app': name });
      st.end(Buffer.concat(parts));
    });
  });
  return new Promise((r) => s.listen(PORT, host, () => r(s)));
}

const backend = (name: string, ips: string[]): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints: ips.map((x) => ({ ip: x, port: PORT, ready: true })) });
const rule = (name: string, b: string, extra: Partial<CompiledRule> = {}): CompiledRule => ({
  route: { kind: 'GRPCRoute', namespace: 'demo', name: 'r', ruleIndex: 0, ruleName: name },
  filters: [],
  backends: [{ backend: `demo/${b}:80`, weight: 1, filters: [] }],
  ...extra,
});

function call(s: http2.ClientHttp2Session, path: string, body: Buffer, grpc = false): Promise<{ status: number; grpcStatus: string | undefined; body: Buffer }> {
  const st = s.request({ ':method': 'POST', ':path': path, ':authority': 'echo', ...(grpc ? { 'content-type': 'application/grpc', te: 'trailers' } : {}) });
  st.end(body);
  return new Promise((resolve) => {
    let status = 0;
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    st.on('response', (h) => {
      status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
    });
    st.on('trailers', (h) => (grpcStatus = String(h['grpc-status'])));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('error', () => {});
    st.on('close', () => resolve({ status, grpcStatus, body: Buffer.concat(chunks) }));
  });
}

t.test('HTTP/2 retries through a sidecar', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-retry-h2-'));
  const control = await startFakeControl({ host: ip(1), stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const seen: Seen[] = [];
  const apps = await Promise.all([app('refuser', ip(2), 'refuse', seen), app('ok', ip(3), 'ok', seen), app('flaky', ip(5), 'unavailable', seen, 2)]);
  t.teardown(() => apps.forEach((a) => a.close()));
  const cfg: ServiceConfig = {
    service: 'demo/echo', namespace: 'demo', name: 'echo', consumerNamespace: 'demo', clusterIP: '10.96.0.11', sessionSecret: '',
    backends: { 'demo/pair:80': backend('pair', [ip(2), ip(3)]), 'demo/flaky:80': backend('flaky', [ip(5)]) },
    ports: [{
      port: 80, targetPort: PORT, appProtocol: 'grpc', routeKind: 'GRPCRoute', defaultBackend: 'demo/pair:80',
      rules: [
        rule('grpc', 'flaky', { retry: { codes: [], grpcCodes: [14], attempts: 2, backoffMs: 10, source: 'annotations' } }),
        rule('pair', 'pair'),
      ],
      matches: [
        { rule: 0, path: { type: 'PathPrefix', value: '/weft.test.Echo' }, headers: [], queryParams: [] },
        { rule: 1, path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
      ],
    }],
  };
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'echo', cluster_ip: '10.96.0.11', ports: [{ name: 'grpc', port: 80, target_port: PORT, app_protocol: 'grpc' }], meshed: false }] });
  control.setService(cfg, 'v1');
  const client = await startSidecar({ control: control.address, stateDir: control.stateDir, namespace: 'demo', podIP: ip(4), workload: 'client', serviceAccount: 'client', subscribe: ['echo'], log: () => {} });
  t.teardown(() => client.close(100));
  await client.ready;
  const session = http2.connect(`http://${client.outboundAddress}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());

  await t.test('REFUSED_STREAM: the POST and its body go to the other endpoint at once', async (t) => {
    for (let i = 0; i < 12; i++) {
      const body = Buffer.from(`body-${i}-`.repeat(500));
      const r = await call(session, `/post/${i}`, body);
      t.equal(r.status, 200, `request ${i}: answered`);
      t.ok(r.body.equals(body), `request ${i}: the body arrived whole and came back`);
    }
    const metrics = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    const m = /weft_retries_total\{[^}]*reason="refused_stream"\} (\d+)/.exec(metrics);
    t.ok(m && Number(m[1]) >= 1, `refused streams were retried (${m?.[0]})`);
    t.ok(seen.filter((s) => s.path.startsWith('/post/')).every((s) => s.app === 'ok'), 'every request was served by the endpoint that accepts streams');
  });

  await t.test('gRPC: UNAVAILABLE in a trailers-only answer is tried again (retry.weft.io/grpc)', async (t) => {
    const r = await call(session, '/weft.test.Echo/Echo', Buffer.alloc(5), true);
    t.equal(r.grpcStatus, '0', 'two UNAVAILABLE, then OK');
    t.equal(seen.filter((s) => s.path === '/weft.test.Echo/Echo').length, 3, '1 + attempts tries');
    const again = await call(session, '/weft.test.Echo/Other', Buffer.alloc(5), true);
    t.equal(again.grpcStatus, '0');
  });
});

// decide() as a table: every match kind and every filter of the shared
// route cases (helpers/route-cases.ts), then what only the decision can
// show — no such port, a port without routes, session pinning, timeouts,
// the retry slot, mirrors that cannot honour a BackendTLSPolicy.
import t from 'tap';
import type { IncomingHttpHeaders } from 'node:http';
import { createTrustAnchor } from '../../../certs/index.js';
import { buildService, type BuiltService } from '../../config/config-apply.js';
import { attemptTimeout, decide, type Decision, type Forward } from '../decide.js';
import { editRequestHeaders, editResponseHeaders } from '../filters.js';
import { SidecarMetrics } from '../../admin/metrics.js';
import { headerView, splitTarget, type MeshRequest } from '../request.js';
import { ROUTE_CASES, routeCasesService, SERVICE_PORT, type AppName, type Hosts, type RouteCase } from '../../test/helpers/route-cases.js';

const HOSTS: Hosts = { meshed: '10.0.0.2', plain: '10.0.0.3', mirror: '10.0.0.4', tls: '10.0.0.5', nothing: '10.0.0.6' };
const appOf = (ip: string): AppName | undefined => (Object.entries(HOSTS).find(([, v]) => v === ip)?.[0] as AppName | undefined);
const ca = createTrustAnchor({ commonName: 'decide test CA' });
const ctx = { self: { namespace: 'demo', workload: 'client', serviceAccount: 'client', trustDomain: 'cluster.local' }, metrics: new SidecarMetrics() };

function build(mutate?: (cfg: ReturnType<typeof routeCasesService>) => void): BuiltService {
  const cfg = routeCasesService(HOSTS, ca.certPem);
  mutate?.(cfg);
  return buildService(cfg, 'v1', undefined, ctx);
}

function requestOf(c: Pick<RouteCase, 'method' | 'path' | 'headers'>, raw: IncomingHttpHeaders = { host: 'echo', ...c.headers }): MeshRequest {
  const { path, query } = splitTarget(c.path);
  return { method: c.method ?? 'GET', authority: 'echo', path, query, headers: headerView(raw), protocol: 'http1' };
}

function forward(d: Decision): Forward {
  if (d.kind !== 'forward') throw new Error(`expected forward, got ${d.status} ${d.reason}`);
  return d;
}

t.test('every route case decides as the table says', async (t) => {
  const svc = build();
  for (const c of ROUTE_CASES) {
    const raw: IncomingHttpHeaders = { host: 'echo', ...c.headers };
    const d = decide(svc, SERVICE_PORT, requestOf(c, raw));
    const w = c.want;
    if (w.status !== 200 && !w.upstreamFailure) {
      t.equal(d.kind, 'respond', `${c.name}: answered by the mesh`);
      if (d.kind !== 'respond') continue;
      t.equal(d.status, w.status, `${c.name}: status`);
      if (w.location) t.equal(d.location, w.location, `${c.name}: Location`);
      else t.equal(d.location, undefined, `${c.name}: no Location`);
      if (w.proxyError) t.match(d.reason, w.proxyError, `${c.name}: reason`);
      continue;
    }
    const f = forward(d);
    if (w.app) t.equal(appOf(f.endpoint.ip), w.app, `${c.name}: endpoint of ${w.app}`);
    if (w.backend) t.equal(f.backend.key, w.backend, `${c.name}: backend`);
    if (w.upstreamFailure) continue;
    t.equal(f.path, w.upstreamPath ?? c.path, `${c.name}: upstream path`);
    t.equal(f.authority, w.upstreamHost ?? 'echo', `${c.name}: upstream authority`);
    if (w.seen) {
      const h = { ...raw };
      for (const e of f.requestEdits) editRequestHeaders(h, e);
      for (const [k, v] of Object.entries(w.seen)) t.equal(h[k], v, `${c.name}: request header ${k}`);
    }
    if (w.response) {
      let flat = ['x-from-app', appOf(f.endpoint.ip)!, 'x-drop', '1'];
      for (const e of f.responseEdits ?? []) flat = editResponseHeaders(flat, e);
      for (const [k, v] of Object.entries(w.response)) {
        const got = flat.findIndex((n, i) => i % 2 === 0 && n === k);
        const value = got < 0 ? undefined : flat[got + 1];
        if (v instanceof RegExp) t.match(value, v, `${c.name}: response header ${k}`);
        else t.equal(value, v, `${c.name}: response header ${k}`);
      }
    }
    t.same(f.mirrors.map((m) => appOf(m.endpoint.ip)), w.mirror ? [w.mirror] : [], `${c.name}: mirrors`);
  }
});

t.test('a port the Service does not have is 502; a port without routes goes to the Service itself', async (t) => {
  const svc = build((cfg) => cfg.ports.push({ ...cfg.ports[0]!, port: 81, routeKind: 'none', rules: [], matches: [] }));
  const none = decide(svc, 82, requestOf({ path: '/' }));
  t.equal(none.kind === 'respond' && none.status, 502);
  t.match(none.kind === 'respond' ? none.reason : '', /service demo\/echo has no port 82/);
  const d = forward(decide(svc, 81, requestOf({ path: '/anything?x=1' })));
  t.equal(d.backend.key, 'demo/echo:80');
  t.equal(d.path, '/anything?x=1');
  t.same(d.mirrors, []);
  t.same(d.requestEdits, []);
});

t.test('session persistence: the token pins the endpoint, a forged one is ignored', async (t) => {
  const svc = build();
  const first = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/sess' }), 1_000_000));
  const setCookie = first.responseEdits?.flatMap((e) => e.add).find(([n]) => n === 'set-cookie')?.[1];
  t.ok(setCookie, 'the first answer starts a session');
  const cookie = setCookie!.split(';')[0]!;
  const pinned = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const d = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/sess', headers: { cookie: `a=b; ${cookie}` } }), 1_000_000 + i));
    pinned.add(d.endpoint.key);
    t.equal(d.responseEdits, undefined, 'a current session is not re-issued');
  }
  t.same([...pinned], [first.endpoint.key], 'every request lands on the pinned endpoint');
  const forged = cookie.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
  const d = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/sess', headers: { cookie: forged } }), 1_000_000));
  t.ok(d.responseEdits?.some((e) => e.add.some(([n]) => n === 'set-cookie')), 'a forged token starts a new session');
  // Header type: the token comes back in the named header (set, replacing any the app sent).
  const h = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/sessh' }), 1_000_000));
  const token = h.responseEdits?.flatMap((e) => e.set).find(([n]) => n === 'x-session')?.[1];
  t.ok(token);
  const again = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/sessh', headers: { 'x-session': token! } }), 1_000_001));
  t.equal(again.endpoint.key, h.endpoint.key);
});

t.test('timeouts: the rule’s, and the deadline of one attempt', async (t) => {
  const svc = build();
  const d = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/slow' })));
  t.same(d.timeouts, { requestMs: 5000, backendRequestMs: 3000 });
  const cases: Array<[Parameters<typeof attemptTimeout>, ReturnType<typeof attemptTimeout>]> = [
    [[{ requestMs: 0, backendRequestMs: 0 }, 10], { ms: 0, kind: 'request' }],
    [[{ requestMs: 5000, backendRequestMs: 3000 }, 0], { ms: 3000, kind: 'backendRequest' }],
    [[{ requestMs: 5000, backendRequestMs: 3000 }, 4000], { ms: 1000, kind: 'request' }],
    [[{ requestMs: 5000, backendRequestMs: 0 }, 6000], { ms: 1, kind: 'request' }],
    [[{ requestMs: 0, backendRequestMs: 3000 }, 0, 500], { ms: 500, kind: 'backendRequest' }],
    [[{ requestMs: 0, backendRequestMs: 0 }, 100, 500], { ms: 400, kind: 'request' }],
  ];
  for (const [args, want] of cases) t.same(attemptTimeout(...args), want, JSON.stringify(args));
});

t.test('the retry slot carries the rule’s policy through', async (t) => {
  const svc = build();
  t.equal(forward(decide(svc, SERVICE_PORT, requestOf({ path: '/exact' }))).retry, undefined, 'no policy, no slot');
  const rule = svc.ports.get(SERVICE_PORT)!.rules[0]!;
  const policy = { attempts: 3 };
  (rule as typeof rule & { retry?: unknown }).retry = policy;
  t.equal(forward(decide(svc, SERVICE_PORT, requestOf({ path: '/exact' }))).retry, policy);
});

t.test('a mirror to a backend whose BackendTLSPolicy cannot be honoured is skipped, never plaintext', async (t) => {
  const svc = build((cfg) => {
    const rule = cfg.ports[0]!.rules.find((r) => r.route.ruleName === 'mirror-tls')!;
    rule.filters = [{ type: 'RequestMirror', backend: 'demo/badtls:80' }];
  });
  const d = forward(decide(svc, SERVICE_PORT, requestOf({ path: '/mtls/x' })));
  t.same(d.mirrors, []);
});

t.test('decide does not touch the request’s headers', async (t) => {
  const svc = build();
  const raw: IncomingHttpHeaders = { host: 'echo', 'x-b': 'old', 'x-c': 'gone' };
  const snapshot = JSON.stringify(raw);
  for (const c of ROUTE_CASES) decide(svc, SERVICE_PORT, requestOf(c, raw));
  t.equal(JSON.stringify(raw), snapshot);
});

// Issue 8, session persistence end to end: `weft up` with three echo
// endpoints behind a Service, HTTPRoute rules with sessionPersistence
// (Cookie and Header) and a BackendLBPolicy; the test plays the client app
// through the client pod's outbound sidecar. Compile → control → sidecar.
import t from 'tap';
import { configDir, docs, echoWorkload, meshGet, service, startMesh, waitFor, weft, writeConfig, type EchoResponse, type HttpResult } from './helpers/mesh.js';

const NS = 'sticky';
const WORKLOADS = ['echo-a', 'echo-b', 'echo-c'];

const workloads = (names: string[]) =>
  docs(
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['echo', 'echo-lb'] }),
    ...names.map((n) => echoWorkload({ name: n, namespace: NS, serviceAccount: 'echo', labels: { app: 'echo', version: n } })),
  );

const dir = configDir(t, {
  'services.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'echo', namespace: NS, selector: { app: 'echo' } }),
    service({ name: 'echo-lb', namespace: NS, selector: { app: 'echo' } }),
  ),
  'workloads.yaml': workloads(WORKLOADS),
  'policy.yaml': `apiVersion: gateway.networking.k8s.io/v1alpha2
kind: BackendLBPolicy
metadata:
  name: lb
  namespace: ${NS}
spec:
  targetRefs:
    - { group: "", kind: Service, name: echo-lb }
  sessionPersistence:
    type: Header
    sessionName: x-lb-session
`,
  'route.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: echo
  namespace: ${NS}
spec:
  parentRefs:
    - { group: "", kind: Service, name: echo, port: 80 }
  rules:
    - matches: [{ path: { type: PathPrefix, value: /cookie } }]
      backendRefs: [{ name: echo, port: 80 }]
      sessionPersistence:
        sessionName: sticky-cookie
        type: Cookie
        absoluteTimeout: 1h
        cookieConfig: { lifetimeType: Permanent }
    - matches: [{ path: { type: PathPrefix, value: /header } }]
      backendRefs: [{ name: echo, port: 80 }]
      sessionPersistence:
        sessionName: x-sticky
        type: Header
    - matches: [{ path: { type: PathPrefix, value: /override } }]
      backendRefs: [{ name: echo-lb, port: 80 }]
      sessionPersistence:
        sessionName: rule-wins
        type: Cookie
    - matches: [{ path: { type: PathPrefix, value: /policy } }]
      backendRefs: [{ name: echo-lb, port: 80 }]
    - backendRefs: [{ name: echo, port: 80 }]
`,
});

const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const call = (path: string, headers: Record<string, string> = {}) => meshGet(client.podIP, `http://echo.${NS}${path}`, { headers, timeoutMs: 5000 });
const who = (r: HttpResult) => (r.status === 200 ? r.json<EchoResponse>().workload : `(${r.status} ${r.body.trim()})`);
const setCookies = (r: HttpResult): string[] => {
  const s = r.headers['set-cookie'];
  return s === undefined ? [] : Array.isArray(s) ? s : [s];
};
const cookieOf = (r: HttpResult, name: string) => {
  const c = setCookies(r).find((x) => x.startsWith(`${name}=`));
  return c ? c.slice(name.length + 1).split(';')[0] : undefined;
};
const many = async (n: number, path: string, headers: Record<string, string> = {}) => {
  const out: HttpResult[] = [];
  for (let i = 0; i < n; i++) out.push(await call(path, headers));
  return out;
};
const whoSet = (rs: HttpResult[]) => new Set(rs.map(who));

await waitFor('all three endpoints serve', async () => whoSet(await many(30, '/warm')).size === 3, { timeoutMs: 30_000 });

let pinned = '';
let cookie = '';
t.test('Cookie: 100 requests carrying the cookie reach one endpoint of three; without it they spread', async (t) => {
  const first = await call('/cookie/start');
  t.equal(first.status, 200);
  const set = setCookies(first).find((c) => c.startsWith('sticky-cookie='));
  t.match(set, /^sticky-cookie=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+; Path=\/cookie; HttpOnly; SameSite=Lax; Max-Age=(3600|3599)$/);
  cookie = cookieOf(first, 'sticky-cookie')!;
  pinned = who(first);
  const rs = await many(100, '/cookie/x', { cookie: `sticky-cookie=${cookie}` });
  t.same([...whoSet(rs)], [pinned], `all 100 reached ${pinned}`);
  const spread = await many(100, '/cookie/x');
  t.comment(`without the cookie: ${[...whoSet(spread)].join(', ')}`);
  t.ok(whoSet(spread).size >= 2, 'spread');
});

t.test('a tampered cookie is ignored, never honoured', async (t) => {
  const dot = cookie.indexOf('.');
  for (const bad of [cookie.slice(0, dot - 1) + (cookie[dot - 1] === 'A' ? 'B' : 'A') + cookie.slice(dot), `${cookie.slice(0, dot)}.${'A'.repeat(43)}`, 'forged']) {
    const rs = await many(30, '/cookie/x', { cookie: `sticky-cookie=${bad}` });
    t.ok(whoSet(rs).size >= 2, `spread (${[...whoSet(rs)].join(', ')})`);
    t.ok(rs.every((r) => { const c = cookieOf(r, 'sticky-cookie'); return c && c !== bad; }), 'each response starts a new session');
  }
});

t.test('Header: the same with the named header', async (t) => {
  const first = await call('/header/start');
  const h = first.headers['x-sticky'];
  t.type(h, 'string');
  const rs = await many(100, '/header/x', { 'x-sticky': h as string });
  t.same([...whoSet(rs)], [who(first)]);
  t.ok(whoSet(await many(60, '/header/x')).size >= 2, 'without it: spread');
});

t.test("a rule's sessionPersistence overrides the BackendLBPolicy on its backend", async (t) => {
  const pol = await call('/policy/start');
  t.type(pol.headers['x-lb-session'], 'string', 'the policy applies to a rule without its own setting');
  const rs = await many(50, '/policy/x', { 'x-lb-session': pol.headers['x-lb-session'] as string });
  t.same([...whoSet(rs)], [who(pol)]);
  const ov = await call('/override/start');
  t.equal(ov.headers['x-lb-session'], undefined, 'no policy header');
  t.ok(cookieOf(ov, 'rule-wins'), "the rule's cookie instead");
  const rs2 = await many(50, '/override/x', { cookie: `rule-wins=${cookieOf(ov, 'rule-wins')}` });
  t.same([...whoSet(rs2)], [who(ov)]);
});

t.test('weft get policies shows the BackendLBPolicy accepted', async (t) => {
  const p = weft(t, ['get', 'policies', '-n', NS, '--control-admin', mesh.controlAdmin.replace('http://', '')]);
  const done = await p.exited;
  t.equal(done.code, 0, p.stderr());
  t.match(p.stdout(), /\blb\s+BackendLBPolicy\s+Service\/echo-lb\s+True\b/);
  t.comment(p.stdout().trim());
});

t.test('the pinned endpoint goes away: the next request lands elsewhere with a new cookie', async (t) => {
  writeConfig(dir, 'workloads.yaml', workloads(WORKLOADS.filter((w) => w !== pinned)));
  let moved: HttpResult | undefined;
  await waitFor(`${pinned} to leave the backend set`, async () => {
    const r = await call('/cookie/x', { cookie: `sticky-cookie=${cookie}` });
    if (r.status === 200 && who(r) !== pinned) moved = r;
    return !!moved;
  }, { timeoutMs: 30_000 });
  const next = cookieOf(moved!, 'sticky-cookie');
  t.ok(next && next !== cookie, `landed on ${who(moved!)} with a new cookie`);
  const rs = await many(50, '/cookie/x', { cookie: `sticky-cookie=${next}` });
  t.same([...whoSet(rs)], [who(moved!)], 'and the new session holds');
});

// Session persistence (GEP-1619) through a real sidecar: three app endpoints,
// configs from a weft.proto fake control, real HTTP. Cookie and Header
// sessions pin one endpoint; without one the balancer spreads; a tampered or
// forged token is ignored; an endpoint that leaves ends its sessions; idle
// and absolute timeouts expire them; persistence beats weights (weight 0);
// a rule's setting beats the backend's BackendLBPolicy; sessions survive a
// config push that keeps the endpoint and a sidecar restart.
import t from 'tap';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { BackendConfig, CompiledRule, Endpoint, SessionConfig, ServiceConfig } from '../../../api/index.js';
import { issueToken, startSidecar, verifyToken, type SidecarHandle } from '../../index.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const EPS = [ip(2), ip(3), ip(4)];
const ZERO = ip(5);
const CLIENT = ip(6);
const SECRET = randomBytes(32);

function app(name: string, host: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'app=1; Path=/' });
      res.end(JSON.stringify({ app: name, cookie: req.headers.cookie ?? '' }));
    });
  });
  return new Promise((r) => s.listen(8080, host, () => r(s)));
}

const ep = (h: string): Endpoint => ({ ip: h, port: 8080, ready: true });
const backend = (name: string, endpoints: Endpoint[], extra: Partial<BackendConfig> = {}): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints, ...extra });
const scope = (i: number) => `HTTPRoute/demo/r/rules/${i}`;
const cookie = (i: number, extra: Partial<SessionConfig> = {}): SessionConfig => ({ type: 'Cookie', name: `sess-${i}`, permanent: false, path: `/p${i}`, scope: scope(i), source: 'route', ...extra });
const rule = (i: number, backends: CompiledRule['backends'], session?: SessionConfig): CompiledRule => ({
  route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: i, ruleName: `r${i}` },
  filters: [],
  backends,
  ...(session ? { session } : {}),
});
const to = (b: string, weight = 1) => ({ backend: `demo/${b}:80`, weight, filters: [] });

function serviceConfig(endpoints: string[]): ServiceConfig {
  const rules: CompiledRule[] = [
    rule(0, [to('three')], cookie(0, { permanent: true, absoluteTimeoutMs: 3_600_000 })),
    rule(1, [to('three')], { type: 'Header', name: 'x-session', permanent: false, scope: scope(1), source: 'route' }),
    rule(2, [to('three')], cookie(2, { idleTimeoutMs: 1_500 })),
    rule(3, [to('three')], cookie(3, { absoluteTimeoutMs: 1_500 })),
    rule(4, [to('three', 1), to('zero', 0)], cookie(4)),
    rule(5, [to('plain')]),
  ];
  // 'three' carries a BackendLBPolicy session (Header x-policy) that every rule above overrides.
  const policy: SessionConfig = { type: 'Header', name: 'x-policy', permanent: false, scope: 'BackendLBPolicy/demo/lb/demo/three:80', source: 'BackendLBPolicy' };
  return {
    service: 'demo/echo', namespace: 'demo', name: 'echo', consumerNamespace: 'demo', clusterIP: '10.96.0.10', sessionSecret: SECRET.toString('base64'),
    backends: {
      'demo/three:80': backend('three', endpoints.map(ep), { session: policy }),
      'demo/zero:80': backend('zero', [ep(ZERO)]),
      'demo/plain:80': backend('plain', endpoints.map(ep)),
      'demo/echo:80': backend('echo', endpoints.map(ep), { session: policy }),
    },
    ports: [
      {
        port: 80, targetPort: 8080, appProtocol: 'http', routeKind: 'HTTPRoute', defaultBackend: 'demo/echo:80', rules,
        matches: rules.map((_, i) => ({ rule: i, path: { type: 'PathPrefix' as const, value: `/p${i}` }, headers: [], queryParams: [] })),
      },
      // No routes on 81: the Service's own backend, whose BackendLBPolicy session applies.
      { port: 81, targetPort: 8080, appProtocol: 'http', routeKind: 'none', defaultBackend: 'demo/echo:80', rules: [], matches: [] },
    ],
  };
}

interface Res {
  status: number;
  app: string;
  setCookie: string[];
  headers: Record<string, string | string[] | undefined>;
}

function cookieValue(setCookie: string[], name: string): string | undefined {
  for (const c of setCookie) if (c.startsWith(`${name}=`)) return c.slice(name.length + 1).split(';')[0];
  return undefined;
}

t.test('session persistence through a sidecar', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-session-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'echo', cluster_ip: '10.96.0.10', ports: [{ name: 'http', port: 80, target_port: 8080, app_protocol: 'http' }, { name: 'alt', port: 81, target_port: 8080, app_protocol: 'http' }], meshed: true }] });
  control.setService(serviceConfig(EPS), 'v1');

  const apps = await Promise.all([...EPS.map((h, i) => app(`ep${i}`, h)), app('zero', ZERO)]);
  t.teardown(() => apps.forEach((a) => (a.closeAllConnections(), a.close())));
  const common = { control: control.address, stateDir: control.stateDir, namespace: 'demo', log: () => {} };
  let client: SidecarHandle = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client' });
  t.teardown(() => client.close(100));
  await client.ready;
  let pool = new Pool(`http://${client.outboundAddress}`, { connections: 8 });
  t.teardown(() => pool.destroy());

  const get = async (path: string, headers: Record<string, string> = {}, host = 'echo'): Promise<Res> => {
    const r = await pool.request({ path, method: 'GET', headers: { host, ...headers } });
    const text = await r.body.text();
    const sc = r.headers['set-cookie'];
    let appName = '';
    try {
      appName = (JSON.parse(text) as { app: string }).app;
    } catch {
      appName = `(${text.trim()})`;
    }
    return { status: r.statusCode, app: appName, setCookie: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc], headers: r.headers };
  };
  const many = async (n: number, path: string, headers: Record<string, string> = {}, host?: string) => {
    const out: Res[] = [];
    for (let i = 0; i < n; i++) out.push(await get(path, headers, host));
    return out;
  };
  const apps1 = (rs: Res[]) => new Set(rs.map((r) => r.app));

  let pinned = '';
  let token = '';
  await t.test('Cookie: the first response sets it, 100 requests carrying it reach one endpoint of three', async (t) => {
    const first = await get('/p0/a');
    t.equal(first.status, 200);
    const set = first.setCookie.find((c) => c.startsWith('sess-0='));
    t.ok(set, 'Set-Cookie for the session');
    t.match(set, /; Path=\/p0; HttpOnly; SameSite=Lax; Max-Age=(3600|3599)$/);
    t.ok(first.setCookie.includes('app=1; Path=/'), "the app's own cookie is kept");
    t.equal(first.headers['x-policy'], undefined, "the rule's session overrides the backend's BackendLBPolicy");
    token = cookieValue(first.setCookie, 'sess-0')!;
    const tk = verifyToken(SECRET, scope(0), token);
    t.ok(tk, 'the token verifies under the secret and scope');
    t.notOk(verifyToken(SECRET, scope(1), token), 'and not under another rule');
    pinned = first.app;
    t.equal(tk!.endpoint, `${EPS[Number(pinned.slice(2))]}:8080|`, 'it names the endpoint that answered');
    const rs = await many(100, '/p0/a', { cookie: `other=x; sess-0=${token}` });
    t.same([...apps1(rs)], [pinned], `all 100 reached ${pinned}`);
    t.equal(rs.filter((r) => r.setCookie.some((c) => c.startsWith('sess-0='))).length, 0, 'no new cookie while the session holds');
  });

  await t.test('without the cookie the balancer spreads, and each response starts a session', async (t) => {
    const rs = await many(100, '/p0/a');
    t.ok(apps1(rs).size >= 2, `spread over ${[...apps1(rs)].join(', ')}`);
    t.equal(rs.filter((r) => r.setCookie.some((c) => c.startsWith('sess-0='))).length, 100);
    const plain = await many(60, '/p5/a');
    t.ok(apps1(plain).size >= 2, 'a rule without persistence spreads');
    t.equal(plain.filter((r) => r.setCookie.some((c) => c.startsWith('sess-'))).length, 0, 'and sets no session cookie');
  });

  await t.test('a tampered or forged cookie is ignored, never honoured', async (t) => {
    // Flip one character of the payload: signature no longer holds.
    const dot = token.indexOf('.');
    const c = token[dot - 2] === 'A' ? 'B' : 'A';
    const tampered = token.slice(0, dot - 2) + c + token.slice(dot - 1);
    const forgedKey = randomBytes(32);
    const target = EPS.find((_, i) => `ep${i}` !== pinned)!;
    const forged = issueToken(forgedKey, scope(0), { endpoint: `${target}:8080|`, issued: Date.now(), lastUsed: Date.now() });
    const unsigned = `${Buffer.from(`0~0~${target}:8080|`).toString('base64url')}.`;
    for (const bad of [tampered, forged, unsigned, 'garbage', `${token}x`]) {
      const rs = await many(30, '/p0/a', { cookie: `sess-0=${bad}` });
      t.ok(apps1(rs).size >= 2, `${bad.slice(0, 12)}…: requests spread (${[...apps1(rs)].join(', ')})`);
      const fresh = rs.map((r) => cookieValue(r.setCookie, 'sess-0'));
      t.ok(fresh.every((v) => v && v !== bad && verifyToken(SECRET, scope(0), v)), 'each gets a new, valid cookie');
    }
  });

  await t.test('Header: same with the named header, the token comes back in it', async (t) => {
    const first = await get('/p1/a');
    const h = first.headers['x-session'];
    t.type(h, 'string');
    t.equal(first.setCookie.filter((c) => c.startsWith('sess-')).length, 0, 'no cookie for a Header session');
    const rs = await many(100, '/p1/a', { 'x-session': h as string });
    t.same([...apps1(rs)], [first.app], `all 100 reached ${first.app}`);
    const spread = await many(60, '/p1/a');
    t.ok(apps1(spread).size >= 2, 'without the header the balancer spreads');
    // Flip a character in the middle of the signature: the last base64url
    // character of a 32-byte MAC carries padding bits (A and B decode alike).
    const sig = (h as string).indexOf('.') + 5;
    const tamperedHeader = (h as string).slice(0, sig) + ((h as string)[sig] === 'A' ? 'B' : 'A') + (h as string).slice(sig + 1);
    const bad = await many(30, '/p1/a', { 'x-session': tamperedHeader });
    t.ok(apps1(bad).size >= 2, 'a tampered header is ignored');
  });

  await t.test('a BackendLBPolicy session applies where no rule has one', async (t) => {
    const first = await get('/x', {}, 'echo:81');
    const h = first.headers['x-policy'];
    t.type(h, 'string', 'the policy header session starts');
    const rs = await many(50, '/x', { 'x-policy': h as string }, 'echo:81');
    t.same([...apps1(rs)], [first.app]);
  });

  await t.test('persistence beats weights: a session on a weight-0 backend is honoured', async (t) => {
    const now = Date.now();
    const tk = issueToken(SECRET, scope(4), { endpoint: `${ZERO}:8080|`, issued: now, lastUsed: now });
    const rs = await many(30, '/p4/a', { cookie: `sess-4=${tk}` });
    t.same([...apps1(rs)], ['zero']);
    const fresh = await many(30, '/p4/a');
    t.notOk(apps1(fresh).has('zero'), 'weight 0 is never picked by the balancer');
  });

  await t.test('a config push that keeps the endpoint keeps the session', async (t) => {
    control.setService(serviceConfig([...EPS].reverse()), 'v2');
    await new Promise((r) => setTimeout(r, 300));
    const rs = await many(30, '/p0/a', { cookie: `sess-0=${token}` });
    t.same([...apps1(rs)], [pinned]);
  });

  await t.test('a sidecar restart keeps the session (the token is self-contained)', async (t) => {
    await pool.destroy();
    await client.close(100);
    client = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client' });
    await client.ready;
    pool = new Pool(`http://${client.outboundAddress}`, { connections: 8 });
    const rs = await many(30, '/p0/a', { cookie: `sess-0=${token}` });
    t.same([...apps1(rs)], [pinned]);
  });

  await t.test('the endpoint goes away: the next request lands elsewhere with a new cookie', async (t) => {
    const gone = EPS[Number(pinned.slice(2))]!;
    control.setService(serviceConfig(EPS.filter((h) => h !== gone)), 'v3');
    await new Promise((r) => setTimeout(r, 300));
    const r = await get('/p0/a', { cookie: `sess-0=${token}` });
    t.equal(r.status, 200);
    t.not(r.app, pinned, `landed on ${r.app}`);
    const next = cookieValue(r.setCookie, 'sess-0');
    t.ok(next && next !== token, 'a new cookie');
    const tk = verifyToken(SECRET, scope(0), next!);
    t.equal(tk?.endpoint, `${EPS[Number(r.app.slice(2))]}:8080|`);
    const rs = await many(30, '/p0/a', { cookie: `sess-0=${next}` });
    t.same([...apps1(rs)], [r.app], 'and the new session holds');
    control.setService(serviceConfig(EPS), 'v4');
    await new Promise((r) => setTimeout(r, 300));
  });

  await t.test('idle timeout: use refreshes the session, idleness ends it', async (t) => {
    const first = await get('/p2/a');
    const c0 = cookieValue(first.setCookie, 'sess-2')!;
    const t0 = verifyToken(SECRET, scope(2), c0)!;
    let cur = c0;
    // Used every 500 ms for 2.5 s (longer than the 1.5 s idle timeout): refreshed, same session.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const r = await get('/p2/a', { cookie: `sess-2=${cur}` });
      t.equal(r.app, first.app);
      const n = cookieValue(r.setCookie, 'sess-2');
      if (n) {
        const tk = verifyToken(SECRET, scope(2), n)!;
        t.equal(tk.issued, t0.issued, 'a refresh keeps the session start');
        cur = n;
      }
    }
    t.ok(verifyToken(SECRET, scope(2), cur)!.lastUsed > t0.lastUsed, 'last-used moved on');
    await new Promise((r) => setTimeout(r, 1_700));
    const late = await get('/p2/a', { cookie: `sess-2=${cur}` });
    const n = cookieValue(late.setCookie, 'sess-2');
    t.ok(n, 'idle too long: a new session');
    t.ok(verifyToken(SECRET, scope(2), n!)!.issued > t0.issued);
  });

  await t.test('absolute timeout ends a session however much it is used', async (t) => {
    const first = await get('/p3/a');
    const c0 = cookieValue(first.setCookie, 'sess-3')!;
    const t0 = verifyToken(SECRET, scope(3), c0)!;
    const again = await get('/p3/a', { cookie: `sess-3=${c0}` });
    t.equal(cookieValue(again.setCookie, 'sess-3'), undefined, 'still valid: no new cookie');
    await new Promise((r) => setTimeout(r, 1_700));
    const late = await get('/p3/a', { cookie: `sess-3=${c0}` });
    const n = cookieValue(late.setCookie, 'sess-3');
    t.ok(n && verifyToken(SECRET, scope(3), n)!.issued > t0.issued, 'expired: a new session');
  });
});

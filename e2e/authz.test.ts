// Identity-based authorization end to end (issue 15, GEP-3779): `weft up`
// runs control, a `cart` app that counts everything reaching it, and four
// callers with their own sidecars and identities (shop/web, shop/other,
// evil/web, ops/probe). Requests go app → caller's sidecar → mTLS hop →
// cart's sidecar, which decides by the caller's SPIFFE ID. Every policy edit
// must apply within a second, over connections opened before it, and nothing
// denied may reach the app.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { hopServerName } from '../api/index.js';
import { IdentityHolder } from '../sidecar/config/bootstrap.js';
import { execFileSync } from 'node:child_process';
import { configDir, docs, echoWorkload, httpRequest, REPO, startMesh, waitFor, WEFT_JS, writeConfig, type PodInfo } from './helpers/mesh.js';
import { echoClient, grpc, unary, type EchoClient } from './helpers/grpc-echo.js';

const APP = join(REPO, 'e2e', 'helpers', 'authz-app.mjs');

const namespaces = (annotation?: string) =>
  ['shop', 'evil', 'ops']
    .map((n) =>
      [
        'apiVersion: v1',
        'kind: Namespace',
        'metadata:',
        `  name: ${n}`,
        ...(annotation && n === 'shop' ? ['  annotations:', `    weft.io/default-inbound-policy: ${annotation}`] : []),
        '',
      ].join('\n'),
    )
    .join('---\n');

const CART = `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata: { name: cart, namespace: shop }
spec:
  command: [node, ${JSON.stringify(APP)}]
  serviceAccount: cart
  labels: { app: cart }
  ports: [8080, 8081, 9000, 6000]
  probePaths: [/healthz]
  env: { PORTS: "8080,8081", GRPC_PORT: "9000", TCP_PORT: "6000" }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop }
spec:
  selector: { app: cart }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: http-alt, port: 81, targetPort: 8081 }
    - { name: grpc, port: 9000, targetPort: 9000, appProtocol: grpc }
    - { name: tcp, port: 6000, targetPort: 6000, appProtocol: tcp }
`;

const policy = (rules: string, extra = '') => `apiVersion: policy.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  targetRefs:
    - { group: "", kind: Pod, selector: { matchLabels: { app: cart } } }
  action: ${extra || 'ALLOW'}
${rules}`;

const ALLOW_WEB = policy(`  rules:
    - sources: [{ type: ServiceAccount, serviceAccount: { name: web } }]
`);

interface Counts {
  http: number;
  grpc: number;
  tcp: number;
  tcpBytes: number;
  paths: Record<string, number>;
}

t.test('AuthorizationPolicy enforced at the inbound sidecar by mTLS identity', async (t) => {
  const dir = configDir(t, {
    'namespaces.yaml': namespaces(),
    'cart.yaml': CART,
    'clients.yaml': docs(
      echoWorkload({ name: 'web', namespace: 'shop' }),
      echoWorkload({ name: 'other', namespace: 'shop' }),
      echoWorkload({ name: 'web', namespace: 'evil' }),
      echoWorkload({ name: 'probe', namespace: 'ops' }),
    ),
  });
  const mesh = await startMesh(t, dir);
  const pod = (ns: string, w: string): PodInfo => {
    const p = mesh.pods.find((x) => x.namespace === ns && x.workload === w);
    if (!p) throw new Error(`no pod ${ns}/${w}`);
    return p;
  };
  const cart = pod('shop', 'cart');
  const callers = { web: pod('shop', 'web'), other: pod('shop', 'other'), evilWeb: pod('evil', 'web'), probe: pod('ops', 'probe') };

  // One keep-alive connection per caller (maxSockets 1): every request of the
  // test rides the connection opened before the first edit.
  const agents = new Map<string, http.Agent>();
  const sockets = new Map<string, Set<string>>();
  t.teardown(() => {
    for (const a of agents.values()) a.destroy();
  });
  const get = (from: PodInfo, port = 80, path = '/x'): Promise<{ status: number; error: string; body: string }> => {
    let agent = agents.get(from.podIP);
    if (!agent) agents.set(from.podIP, (agent = new http.Agent({ keepAlive: true, maxSockets: 1 })));
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: from.podIP, port: 7001, path: `http://cart.shop:${port}${path}`, headers: { host: `cart.shop:${port}` }, agent, timeout: 5000 },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, error: String(res.headers['weft-proxy-error'] ?? ''), body }));
        },
      );
      req.on('socket', (s) => {
        const set = sockets.get(from.podIP) ?? new Set();
        if (s.localPort) set.add(`${s.localPort}`);
        else s.once('connect', () => set.add(`${s.localPort}`));
        sockets.set(from.podIP, set);
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
  };
  const counts = async (): Promise<Counts> => (await httpRequest(`http://${cart.podIP}:8099/counts`)).json<Counts>();
  const grpcClients = new Map<string, EchoClient>();
  t.teardown(() => {
    for (const c of grpcClients.values()) c.close();
  });
  const call = async (from: PodInfo): Promise<number> => {
    let c = grpcClients.get(from.podIP);
    if (!c) grpcClients.set(from.podIP, (c = echoClient(`${from.podIP}:7001`, 'cart.shop:9000')));
    try {
      await unary(c, 'Echo', { text: 'hi' }, { deadlineMs: 5000 });
      return grpc.status.OK;
    } catch (e) {
      return (e as grpc.ServiceError).code;
    }
  };
  // Opaque TCP: a TLS hop to cart's inbound with ALPN weft-opaque, as a peer sidecar dials it, under a certified identity.
  const identities = new Map<string, IdentityHolder>();
  t.teardown(() => {
    for (const h of identities.values()) h.close();
  });
  const identity = async (ns: string, sa: string): Promise<IdentityHolder> => {
    let h = identities.get(`${ns}/${sa}`);
    if (!h) {
      h = new IdentityHolder({ control: mesh.control, stateDir: mesh.stateDir, namespace: ns, serviceAccount: sa, trustDomain: 'cluster.local', log: () => {} });
      identities.set(`${ns}/${sa}`, h);
      h.start();
      await h.ready;
    }
    return h;
  };
  const opaque = async (ns: string, sa: string): Promise<string> => {
    const id = await identity(ns, sa);
    return new Promise((resolve) => {
      let got = '';
      const s = tls.connect({
        host: cart.podIP,
        port: 7002,
        servername: hopServerName(6000, 'cart', 'shop'),
        ALPNProtocols: ['weft-opaque'],
        secureContext: id.current!.context,
        checkServerIdentity: () => undefined,
      });
      s.setEncoding('utf8');
      s.on('secureConnect', () => s.write('ping'));
      s.on('data', (d: string) => {
        got += d;
        if (got === 'ping') s.end();
      });
      s.on('error', () => {});
      s.on('close', () => resolve(got));
      setTimeout(() => s.destroy(), 3000).unref();
    });
  };
  /** Time from a config edit until `fn` holds, polled every 25 ms. */
  const applied = async (what: string, fn: () => Promise<boolean>): Promise<number> => {
    const t0 = Date.now();
    await waitFor(what, fn, { timeoutMs: 8000, intervalMs: 25 });
    const ms = Date.now() - t0;
    t.ok(ms < 1000, `${what}: within a second of the edit (${ms} ms)`);
    return ms;
  };
  const metrics = async (): Promise<string> => (await httpRequest(`${cart.adminUrl}/metrics`)).body;
  const decisions = (text: string, policyName: string, source: string, decision: string): number => {
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`weft_authz_decisions_total{policy="${policyName}",source_identity="${source}",decision="${decision}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const SPIFFE = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

  await t.test('with no policy every caller is allowed', async (t) => {
    for (const [name, from] of Object.entries(callers)) t.equal((await get(from)).status, 200, `${name} → cart`);
    t.equal(await call(callers.web), grpc.status.OK, 'gRPC from shop/web');
    t.equal(await call(callers.other), grpc.status.OK, 'gRPC from shop/other');
    t.equal(await opaque('shop', 'other'), 'ping', 'opaque TCP from shop/other is echoed');
    const m = await metrics();
    t.ok(decisions(m, 'default:all-unauthenticated', SPIFFE('shop', 'web'), 'allow') >= 1, 'allowed requests are counted under the default policy');
  });

  await t.test('a policy allowing one service account turns away the others', async (t) => {
    writeConfig(dir, 'policy.yaml', ALLOW_WEB);
    await applied('shop/other refused', async () => (await get(callers.other)).status === 403);
    const before = await counts();
    const denied = await get(callers.other);
    t.equal(denied.status, 403);
    t.match(denied.error, /AuthorizationPolicy shop\/allow-web does not allow spiffe:\/\/cluster\.local\/ns\/shop\/sa\/other on port 8080/, 'weft-proxy-error says why');
    t.equal((await get(callers.web)).status, 200, 'shop/web allowed');
    t.equal((await get(callers.evilWeb)).status, 403, 'the same service-account name from namespace evil is refused');
    const cfg = (await httpRequest(`${cart.adminUrl}/config`)).json<{ inbound: { config: { policies: Array<{ name: string }> } } }>();
    t.same(cfg.inbound.config.policies.map((p) => p.name), ['shop/allow-web'], 'the sidecar\'s /config shows the policies it enforces');
    const webCfg = (await httpRequest(`${callers.web.adminUrl}/config`)).json<{ inbound: { config: { policies: unknown[] } } }>();
    t.same(webCfg.inbound.config.policies, [], 'a sidecar gets only the policies selecting its own pod');
    t.equal((await get(callers.probe)).status, 403, 'ops/probe refused');
    t.equal(await call(callers.other), grpc.status.PERMISSION_DENIED, 'gRPC from shop/other: PERMISSION_DENIED');
    // Plain HTTP/2 (h2c prior knowledge from the app, an h2 hop): refused per stream with 403.
    const h2 = await new Promise<{ status: number; error: string }>((resolve, reject) => {
      const session = http2.connect(`http://${callers.other.podIP}:7001`);
      session.on('error', reject);
      const req = session.request({ ':method': 'GET', ':path': '/h2', ':authority': 'cart.shop:80' });
      req.on('response', (h) => {
        resolve({ status: Number(h[':status']), error: String(h['weft-proxy-error'] ?? '') });
        req.close();
        session.close();
      });
      req.on('error', reject);
      req.end();
    });
    t.equal(h2.status, 403, 'HTTP/2 from shop/other: 403');
    t.match(h2.error, /AuthorizationPolicy shop\/allow-web does not allow/, 'with weft-proxy-error');
    t.equal(await call(callers.web), grpc.status.OK, 'gRPC from shop/web still OK');
    t.equal(await opaque('shop', 'other'), '', 'opaque TCP from shop/other closed before any byte');
    t.equal(await opaque('shop', 'web'), 'ping', 'opaque TCP from shop/web echoed');
    const after = await counts();
    // What reached the app: only what was allowed (web's HTTP request, gRPC call and TCP connection).
    t.equal(after.http - before.http, 1, 'the app saw exactly the allowed HTTP request');
    t.equal(after.grpc - before.grpc, 1, 'the app saw exactly the allowed gRPC call');
    t.equal(after.tcp - before.tcp, 1, 'the app saw exactly the allowed TCP connection');
    const m = await metrics();
    t.ok(decisions(m, 'shop/allow-web', SPIFFE('shop', 'other'), 'deny') >= 3, 'denials counted per policy and source identity');
    t.ok(decisions(m, 'shop/allow-web', SPIFFE('shop', 'web'), 'allow') >= 2, 'allows counted per policy and source identity');
  });

  await t.test('weft get policies and weft describe workload|pod show the policy and what it allows', async (t) => {
    const cli = (...args: string[]) => execFileSync(process.execPath, [WEFT_JS, ...args, '--control-admin', mesh.controlAdmin], { encoding: 'utf8' });
    const table = cli('get', 'policies', '-n', 'shop');
    t.match(table, /allow-web\s+AuthorizationPolicy\s+Pod\{app=cart\}\s+True/, 'get policies: kind, target, Accepted');
    const json = JSON.parse(cli('get', 'policies', '-n', 'shop', '-o', 'json')) as { items?: Array<{ status?: { ancestors: Array<{ conditions: Array<{ type: string; status: string; message: string }> }> } }> } & { status?: unknown };
    const item = (json.items ?? [json])[0] as { status?: { ancestors: Array<{ conditions: Array<{ type: string; status: string; message: string }> }> } };
    t.match(item.status?.ancestors[0]?.conditions[0], { type: 'Accepted', status: 'True', message: /selects 1 pod\(s\)/ }, '-o json carries the conditions');
    const wl = cli('describe', 'workload', 'cart', '-n', 'shop');
    t.match(wl, /shop\/allow-web\s+selector app=cart\s+Accepted True/, 'describe workload lists the policy that selects it');
    t.match(wl, /rule 1 allows service account shop\/web on every port/, 'and what it allows');
    t.match(wl, /Probe paths \(always allowed\): \/healthz/);
    const pd = cli('describe', 'pod', 'cart-0', '-n', 'shop');
    t.match(pd, /Pod:\s+shop\/cart-0/);
    t.match(pd, /shop\/allow-web/);
    t.match(cli('describe', 'workload', 'web', '-n', 'shop'), /Authorization policies: none select it; the default inbound policy all-unauthenticated decides/);
  });

  await t.test('"*" admits a whole namespace', async (t) => {
    writeConfig(dir, 'policy.yaml', policy(`  rules:
    - sources: [{ type: ServiceAccount, serviceAccount: { name: "*" } }]
`));
    await applied('shop/other admitted', async () => (await get(callers.other)).status === 200);
    t.equal((await get(callers.web)).status, 200, 'shop/web');
    t.equal((await get(callers.evilWeb)).status, 403, 'evil/web still refused');
  });

  await t.test('a SPIFFE source admits exactly that identity', async (t) => {
    writeConfig(dir, 'policy.yaml', policy(`  rules:
    - sources: [{ type: SPIFFE, spiffe: "spiffe://cluster.local/ns/ops/sa/probe" }]
`));
    await applied('ops/probe admitted', async () => (await get(callers.probe)).status === 200);
    t.equal((await get(callers.web)).status, 403, 'shop/web refused');
    t.equal((await get(callers.other)).status, 403, 'shop/other refused');
  });

  await t.test('ports narrow a rule to those destination ports', async (t) => {
    writeConfig(dir, 'policy.yaml', policy(`  rules:
    - sources: [{ type: ServiceAccount, serviceAccount: { name: web } }]
      networkAttributes: { ports: [8081] }
`));
    await applied('shop/web allowed on app port 8081 (Service port 81)', async () => (await get(callers.web, 81)).status === 200);
    t.equal((await get(callers.web, 80)).status, 403, 'shop/web refused on app port 8080');
    t.equal((await get(callers.other, 81)).status, 403, 'shop/other refused on 8081');
  });

  await t.test('a policy without rules denies all', async (t) => {
    writeConfig(dir, 'policy.yaml', policy(''));
    await applied('shop/web refused on 8081', async () => (await get(callers.web, 81)).status === 403);
    const before = await counts();
    for (const [name, from] of Object.entries(callers)) t.equal((await get(from)).status, 403, `${name} refused`);
    t.equal(await call(callers.web), grpc.status.PERMISSION_DENIED, 'gRPC refused');
    const after = await counts();
    t.equal(after.http, before.http, 'no HTTP request reached the app');
    t.equal(after.grpc, before.grpc, 'no gRPC call reached the app');
  });

  await t.test('an invalid policy is reported with its field; the previous valid one keeps being enforced', async (t) => {
    writeConfig(dir, 'policy.yaml', ALLOW_WEB);
    await applied('shop/web allowed again', async () => (await get(callers.web)).status === 200);
    writeConfig(dir, 'policy.yaml', policy(`  rules:
    - sources: [{ type: SPIFFE, spiffe: "not-a-spiffe-id" }]
`, 'DENY'));
    const errs = await waitFor('control to report the invalid policy', async () => {
      const r = (await httpRequest(`${mesh.controlAdmin}/resources`)).json<{ errors: Array<{ resource: string; field: string; message: string }> }>();
      const mine = r.errors.filter((e) => e.resource === 'AuthorizationPolicy shop/allow-web');
      return mine.length >= 2 ? mine : undefined;
    });
    t.ok(errs.some((e) => e.field === 'spec.action' && /Unsupported value: "DENY"/.test(e.message)), 'spec.action named');
    t.ok(errs.some((e) => e.field === 'spec.rules[0].sources[0].spiffe' && /spiffe:\/\/<trust domain>\/<path>/.test(e.message)), 'the spiffe field named');
    t.equal((await get(callers.web)).status, 200, 'shop/web still allowed');
    t.equal((await get(callers.other)).status, 403, 'shop/other still refused');
  });

  await t.test('deleting the policy restores access', async (t) => {
    rmSync(join(dir, 'policy.yaml'));
    await applied('shop/other admitted', async () => (await get(callers.other)).status === 200);
    t.equal((await get(callers.evilWeb)).status, 200, 'evil/web');
    t.equal(await call(callers.other), grpc.status.OK, 'gRPC from shop/other');
    t.equal(await opaque('shop', 'other'), 'ping', 'opaque TCP from shop/other');
  });

  await t.test('audit lets everything through and counts what a policy would deny', async (t) => {
    writeConfig(dir, 'namespaces.yaml', namespaces('audit'));
    writeConfig(dir, 'policy.yaml', ALLOW_WEB);
    await applied('shop/other audited', async () => (await get(callers.other)).status === 200 && decisions(await metrics(), 'shop/allow-web', SPIFFE('shop', 'other'), 'audit') > 0);
    const before = decisions(await metrics(), 'shop/allow-web', SPIFFE('shop', 'other'), 'audit');
    const c0 = await counts();
    for (let i = 0; i < 3; i++) t.equal((await get(callers.other)).status, 200, 'shop/other let through');
    t.equal((await get(callers.evilWeb)).status, 200, 'evil/web let through');
    t.equal(await call(callers.other), grpc.status.OK, 'gRPC let through');
    const c1 = await counts();
    t.equal(c1.http - c0.http, 4, 'the app saw every audited request');
    const m = await metrics();
    t.ok(decisions(m, 'shop/allow-web', SPIFFE('shop', 'other'), 'audit') >= before + 4, 'audited requests counted as decision="audit"');
    t.ok(decisions(m, 'shop/allow-web', SPIFFE('evil', 'web'), 'audit') >= 1, 'per source identity');
  });

  await t.test('deny refuses everything but the probe paths', async (t) => {
    rmSync(join(dir, 'policy.yaml'));
    writeConfig(dir, 'namespaces.yaml', namespaces('deny'));
    await applied('shop/web refused', async () => (await get(callers.web)).status === 403);
    const r = await get(callers.web);
    t.match(r.error, /default inbound policy deny refuses/, 'weft-proxy-error names the default policy');
    const c0 = await counts();
    t.equal((await get(callers.web, 80, '/healthz')).status, 200, 'the Workload probe path /healthz stays allowed');
    t.equal((await get(callers.evilWeb, 81, '/healthz?x=1')).status, 200, 'on every port, query ignored');
    t.equal((await get(callers.web, 80, '/healthz/x')).status, 403, 'only the exact path');
    t.equal(await call(callers.web), grpc.status.PERMISSION_DENIED, 'gRPC refused');
    t.equal(await opaque('shop', 'web'), '', 'opaque TCP refused');
    const c1 = await counts();
    t.equal(c1.http - c0.http, 2, 'only the probes reached the app');
    t.equal(c1.paths['/healthz'] ?? 0, 2);
    t.equal(c1.tcp, c0.tcp, 'no TCP connection reached the app');
    t.ok(decisions(await metrics(), 'probe', SPIFFE('shop', 'web'), 'allow') >= 1, 'probes counted as policy="probe"');
  });

  await t.test('all-authenticated admits every meshed caller', async (t) => {
    writeConfig(dir, 'namespaces.yaml', namespaces('all-authenticated'));
    await applied('shop/web admitted', async () => (await get(callers.web)).status === 200);
    t.equal((await get(callers.evilWeb)).status, 200, 'evil/web (meshed) admitted');
  });

  await t.test('local mode: a Workload\'s spec.defaultInboundPolicy overrides its namespace, live', async (t) => {
    const c0 = await counts();
    writeConfig(dir, 'cart.yaml', CART.replace('  probePaths: [/healthz]\n', '  probePaths: [/healthz]\n  defaultInboundPolicy: deny\n'));
    await applied('shop/web refused by the Workload\'s deny', async () => (await get(callers.web)).status === 403);
    t.equal((await get(callers.web, 80, '/healthz')).status, 200, 'probe path still allowed');
    t.ok((await counts()).http > c0.http, 'the same app process still counts: no restart for an authorization field');
  });

  t.same(
    [...sockets.entries()].filter(([, s]) => s.size > 1).map(([ip]) => ip),
    [],
    'every caller kept the keep-alive connection it opened before the first edit',
  );
});

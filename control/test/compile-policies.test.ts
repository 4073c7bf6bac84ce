// Session persistence (route rules and BackendLBPolicy, GEP-1619) and
// BackendTLSPolicy (GEP-1897) as compile emits them, with policy status.
import t from 'tap';
import type { AnyResource, PolicyStatus } from '../../api/index.js';
import { createTrustAnchor } from '../../certs/index.js';
import { compile } from '../compile.js';
import { backend, httpRoute, parent, pod, snapshot, svc, v } from './helpers/compile-fixtures.js';

const NS = 'shop';
const cart = svc(NS, 'cart', [{ name: 'http', port: 80, targetPort: 8080 }]);
const api = svc(NS, 'api', [{ name: 'http', port: 80, targetPort: 8080 }]);
const db = svc(NS, 'db', [{ name: 'pg', port: 5432 }, { name: 'admin', port: 8443 }], { selector: undefined });
const pods = [pod(NS, 'cart', '127.0.6.1'), pod(NS, 'cart', '127.0.6.2', { podName: 'cart-1' }), pod(NS, 'api', '127.0.6.9')];

const lb = (name: string, target: string, sp: Record<string, unknown>, created?: string) =>
  v<AnyResource>({
    apiVersion: 'gateway.networking.k8s.io/v1alpha2',
    kind: 'BackendLBPolicy',
    metadata: { name, namespace: NS, generation: 2, ...(created ? { creationTimestamp: created } : {}) },
    spec: { targetRefs: [{ group: '', kind: 'Service', name: target }], sessionPersistence: sp },
  });
const tlsPolicy = (name: string, targets: Array<Record<string, unknown>>, validation: Record<string, unknown>, created?: string) =>
  v<AnyResource>({
    apiVersion: 'gateway.networking.k8s.io/v1alpha3',
    kind: 'BackendTLSPolicy',
    metadata: { name, namespace: NS, ...(created ? { creationTimestamp: created } : {}) },
    spec: { targetRefs: targets, validation },
  });
const cm = (name: string, data: Record<string, string>) => v<AnyResource>({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS }, data });

function policyStatus(c: ReturnType<typeof compile>, kind: string, name: string): PolicyStatus {
  const s = c.statuses.find((x) => x.kind === kind && x.name === name);
  if (!s) throw new Error(`no status for ${kind} ${name}`);
  return s.status as PolicyStatus;
}

t.test('a rule sessionPersistence compiles with GEP-1619 cookie Path and a scope per rule', async (t) => {
  const r = httpRoute(NS, 'sticky', {
    parentRefs: [parent('cart')],
    rules: [
      { matches: [{ path: { value: '/cart/' } }], backendRefs: [backend('cart')], sessionPersistence: { sessionName: 'cart-session', absoluteTimeout: '1h', idleTimeout: '10m', cookieConfig: { lifetimeType: 'Permanent' } } },
      { matches: [{ path: { value: '/a/b' } }, { path: { type: 'Exact', value: '/a/c' } }], backendRefs: [backend('cart')], sessionPersistence: {} },
      { matches: [{ path: { type: 'RegularExpression', value: '/shop/items/[0-9]+' } }], backendRefs: [backend('cart')], sessionPersistence: {} },
      { matches: [{ headers: [{ name: 'x', value: '1' }] }], backendRefs: [backend('cart')], sessionPersistence: { type: 'Header', sessionName: 'x-session' } },
    ],
  });
  const rules = compile(snapshot([cart, r], pods)).view('shop/cart', NS)!.ports[0]!.rules;
  t.same(rules[0]!.session, {
    type: 'Cookie',
    name: 'cart-session',
    permanent: true,
    scope: 'HTTPRoute/shop/sticky/rules/0',
    source: 'route',
    absoluteTimeoutMs: 3_600_000,
    idleTimeoutMs: 600_000,
    path: '/cart',
  });
  t.equal(rules[1]!.session!.path, '/a', 'several paths: their common path');
  t.match(rules[1]!.session!.name, /^weft-session-[0-9a-f]{12}$/, 'a generated name when sessionName is unset');
  t.not(rules[1]!.session!.name, rules[2]!.session!.name, 'generated names differ per rule');
  t.equal(rules[1]!.session!.permanent, false, 'lifetimeType defaults to Session');
  t.equal(rules[2]!.session!.path, '/shop/items', 'a regex path: its longest literal prefix');
  t.same(rules[3]!.session, { type: 'Header', name: 'x-session', permanent: false, scope: 'HTTPRoute/shop/sticky/rules/3', source: 'route' }, 'no Path for headers');
});

t.test('BackendLBPolicy applies to every rule sending to its Service; a rule setting wins', async (t) => {
  const policy = lb('cart-lb', 'cart', { type: 'Cookie', sessionName: 'lb-cookie', idleTimeout: '30s' });
  const r = httpRoute(NS, 'mixed', {
    parentRefs: [parent('api')],
    rules: [
      { matches: [{ path: { value: '/cart' } }], backendRefs: [backend('cart')] },
      { matches: [{ path: { value: '/own' } }], backendRefs: [backend('cart')], sessionPersistence: { sessionName: 'own' } },
      { matches: [{ path: { value: '/api' } }], backendRefs: [backend('api')] },
    ],
  });
  const c = compile(snapshot([cart, api, r, policy], pods));
  const view = c.view('shop/api', NS)!;
  const rules = view.ports[0]!.rules;
  t.same(rules[0]!.session, { type: 'Cookie', name: 'lb-cookie', permanent: false, scope: 'HTTPRoute/shop/mixed/rules/0', source: 'BackendLBPolicy', idleTimeoutMs: 30_000 }, 'policy session, scoped to the rule, Path unset');
  t.equal(rules[1]!.session!.source, 'route');
  t.equal(rules[1]!.session!.name, 'own');
  t.equal(rules[2]!.session, undefined);
  t.match(view.backends['shop/cart:80']!.session, { name: 'lb-cookie', source: 'BackendLBPolicy', scope: 'BackendLBPolicy/shop/cart-lb/shop/cart:80' }, 'also on the backend for traffic without routes');
  t.equal(view.backends['shop/api:80']!.session, undefined);
  const st = policyStatus(c, 'BackendLBPolicy', 'cart-lb');
  t.same(st.ancestors[0]!.ancestorRef, { group: '', kind: 'Service', namespace: NS, name: 'cart' });
  t.match(st.ancestors[0]!.conditions[0], { type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: 2 });
});

t.test('BackendLBPolicy conflicts and missing targets', async (t) => {
  const older = lb('older', 'cart', { sessionName: 'a' }, '2026-01-01T00:00:00Z');
  const newer = lb('newer', 'cart', { sessionName: 'b' }, '2026-03-01T00:00:00Z');
  const lost = lb('lost', 'nothing', { sessionName: 'c' });
  const c = compile(snapshot([cart, older, newer, lost], pods));
  t.equal(c.view('shop/cart', NS)!.backends['shop/cart:80']!.session!.name, 'a', 'the oldest policy wins');
  t.match(policyStatus(c, 'BackendLBPolicy', 'newer').ancestors[0]!.conditions[0], { status: 'False', reason: 'Conflicted' });
  t.match(policyStatus(c, 'BackendLBPolicy', 'lost').ancestors[0]!.conditions[0], { status: 'False', reason: 'TargetNotFound', message: 'Service shop/nothing not found' });
});

t.test('BackendTLSPolicy: TLS for a Service outside the mesh, fail closed when invalid, not applicable in the mesh', async (t) => {
  const ca = createTrustAnchor({ commonName: 'test CA' });
  const objects = [
    cart,
    db,
    cm('db-ca', { 'ca.crt': ca.certPem }),
    cm('bad-ca', { 'ca.crt': '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n' }),
    tlsPolicy('db-tls', [{ group: '', kind: 'Service', name: 'db', sectionName: 'pg' }], { hostname: 'db.example.test', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'db-ca' }] }, '2026-01-01T00:00:00Z'),
    tlsPolicy('db-admin', [{ group: '', kind: 'Service', name: 'db', sectionName: 'admin' }], { hostname: 'admin.example.test', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'missing' }] }),
    tlsPolicy('db-whole', [{ group: '', kind: 'Service', name: 'db' }], { hostname: 'x.example.test', wellKnownCACertificates: 'System' }, '2026-02-01T00:00:00Z'),
    tlsPolicy('meshed', [{ group: '', kind: 'Service', name: 'cart' }], { hostname: 'cart.example.test', wellKnownCACertificates: 'System' }),
    tlsPolicy('both', [{ group: '', kind: 'Service', name: 'db', sectionName: 'nope' }], { hostname: 'x.example.test', wellKnownCACertificates: 'System', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'db-ca' }] }),
    tlsPolicy('bad-pem', [{ group: '', kind: 'Service', name: 'ghost' }], { hostname: 'x.example.test', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'bad-ca' }] }),
  ];
  const route = httpRoute(NS, 'to-db', { parentRefs: [parent('cart')], rules: [{ backendRefs: [backend('db', 5432), backend('db', 8443)] }] });
  const c = compile(snapshot([...objects, route], pods));
  const b = c.view('shop/cart', NS)!.backends;
  t.same(b['shop/db:5432']!.tls, { hostname: 'db.example.test', policy: 'shop/db-tls', caPem: ca.certPem.trim() + '\n' }, 'a policy naming the port wins over a whole-Service one');
  t.match(b['shop/db:8443']!.tls, { hostname: 'admin.example.test', policy: 'shop/db-admin', invalid: /ConfigMap shop\/missing not found/ }, 'invalid → the sidecar fails closed');
  t.equal(b['shop/cart:80']!.tls, undefined, 'a meshed Service keeps mesh mTLS');
  t.match(policyStatus(c, 'BackendTLSPolicy', 'db-tls').ancestors[0]!.conditions[0], { status: 'True', reason: 'Accepted' });
  t.match(policyStatus(c, 'BackendTLSPolicy', 'db-admin').ancestors[0]!.conditions[0], { status: 'False', reason: 'Invalid' });
  t.match(policyStatus(c, 'BackendTLSPolicy', 'db-whole').ancestors[0]!.conditions[0], { status: 'False', reason: 'Conflicted' });
  t.match(policyStatus(c, 'BackendTLSPolicy', 'meshed').ancestors[0]!.conditions[0], { status: 'False', reason: 'Invalid', message: /not applicable: Service shop\/cart is in the mesh/ });
  t.match(policyStatus(c, 'BackendTLSPolicy', 'both').ancestors[0]!.conditions[0], { status: 'False', reason: 'TargetNotFound', message: 'Service shop/db has no port named nope' });
  t.ok(c.errors.some((e) => e.resource === 'BackendTLSPolicy shop/both' && e.field === 'spec.validation' && e.message === 'must not contain both CACertificateRefs and WellKnownCACertificates'), 'T1 with the CRD message');
  t.match(policyStatus(c, 'BackendTLSPolicy', 'bad-pem').ancestors[0]!.conditions[0], { reason: 'TargetNotFound' });

  const sys = compile(snapshot([db, tlsPolicy('sys', [{ group: '', kind: 'Service', name: 'db' }], { hostname: 'db.example.test', wellKnownCACertificates: 'System' }), route, cart], pods));
  t.same(sys.view('shop/db', NS)!.backends['shop/db:8443']!.tls, { hostname: 'db.example.test', policy: 'shop/sys', system: true });

  const badPem = compile(snapshot([db, cm('bad-ca', { 'ca.crt': 'hello' }), tlsPolicy('p', [{ group: '', kind: 'Service', name: 'db' }], { hostname: 'h.example', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'bad-ca' }] })]));
  t.match(badPem.view('shop/db', NS)!.backends['shop/db:5432']!.tls!.invalid, /ca\.crt: no PEM certificate found/);

  const none = compile(snapshot([db, tlsPolicy('p', [{ group: '', kind: 'Service', name: 'db' }], { hostname: 'h.example' })]));
  t.match(none.view('shop/db', NS)!.backends['shop/db:5432']!.tls!.invalid, /must specify either CACertificateRefs or WellKnownCACertificates/, 'T2 fails closed');
});

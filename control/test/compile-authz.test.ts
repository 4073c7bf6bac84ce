// compile: AuthorizationPolicies → the per-pod inbound view (GEP-3779
// semantics), default inbound policy precedence and per-policy status.
import t from 'tap';
import type { AnyResource, PolicyStatus } from '../../api/index.js';
import { compile } from '../compile.js';
import { snapshotOf, type RegisteredWorkload } from '../types.js';
import { validateResource } from '../validate.js';

const ok = (o: unknown): AnyResource => {
  const r = validateResource(o, 'test');
  if (!r.resource) throw new Error(JSON.stringify(r.errors));
  return r.resource;
};
const ap = (name: string, ns: string, spec: Record<string, unknown>) =>
  ok({ apiVersion: 'policy.weft.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec: { action: 'ALLOW', targetRefs: [{ group: '', kind: 'Pod', selector: { matchLabels: { app: 'cart' } } }], ...spec } });
const reg = (o: Partial<RegisteredWorkload>): RegisteredWorkload => ({
  namespace: 'shop', workload: 'cart', serviceAccount: 'cart', podName: 'cart-0', podIP: '127.9.0.2', labels: { app: 'cart' }, appPorts: [8080], meshed: true, ...o,
});
const cart = { namespace: 'shop', name: 'cart-0', workload: 'cart', labels: { app: 'cart' }, podIP: '127.9.0.2' };

t.test('rules compile to exact identities and namespace prefixes', async (t) => {
  const c = compile(snapshotOf([ap('p', 'shop', { rules: [
    { sources: [{ type: 'ServiceAccount', serviceAccount: { name: 'web' } }, { type: 'ServiceAccount', serviceAccount: { namespace: 'ops', name: '*' } }, { type: 'SPIFFE', spiffe: 'spiffe://other.td/x/y' }], networkAttributes: { ports: [8081, 8080, 8080] } },
    {},
    { sources: [] },
  ] })], []), { trustDomain: 'example.org' });
  const v = c.inbound(cart);
  t.same(v.policies, [{ name: 'shop/p', rules: [
    { sources: { identities: ['spiffe://example.org/ns/shop/sa/web', 'spiffe://other.td/x/y'], prefixes: ['spiffe://example.org/ns/ops/sa/'] }, ports: [8080, 8081] },
    {},
    { sources: { identities: [], prefixes: [] } },
  ] }], 'namespace omitted = the policy\'s; "*" = a prefix; ports deduplicated and sorted; sources omitted stays absent');
  t.equal(v.defaultPolicy, 'all-unauthenticated');
  t.equal(v.defaultFrom, 'mesh');
});

t.test('which pods a policy targets', async (t) => {
  const snap = snapshotOf([
    ap('by-label', 'shop', {}),
    ap('all-of-ns', 'shop', { targetRefs: [{ group: '', kind: 'Pod', selector: {} }] }),
    ap('other-ns', 'evil', { targetRefs: [{ group: '', kind: 'Pod', selector: {} }] }),
    ap('expr', 'shop', { targetRefs: [{ group: '', kind: 'Pod', selector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['db'] }, { key: 'app', operator: 'Exists' }] } }] }),
  ], []);
  const c = compile(snap);
  const names = (labels: Record<string, string>, namespace = 'shop') => c.inbound({ ...cart, namespace, labels }).policies.map((p) => p.name);
  t.same(names({ app: 'cart' }), ['shop/all-of-ns', 'shop/by-label', 'shop/expr']);
  t.same(names({ app: 'web' }), ['shop/all-of-ns', 'shop/expr'], 'matchLabels must match');
  t.same(names({ app: 'cart', tier: 'db' }), ['shop/all-of-ns', 'shop/by-label'], 'NotIn excludes');
  t.same(names({}), ['shop/all-of-ns'], 'Exists needs the key');
  t.same(names({ app: 'cart' }, 'ops'), [], 'a policy only targets pods of its own namespace');
  t.same(names({ app: 'cart' }, 'evil'), ['evil/other-ns']);
});

t.test('default inbound policy: mesh < namespace annotation < Workload spec < pod annotation', async (t) => {
  const ns = (ann?: string) => ok({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', ...(ann ? { annotations: { 'weft.io/default-inbound-policy': ann } } : {}) } });
  const wl = (d?: string) => ok({ apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'cart', namespace: 'shop' }, spec: { command: ['node'], probePaths: ['/healthz'], ...(d ? { defaultInboundPolicy: d } : {}) } });
  const cases: Array<[string, AnyResource[], RegisteredWorkload[], string, string]> = [
    ['mesh flag', [ns()], [], 'all-authenticated', 'mesh'],
    ['namespace annotation', [ns('deny')], [], 'deny', 'namespace'],
    ['Workload spec over namespace', [ns('deny'), wl('audit')], [], 'audit', 'workload'],
    ['pod annotation over all', [ns('deny'), wl('audit')], [reg({ defaultInboundPolicy: 'all-unauthenticated' })], 'all-unauthenticated', 'pod'],
    ['an invalid annotation is ignored', [ns('closed')], [], 'all-authenticated', 'mesh'],
  ];
  for (const [name, res, registered, want, from] of cases) {
    const c = compile(snapshotOf(res, registered), { defaultInboundPolicy: 'all-authenticated' });
    const v = c.inbound(cart);
    t.equal(v.defaultPolicy, want, name);
    t.equal(v.defaultFrom, from, `${name}: from`);
  }
  const bad = compile(snapshotOf([ns('closed')], []));
  t.match(bad.errors.find((e) => e.resource === 'Namespace shop'), { field: 'metadata.annotations.weft.io/default-inbound-policy', message: /Unsupported value: "closed"/ });
  const probes = compile(snapshotOf([wl()], [reg({ probes: [{ port: 8080, path: '/ready' }] })])).inbound(cart).probes;
  t.same(probes, [{ port: 0, path: '/healthz' }, { port: 8080, path: '/ready' }], 'Workload probe paths (any port) and the pod\'s kubelet probes');
});

t.test('status per policy', async (t) => {
  const c = compile(
    snapshotOf([ap('good', 'shop', { rules: [{ sources: [{ type: 'ServiceAccount', serviceAccount: { name: 'web' } }] }] }), ap('svc', 'shop', { targetRefs: [{ group: '', kind: 'Service', name: 'cart' }] }), ap('empty', 'shop', {})], [reg({}), reg({ podName: 'cart-1', podIP: '127.9.0.3' })]),
  );
  const st = (name: string) => (c.statuses.find((s) => s.kind === 'AuthorizationPolicy' && s.name === name)!.status as PolicyStatus).ancestors[0]!;
  t.same(st('good').ancestorRef, { group: '', kind: 'Namespace', name: 'shop' });
  t.match(st('good').conditions[0], { type: 'Accepted', status: 'True', reason: 'Accepted', message: /selects 2 pod\(s\) of namespace shop now; allows service account shop\/web on every port/ });
  t.match(st('empty').conditions[0], { status: 'True', message: /allows nothing \(the policy has no rules\)/ });
  t.match(st('svc').conditions[0], { type: 'Accepted', status: 'False', reason: 'TargetNotSupported', message: /ignored: Service cart/ });
  t.ok(c.errors.some((e) => e.resource === 'AuthorizationPolicy shop/svc' && e.field === 'spec.targetRefs'), 'an unsupported target is a config error too');
  t.same(c.inbound(cart).policies.map((p) => p.name), ['shop/empty', 'shop/good'], 'a policy with no supported target applies to nothing');
  t.same((c.authz.policies.find((p) => p.name === 'empty') as { summary: string[] }).summary, ['nothing (the policy has no rules)']);
});

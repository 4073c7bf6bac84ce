// Retries and retry budgets on the control side: HTTPRoute rules[].retry
// (GEP-1731), GRPCRoute retry.weft.io/* annotations, XBackendTrafficPolicy
// (GEP-3388) — validation with messages naming the field, what compile emits
// for the sidecar, and policy status.
import t from 'tap';
import type { AnyResource, PolicyStatus, XBackendTrafficPolicy } from '../../api/index.js';
import { DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BACKOFF_MS } from '../../api/index.js';
import { compile } from '../compile.js';
import { parseFile } from '../source-files.js';
import { validateResource } from '../validate.js';
import { backend, grpcRoute, httpRoute, parent, pod, snapshot, svc, v } from './helpers/compile-fixtures.js';

const GW = 'gateway.networking.k8s.io/v1';
const XGW = 'gateway.networking.x-k8s.io/v1alpha1';
const svcParent = { group: '', kind: 'Service', name: 'echo' };
const be = { name: 'echo', port: 80 };
const withRetry = (retry: unknown) => ({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns' }, spec: { parentRefs: [svcParent], rules: [{ backendRefs: [be], retry }] } });
const grpcWith = (annotations: Record<string, unknown>) => ({ apiVersion: GW, kind: 'GRPCRoute', metadata: { name: 'g', namespace: 'ns', annotations }, spec: { parentRefs: [svcParent], rules: [{ backendRefs: [be] }] } });
const xbtp = (spec: Record<string, unknown>, name = 'budget') => ({ apiVersion: XGW, kind: 'XBackendTrafficPolicy', metadata: { name, namespace: 'ns' }, spec });
const target = { group: '', kind: 'Service', name: 'echo' };

t.test('HTTPRoute retry: a valid stanza passes unchanged', async (t) => {
  for (const retry of [{}, { codes: [500, 502, 503, 504] }, { codes: [429], attempts: 0 }, { attempts: 3, backoff: '100ms' }, { codes: [599, 400], backoff: '1s500ms' }]) {
    const r = validateResource(withRetry(retry), 'f');
    t.same(r.errors, [], JSON.stringify(retry));
  }
});

t.test('HTTPRoute retry: each invalid value is named by its field', async (t) => {
  const cases: Array<{ retry: unknown; field: string; message: RegExp }> = [
    { retry: { codes: [399] }, field: 'spec.rules[0].retry.codes[0]', message: /399: .*should be greater than or equal to 400/ },
    { retry: { codes: [503, 600] }, field: 'spec.rules[0].retry.codes[1]', message: /600: .*should be less than or equal to 599/ },
    { retry: { codes: ['503'] }, field: 'spec.rules[0].retry.codes[0]', message: /must be of type integer/ },
    { retry: { codes: 503 }, field: 'spec.rules[0].retry.codes', message: /must be of type array/ },
    { retry: { attempts: -1 }, field: 'spec.rules[0].retry.attempts', message: /-1: .*should be greater than or equal to 0/ },
    { retry: { attempts: 1.5 }, field: 'spec.rules[0].retry.attempts', message: /must be of type integer/ },
    { retry: { backoff: '1.5s' }, field: 'spec.rules[0].retry.backoff', message: /"1.5s": .*should match/ },
    { retry: { backoff: 100 }, field: 'spec.rules[0].retry.backoff', message: /must be of type string/ },
    { retry: { attemps: 2 }, field: 'spec.rules[0].retry.attemps', message: /unknown field "spec\.rules\[0\]\.retry\.attemps"/ },
    { retry: 'yes', field: 'spec.rules[0].retry', message: /must be of type object/ },
  ];
  for (const c of cases) {
    const r = validateResource(withRetry(c.retry), 'f.yaml');
    t.equal(r.resource, undefined, `${JSON.stringify(c.retry)} rejects the route`);
    const e = r.errors.find((x) => x.field === c.field);
    t.ok(e, `${JSON.stringify(c.retry)}: error at ${c.field} (got ${JSON.stringify(r.errors)})`);
    if (e) {
      t.match(e.message, c.message);
      t.equal(e.resource, 'HTTPRoute ns/r');
    }
  }
  const g = validateResource({ ...grpcWith({}), spec: { parentRefs: [svcParent], rules: [{ retry: { codes: [503] } }] } }, 'f');
  t.equal(g.errors[0]?.field, 'spec.rules[0].retry', 'a GRPCRoute has no retry field (its retries are annotations)');
});

t.test('an invalid retry rejects only that route; its last good version keeps serving', async (t) => {
  const doc = (codes: number[], name: string) =>
    `apiVersion: ${GW}\nkind: HTTPRoute\nmetadata: {name: ${name}, namespace: ns}\nspec:\n  parentRefs: [{group: "", kind: Service, name: echo}]\n  rules:\n  - backendRefs: [{name: echo, port: 80}]\n    retry: {codes: [${codes.join(', ')}], attempts: 2}\n`;
  const good = parseFile('/cfg/r.yaml', `${doc([503], 'a')}---\n${doc([502], 'b')}`);
  t.same(good.errors, []);
  const next = parseFile('/cfg/r.yaml', `${doc([700], 'a')}---\n${doc([504], 'b')}`, good.resources);
  t.equal(next.errors.length, 1);
  t.equal(next.errors[0]!.resource, 'HTTPRoute ns/a');
  t.equal(next.errors[0]!.field, 'spec.rules[0].retry.codes[0]');
  const byName = (n: string) => next.resources.find((r) => r.metadata.name === n) as { spec: { rules: Array<{ retry: { codes: number[] } }> } };
  t.same(byName('a').spec.rules[0]!.retry.codes, [503], 'route a keeps its last good version');
  t.same(byName('b').spec.rules[0]!.retry.codes, [504], 'route b moved on');
});

t.test('GRPCRoute retry annotations: valid ones pass, invalid ones name the annotation', async (t) => {
  const ok = validateResource(grpcWith({ 'retry.weft.io/grpc': 'unavailable, Resource_Exhausted', 'retry.weft.io/limit': '2', 'retry.weft.io/timeout': '300ms', 'retry.weft.io/backoff': '50ms' }), 'f');
  t.same(ok.errors, []);
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ 'retry.weft.io/grpc': 'unavailable,bogus' }, 'retry.weft.io/grpc', /"bogus" is not a gRPC status name/],
    [{ 'retry.weft.io/grpc': ' , ' }, 'retry.weft.io/grpc', /at least one gRPC status/],
    [{ 'retry.weft.io/limit': 'two' }, 'retry.weft.io/limit', /whole number of retries from 0 to 100/],
    [{ 'retry.weft.io/limit': '101' }, 'retry.weft.io/limit', /0 to 100/],
    [{ 'retry.weft.io/timeout': '1.5s' }, 'retry.weft.io/timeout', /Gateway API duration/],
    [{ 'retry.weft.io/timeout': '0s' }, 'retry.weft.io/timeout', /longer than 0s/],
    [{ 'retry.weft.io/backoff': 'soon' }, 'retry.weft.io/backoff', /Gateway API duration/],
    [{ 'retry.weft.io/attempts': '2' }, 'retry.weft.io/attempts', /Unsupported annotation/],
  ];
  for (const [ann, key, msg] of cases) {
    const r = validateResource(grpcWith(ann), 'f');
    t.equal(r.resource, undefined, `${JSON.stringify(ann)} rejects the route`);
    t.equal(r.errors[0]?.field, `metadata.annotations["${key}"]`);
    t.match(r.errors[0]?.message, msg);
  }
  const onHttp = validateResource({ ...withRetry({}), metadata: { name: 'r', namespace: 'ns', annotations: { 'retry.weft.io/limit': '2' } } }, 'f');
  t.match(onHttp.errors[0]?.message, /GRPCRoutes only.*spec\.rules\[\]\.retry/);
  const other = validateResource(grpcWith({ 'example.com/x': 'y' }), 'f');
  t.same(other.errors, [], 'other annotations are left alone');
});

t.test('XBackendTrafficPolicy: CRD defaults are applied', async (t) => {
  const r = validateResource(xbtp({ targetRefs: [target], retryConstraint: {} }), 'f');
  t.same(r.errors, []);
  const p = r.resource as XBackendTrafficPolicy;
  t.same(p.spec.retryConstraint, { budget: { percent: 20, interval: '10s' }, minRetryRate: { count: 10, interval: '1s' } });
  const partial = validateResource(xbtp({ targetRefs: [target], retryConstraint: { budget: { percent: 5 } } }), 'f').resource as XBackendTrafficPolicy;
  t.same(partial.spec.retryConstraint!.budget, { percent: 5, interval: '10s' });
  const none = validateResource(xbtp({ targetRefs: [target] }), 'f').resource as XBackendTrafficPolicy;
  t.equal(none.spec.retryConstraint, undefined, 'no retryConstraint: nothing defaulted');
});

t.test('XBackendTrafficPolicy: invalid values name the field', async (t) => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{}, 'spec.targetRefs', /Required value/],
    [{ targetRefs: [] }, 'spec.targetRefs', /at least 1 items/],
    [{ targetRefs: [{ kind: 'Service', name: 'echo' }] }, 'spec.targetRefs[0].group', /Required value/],
    [{ targetRefs: [{ ...target, sectionName: 'http' }] }, 'spec.targetRefs[0].sectionName', /unknown field/],
    [{ targetRefs: [target, target] }, 'spec.targetRefs[1]', /Duplicate value/],
    [{ targetRefs: [target], retryConstraint: { budget: { percent: 101 } } }, 'spec.retryConstraint.budget.percent', /less than or equal to 100/],
    [{ targetRefs: [target], retryConstraint: { budget: { percent: -1 } } }, 'spec.retryConstraint.budget.percent', /greater than or equal to 0/],
    [{ targetRefs: [target], retryConstraint: { budget: { interval: '500ms' } } }, 'spec.retryConstraint.budget.interval', /^interval cannot be greater than one hour or less than one second$/],
    [{ targetRefs: [target], retryConstraint: { budget: { interval: '2h' } } }, 'spec.retryConstraint.budget.interval', /one hour/],
    [{ targetRefs: [target], retryConstraint: { budget: { interval: 'ten' } } }, 'spec.retryConstraint.budget.interval', /should match/],
    [{ targetRefs: [target], retryConstraint: { minRetryRate: { count: 0, interval: '1s' } } }, 'spec.retryConstraint.minRetryRate.count', /greater than or equal to 1/],
    [{ targetRefs: [target], retryConstraint: { minRetryRate: { count: 1, interval: '0s' } } }, 'spec.retryConstraint.minRetryRate.interval', /^interval cannot be greater than one hour$/],
    [{ targetRefs: [target], retryConstraint: { budgetPercent: 20 } }, 'spec.retryConstraint.budgetPercent', /unknown field/],
    [{ targetRefs: [target], sessionPersistence: { type: 'Header', cookieConfig: {} } }, 'spec.sessionPersistence', /cookieConfig can only be set with type Cookie/],
  ];
  for (const [spec, field, msg] of cases) {
    const r = validateResource(xbtp(spec), 'f');
    t.equal(r.resource, undefined, JSON.stringify(spec));
    const e = r.errors.find((x) => x.field === field);
    t.ok(e, `${JSON.stringify(spec)}: error at ${field} (got ${JSON.stringify(r.errors)})`);
    if (e) {
      t.match(e.message, msg);
      t.equal(e.resource, 'XBackendTrafficPolicy ns/budget');
    }
  }
  const wrongVersion = validateResource({ ...xbtp({ targetRefs: [target] }), apiVersion: 'gateway.networking.k8s.io/v1alpha1' }, 'f');
  t.equal(wrongVersion.errors[0]?.field, 'apiVersion');
});

const NS = 'shop';
const cart = svc(NS, 'cart', [{ name: 'http', port: 80, targetPort: 8080 }]);
const pods = [pod(NS, 'cart', '127.0.6.1')];

t.test('compile: an HTTPRoute rule carries its retry policy, defaults filled in', async (t) => {
  const r = httpRoute(NS, 'r', {
    parentRefs: [parent('cart')],
    rules: [
      { matches: [{ path: { value: '/a' } }], backendRefs: [backend('cart')], retry: { codes: [504, 503, 503], attempts: 3, backoff: '100ms' } },
      { matches: [{ path: { value: '/b' } }], backendRefs: [backend('cart')], retry: {} },
      { matches: [{ path: { value: '/c' } }], backendRefs: [backend('cart')] },
    ],
  });
  const rules = compile(snapshot([cart, r], pods)).view('shop/cart', NS)!.ports[0]!.rules;
  const byPath = (i: number) => rules.find((x) => x.route.ruleIndex === i)!;
  t.same(byPath(0).retry, { codes: [503, 504], grpcCodes: [], attempts: 3, backoffMs: 100, source: 'HTTPRoute' });
  t.same(byPath(1).retry, { codes: [], grpcCodes: [], attempts: DEFAULT_RETRY_ATTEMPTS, backoffMs: DEFAULT_RETRY_BACKOFF_MS, source: 'HTTPRoute' });
  t.equal(byPath(2).retry, undefined, 'no stanza: no policy (safe retries only)');
});

t.test('compile: GRPCRoute annotations become each rule’s retry policy', async (t) => {
  const g = v<AnyResource>({
    apiVersion: GW,
    kind: 'GRPCRoute',
    metadata: { name: 'g', namespace: NS, annotations: { 'retry.weft.io/grpc': 'unavailable,resource-exhausted', 'retry.weft.io/limit': '1', 'retry.weft.io/timeout': '250ms' } },
    spec: { parentRefs: [parent('cart')], rules: [{ matches: [{ method: { service: 'a.B' } }], backendRefs: [backend('cart')] }, { backendRefs: [backend('cart')] }] },
  });
  const rules = compile(snapshot([cart, g], pods)).view('shop/cart', NS)!.ports[0]!.rules;
  t.equal(rules.length, 2);
  for (const r of rules) t.same(r.retry, { codes: [], grpcCodes: [14, 8], attempts: 1, backoffMs: DEFAULT_RETRY_BACKOFF_MS, perTryTimeoutMs: 250, source: 'annotations' });
  const plain = grpcRoute(NS, 'p', { parentRefs: [parent('cart')], rules: [{ backendRefs: [backend('cart')] }] });
  t.equal(compile(snapshot([cart, plain], pods)).view('shop/cart', NS)!.ports[0]!.rules[0]!.retry, undefined);
});

function policyStatus(c: ReturnType<typeof compile>, name: string): PolicyStatus {
  const s = c.statuses.find((x) => x.kind === 'XBackendTrafficPolicy' && x.name === name);
  if (!s) throw new Error(`no status for ${name}`);
  return s.status as PolicyStatus;
}
const budgetPolicy = (name: string, targets: unknown[], rc: unknown, created: string) =>
  v<AnyResource>({ apiVersion: XGW, kind: 'XBackendTrafficPolicy', metadata: { name, namespace: NS, generation: 4, creationTimestamp: created }, spec: { targetRefs: targets, ...(rc ? { retryConstraint: rc } : {}) } });

t.test('compile: XBackendTrafficPolicy sets the budget of its Service’s backends; status says so', async (t) => {
  const first = budgetPolicy('first', [{ group: '', kind: 'Service', name: 'cart' }], { budget: { percent: 10, interval: '5s' }, minRetryRate: { count: 3, interval: '2s' } }, '2026-01-01T00:00:00Z');
  const later = budgetPolicy('later', [{ group: '', kind: 'Service', name: 'cart' }], { budget: { percent: 50 } }, '2026-02-01T00:00:00Z');
  const missing = budgetPolicy('missing', [{ group: '', kind: 'Service', name: 'nope' }, { group: 'example.com', kind: 'Thing', name: 'x' }], {}, '2026-01-01T00:00:00Z');
  const c = compile(snapshot([cart, first, later, missing], pods));
  const b = c.view('shop/cart', NS)!.backends['shop/cart:80']!;
  t.same(b.retryBudget, { percent: 10, intervalMs: 5000, minRetryCount: 3, minRetryIntervalMs: 2000, policy: 'shop/first' });

  const acc = (name: string) => policyStatus(c, name).ancestors.map((a) => [a.ancestorRef.name, a.conditions[0]!.status, a.conditions[0]!.reason]);
  t.same(acc('first'), [['cart', 'True', 'Accepted']]);
  t.match(policyStatus(c, 'first').ancestors[0]!.conditions[0]!.message, /at most 10% of requests over 5s, plus 3 per 2s/);
  t.equal(policyStatus(c, 'first').ancestors[0]!.conditions[0]!.observedGeneration, 4);
  t.same(acc('later'), [['cart', 'False', 'Conflicted']]);
  t.match(policyStatus(c, 'later').ancestors[0]!.conditions[0]!.message, /shop\/first is older/);
  t.same(acc('missing'), [['nope', 'False', 'TargetNotFound'], ['x', 'False', 'Invalid']]);

  const none = compile(snapshot([cart], pods)).view('shop/cart', NS)!.backends['shop/cart:80']!;
  t.equal(none.retryBudget, undefined, 'no policy: the sidecar applies the CRD defaults');
});


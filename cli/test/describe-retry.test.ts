// weft get / describe with retries and retry budgets: XBackendTrafficPolicy
// in `get policies`, its budget and status in `describe policy`, the budget
// and route retries in `describe service`.
import t from 'tap';
import type { AnyResource } from '../../api/index.js';
import { compile, snapshotOf } from '../../control/index.js';
import { backend, httpRoute, parent, pod, svc, v } from '../../control/test/helpers/compile-fixtures.js';
import { describe, getTable, inventoryFrom } from '../describe.js';

const NS = 'shop';
const XGW = 'gateway.networking.x-k8s.io/v1alpha1';
const cart = svc(NS, 'cart', [{ name: 'http', port: 80, targetPort: 8080 }]);
const pods = [pod(NS, 'cart', '127.0.6.1')];
const budgetPolicy = (name: string, targets: unknown[], rc: unknown, created: string) =>
  v<AnyResource>({ apiVersion: XGW, kind: 'XBackendTrafficPolicy', metadata: { name, namespace: NS, generation: 4, creationTimestamp: created }, spec: { targetRefs: targets, ...(rc ? { retryConstraint: rc } : {}) } });

t.test('get policies and describe show the retry budget and route retries', async (t) => {
  const r = httpRoute(NS, 'r', { parentRefs: [parent('cart')], rules: [{ backendRefs: [backend('cart')], retry: { codes: [503], attempts: 1, backoff: '50ms' } }] });
  const p = budgetPolicy('first', [{ group: '', kind: 'Service', name: 'cart' }], { budget: { percent: 10, interval: '5s' } }, '2026-01-01T00:00:00Z');
  const resources = [cart, r, p];
  const c = compile(snapshotOf(resources, pods));
  const inv = inventoryFrom({ resources, statuses: c.statuses, errors: c.errors, registered: pods });
  t.match(getTable(inv, 'policies', { namespace: NS }), /first\s+XBackendTrafficPolicy\s+Service\/cart\s+True/);
  const pol = describe(inv, 'policy', NS, 'first')!;
  t.match(pol, /Retry budget: retries at most 10% of requests over 5s, plus 10 per 1s/);
  t.match(pol, /Accepted\s+True\s+Accepted/);
  const s = describe(inv, 'service', NS, 'cart')!;
  t.match(s, /Retry budget: retries at most 10% of requests over 5s, plus 10 per 1s \(XBackendTrafficPolicy shop\/first\)/);
  t.match(s, /Policies:\n\s+XBackendTrafficPolicy shop\/first: True Accepted/);
  t.match(s, /retry codes 503, at most 1 retry, backoff 50ms, from rules\[\]\.retry/);
  const bare = inventoryFrom({ resources: [cart], statuses: [], errors: [], registered: pods });
  t.match(describe(bare, 'service', NS, 'cart')!, /Retry budget: retries at most 20% of requests over 10s, plus 10 per 1s \(default\)/);
});

t.test('describe service shows endpoint health as the callers see it', async (t) => {
  const { healthLines } = await import('../describe.js');
  const h = [
    { caller: 'shop/client-0', backends: [{ backend: 'shop/cart:80', inflight: 0, shed: 3, endpoints: [{ endpoint: '127.0.6.1:8080', state: 'ejected', consecutiveFailures: 7, ejections: 2, nextProbeInMs: 1500 }, { endpoint: '127.0.6.2:8080', state: 'active', consecutiveFailures: 0, ejections: 0 }] }] },
    { caller: 'shop/other-0', backends: [{ backend: 'shop/db:5432', inflight: 0, shed: 0, endpoints: [{ endpoint: '127.0.6.9:5432', state: 'ejected', consecutiveFailures: 9, ejections: 1 }] }] },
  ];
  t.same(healthLines('shop/cart', h), [
    'Endpoint health (failure accrual, per caller):',
    '  127.0.6.1:8080 EJECTED by shop/client-0: 7 consecutive failures, ejected 2 time(s), next probe in 1s500ms',
    '  shop/client-0 shed 3 request(s) to shop/cart:80 (503 overloaded)',
  ]);
  t.same(healthLines('shop/api', h), ["Endpoint health: no caller has sent requests yet (failure accrual, per caller)"]);
  t.same(healthLines('shop/cart', [{ caller: 'x/y', backends: [{ backend: 'shop/cart:80', inflight: 0, shed: 0, endpoints: [{ endpoint: 'a', state: 'active', consecutiveFailures: 0, ejections: 0 }] }] }]), ["Endpoint health: every endpoint is in every caller's balancer (failure accrual, per caller)"]);
  t.same(healthLines('shop/cart', undefined), [], 'offline (--config-dir): nothing');
  const resources = [cart];
  const inv = inventoryFrom({ resources, statuses: [], errors: [], registered: pods });
  t.match(describe(inv, 'service', NS, 'cart', { health: h })!, /Endpoint health \(failure accrual, per caller\):\n  127\.0\.6\.1:8080 EJECTED by shop\/client-0/);
});

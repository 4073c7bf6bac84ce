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

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../store.js';
import { compile } from '../compile.js';
import { KubernetesSource } from '../source-kubernetes.js';
import { KubeClient } from '../kubernetes-client.js';
import { KubernetesStatusWriter, LeaseElector, microTime } from '../status-writer-kubernetes.js';
import { FakeKubeApiServer, type Obj } from './helpers/kube-apiserver.js';
import type { RouteStatus, RouteParentStatus } from '../../api/index.js';

const SVC = '/api/v1/services';
const HR = '/apis/gateway.networking.k8s.io/v1/httproutes';
const LEASES = '/apis/coordination.k8s.io/v1/leases';

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

const service = (name: string): Obj => ({ metadata: { name, namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
const otherEntry: RouteParentStatus = {
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge', namespace: 'infra' },
  controllerName: 'example.com/gateway-controller',
  conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'by someone else', lastTransitionTime: '2026-11-01T00:00:00Z', observedGeneration: 1 }],
};
const route = (backend: string, parents: unknown[] = [{ group: '', kind: 'Service', name: 'web', port: 80 }]): Obj => ({
  metadata: { name: 'split', namespace: 'shop' },
  spec: { parentRefs: parents, rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
  status: { parents: [otherEntry] },
});

t.test('lease: one holder at a time, release hands over, an expired holder is replaced', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  const client = new KubeClient(api.kubeConfig());
  const a = new LeaseElector({ client, identity: 'control-a', leaseDurationSeconds: 2, retryPeriodMs: 50 });
  const b = new LeaseElector({ client, identity: 'control-b', leaseDurationSeconds: 2, retryPeriodMs: 50 });
  a.start();
  await waitFor('a leads', () => a.isLeader());
  b.start();
  await sleep(200);
  t.equal(b.isLeader(), false, 'b waits while a renews');
  const lease = api.get(LEASES, 'weft-system', 'weft-control-status');
  t.match(lease?.['spec'], { holderIdentity: 'control-a', leaseDurationSeconds: 2, leaseTransitions: 0 });
  t.match((lease?.['spec'] as { renewTime: string }).renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime format');
  await a.stop();
  await waitFor('b takes over after release', () => b.isLeader(), 3000);
  t.equal(a.isLeader(), false);
  t.match(api.get(LEASES, 'weft-system', 'weft-control-status')?.['spec'], { holderIdentity: 'control-b', leaseTransitions: 1 });
  await b.stop();

  // A holder that died without releasing: its lease expires, then another takes it.
  const stale = new Date(Date.now() - 10_000);
  const cur = api.get(LEASES, 'weft-system', 'weft-control-status')!;
  api.apply(LEASES, { ...cur, spec: { holderIdentity: 'control-dead', leaseDurationSeconds: 2, renewTime: microTime(stale), leaseTransitions: 5 } });
  const c = new LeaseElector({ client, identity: 'control-c', leaseDurationSeconds: 2, retryPeriodMs: 50 });
  t.equal(await c.tryAcquireOrRenew(), true, 'expired lease taken over');
  t.match(api.get(LEASES, 'weft-system', 'weft-control-status')?.['spec'], { holderIdentity: 'control-c', leaseTransitions: 6 });
  const d = new LeaseElector({ client, identity: 'control-d', leaseDurationSeconds: 2, retryPeriodMs: 50 });
  t.equal(await d.tryAcquireOrRenew(), false, 'a fresh lease is not taken');
});

t.test('route status: written field by field, merged, only when changed, only as leader', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.apply(SVC, service('web'));
  api.apply(SVC, service('web-v2'));
  api.apply(HR, route('web-v2'));
  const store = new Store({ sessionKey: 'k' });
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store, kinds: ['Service', 'HTTPRoute'], backoffMs: 20, log: () => {} });
  t.teardown(() => src.stop());
  await src.start();
  let leader = false;
  let clock = new Date('2026-11-29T03:00:00Z');
  const writer = new KubernetesStatusWriter({ client: src.client, source: src, isLeader: () => leader, now: () => clock, log: () => {} });
  t.teardown(() => writer.stop());
  const statusPuts = () => api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/status'));

  writer.update(compile(store.snapshot()).statuses);
  t.same(await writer.reconcile(), { written: [], unchanged: 0, failed: [] }, 'not the leader: nothing written');
  t.equal(statusPuts().length, 0);

  leader = true;
  const r1 = await writer.reconcile();
  t.same(r1.written, ['HTTPRoute/shop/split']);
  const put = statusPuts()[0]!;
  t.equal(put.path, '/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes/split/status', 'the status subresource');
  t.ok((put.body as Obj).metadata.resourceVersion, 'optimistic concurrency: resourceVersion sent');
  const st = api.get(HR, 'shop', 'split')?.status as RouteStatus;
  t.equal(st.parents.length, 2);
  t.same(st.parents[0], otherEntry, "the other controller's entry is untouched");
  const ours = st.parents[1]!;
  t.same(ours.parentRef, { group: '', kind: 'Service', name: 'web', port: 80 });
  t.equal(ours.controllerName, 'weft.io/mesh-controller');
  const cond = Object.fromEntries(ours.conditions.map((c) => [c.type, c]));
  t.match(cond['Accepted'], { status: 'True', reason: 'Accepted', observedGeneration: 1, lastTransitionTime: '2026-11-29T03:00:00Z' });
  t.match(cond['ResolvedRefs'], { status: 'True', reason: 'ResolvedRefs', observedGeneration: 1, lastTransitionTime: '2026-11-29T03:00:00Z' });
  t.equal(api.get(HR, 'shop', 'split')?.metadata.generation, 1, 'a status write does not bump generation');

  // The watch brings our write back; compiling again changes nothing → no write.
  await waitFor('watch saw our status', () => ((src.raw('HTTPRoute', 'shop', 'split')?.status as RouteStatus | undefined)?.parents.length ?? 0) === 2);
  clock = new Date('2026-11-29T03:05:00Z');
  writer.update(compile(store.snapshot()).statuses);
  const r2 = await writer.reconcile();
  t.same(r2.written, [], 'unchanged: not written');
  t.equal(r2.unchanged, 1);
  t.equal(statusPuts().length, 1);

  // A backend that does not exist: ResolvedRefs flips, Accepted keeps its time.
  api.apply(HR, route('nope'));
  await waitFor('generation 2 seen', () => store.snapshot().httpRoutes[0]?.metadata.generation === 2);
  clock = new Date('2026-11-29T03:10:00Z');
  writer.update(compile(store.snapshot()).statuses);
  t.same((await writer.reconcile()).written, ['HTTPRoute/shop/split']);
  const st2 = api.get(HR, 'shop', 'split')?.status as RouteStatus;
  const c2 = Object.fromEntries(st2.parents[1]!.conditions.map((c) => [c.type, c]));
  t.match(c2['ResolvedRefs'], { status: 'False', reason: 'BackendNotFound', observedGeneration: 2, lastTransitionTime: '2026-11-29T03:10:00Z' });
  t.match(c2['Accepted'], { status: 'True', observedGeneration: 2, lastTransitionTime: '2026-11-29T03:00:00Z' }, 'unchanged condition keeps its transition time');
  t.same(st2.parents[0], otherEntry);

  // Someone else writes in between: our PUT gets 409, we read again and merge onto their version.
  await waitFor('watch caught up', () => src.raw('HTTPRoute', 'shop', 'split')?.metadata.resourceVersion === api.get(HR, 'shop', 'split')?.metadata.resourceVersion);
  const theirs = api.get(HR, 'shop', 'split')!;
  const third: RouteParentStatus = { ...otherEntry, controllerName: 'example.com/another', parentRef: { name: 'x', kind: 'Gateway', group: 'gateway.networking.k8s.io' } };
  api.apply(HR, route('web')); // fixes the backend
  await waitFor('fix seen', () => store.snapshot().httpRoutes[0]?.metadata.generation === 3);
  api.setStatus(HR, 'shop', 'split', { parents: [...(theirs.status as RouteStatus).parents, third] }); // our cache may lag this
  api.failNext('PUT', /\/status$/, 409); // and make sure the first PUT conflicts
  writer.update(compile(store.snapshot()).statuses);
  const conflictsBefore = writer.totals.conflicts;
  const r4 = await writer.reconcile();
  t.same(r4.written, ['HTTPRoute/shop/split'], 'written after the retry');
  t.equal(writer.totals.conflicts, conflictsBefore + 1, 'one conflict, retried');
  const st3 = api.get(HR, 'shop', 'split')?.status as RouteStatus;
  t.same(st3.parents.map((p) => p.controllerName), ['example.com/gateway-controller', 'example.com/another', 'weft.io/mesh-controller'], 'a concurrent third entry survives');
  const c3 = Object.fromEntries(st3.parents[2]!.conditions.map((c) => [c.type, c]));
  t.match(c3['ResolvedRefs'], { status: 'True', reason: 'ResolvedRefs', observedGeneration: 3 });

  // The route moves to a Gateway parent only: weft removes its own entry, leaves the rest.
  api.apply(HR, route('web', [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'edge', namespace: 'infra' }]));
  await waitFor('source saw the move', () => store.snapshot().httpRoutes[0]?.spec.parentRefs?.[0]?.kind === 'Gateway');
  await waitFor('source has latest', () => src.raw('HTTPRoute', 'shop', 'split')?.metadata.resourceVersion === api.get(HR, 'shop', 'split')?.metadata.resourceVersion);
  writer.update(compile(store.snapshot()).statuses);
  await writer.reconcile();
  const st4 = api.get(HR, 'shop', 'split')?.status as RouteStatus;
  t.notOk(st4.parents.some((p) => p.controllerName === 'weft.io/mesh-controller'), 'our stale entry removed');
  t.ok(st4.parents.some((p) => p.controllerName === 'example.com/gateway-controller'), 'others kept');
});

t.test('policy status: BackendLBPolicy ancestors written the same way', async (t) => {
  const LB = '/apis/gateway.networking.k8s.io/v1alpha2/backendlbpolicies';
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.apply(SVC, service('web'));
  api.apply(LB, { metadata: { name: 'sticky', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }], sessionPersistence: { sessionName: 'weft-session', type: 'Cookie' } } });
  api.apply(LB, { metadata: { name: 'orphan', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'nope' }], sessionPersistence: { sessionName: 's', type: 'Cookie' } } });
  const store = new Store({ sessionKey: 'k' });
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store, kinds: ['Service', 'BackendLBPolicy'], backoffMs: 20, log: () => {} });
  t.teardown(() => src.stop());
  await src.start();
  const writer = new KubernetesStatusWriter({ client: src.client, source: src, isLeader: () => true, now: () => new Date('2026-11-29T04:00:00Z') });
  writer.update(compile(store.snapshot()).statuses);
  const r = await writer.reconcile();
  t.same(r.written.sort(), ['BackendLBPolicy/shop/orphan', 'BackendLBPolicy/shop/sticky']);
  const put = api.requests.find((q) => q.method === 'PUT' && q.path.endsWith('/backendlbpolicies/sticky/status'));
  t.equal(put?.path, '/apis/gateway.networking.k8s.io/v1alpha2/namespaces/shop/backendlbpolicies/sticky/status');
  const st = api.get(LB, 'shop', 'sticky')?.status as { ancestors: { ancestorRef: { name: string; kind?: string }; controllerName: string; conditions: { type: string; status: string; reason: string }[] }[] };
  t.equal(st.ancestors.length, 1);
  t.equal(st.ancestors[0]?.controllerName, 'weft.io/mesh-controller');
  t.match(st.ancestors[0]?.ancestorRef, { name: 'web', kind: 'Service' });
  t.match(st.ancestors[0]?.conditions, [{ type: 'Accepted', status: 'True', reason: 'Accepted' }]);
  const orphan = api.get(LB, 'shop', 'orphan')?.status as typeof st;
  t.match(orphan.ancestors[0]?.conditions, [{ type: 'Accepted', status: 'False', reason: 'TargetNotFound' }]);
});

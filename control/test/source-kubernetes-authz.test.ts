// Kubernetes mode for AuthorizationPolicy: the CRD's objects are watched
// (an invalid update keeps the last good version), pods' annotation and
// kubelet probes feed the per-pod view, and status is written.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../store.js';
import { compile } from '../compile.js';
import { KubernetesSource } from '../source-kubernetes.js';
import { KubernetesStatusWriter } from '../status-writer-kubernetes.js';
import { FakeKubeApiServer, type Obj } from './helpers/kube-apiserver.js';
import type { PolicyStatus } from '../../api/index.js';

const AP = '/apis/policy.weft.io/v1alpha1/authorizationpolicies';
const PODS = '/api/v1/pods';
const NS = '/api/v1/namespaces';

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

const policy = (action = 'ALLOW'): Obj => ({
  metadata: { name: 'allow-web', namespace: 'shop' },
  spec: { targetRefs: [{ group: '', kind: 'Pod', selector: { matchLabels: { app: 'cart' } } }], action, rules: [{ sources: [{ type: 'ServiceAccount', serviceAccount: { name: 'web' } }] }] },
});
const pod: Obj = {
  metadata: { name: 'cart-7d9f-abcde', namespace: 'shop', labels: { app: 'cart' }, annotations: { 'weft.io/injected': '0.1.0', 'weft.io/default-inbound-policy': 'deny' } },
  spec: {
    serviceAccountName: 'cart',
    containers: [{ ports: [{ name: 'http', containerPort: 8080 }], readinessProbe: { httpGet: { path: '/ready?x=1', port: 'http' } }, livenessProbe: { httpGet: { path: '/live', port: 8080 } } }],
  },
  status: { podIP: '10.1.0.7', phase: 'Running' },
};

t.test('AuthorizationPolicies from the API: compiled per pod, invalid updates refused, status written', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.apply(NS, { metadata: { name: 'shop' } });
  api.apply(PODS, pod);
  api.apply(AP, policy());
  const store = new Store({ sessionKey: 'k' });
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store, kinds: ['Namespace', 'Pod', 'AuthorizationPolicy'], backoffMs: 20, log: () => {} });
  t.teardown(() => src.stop());
  await src.start();
  await waitFor('policy and pod in the store', () => store.snapshot().authorizationPolicies.length === 1 && store.registered().length === 1);

  const c = compile(store.snapshot());
  // The sidecar's Hello carries no labels in a cluster: the Pod watch's labels decide.
  const view = c.inbound({ namespace: 'shop', name: 'cart-7d9f-abcde', workload: 'cart-7d9f', labels: {}, podIP: '10.1.0.7' });
  t.same(view.policies.map((p) => p.name), ['shop/allow-web'], 'the policy selects the pod by its API labels');
  t.equal(view.defaultPolicy, 'deny', 'pod annotation weft.io/default-inbound-policy');
  t.equal(view.defaultFrom, 'pod');
  t.same(view.probes, [{ port: 8080, path: '/ready' }, { port: 8080, path: '/live' }].sort((a, b) => (a.path < b.path ? -1 : 1)), 'kubelet HTTP probes, named ports resolved, query dropped');

  const writer = new KubernetesStatusWriter({ client: src.client, source: src, isLeader: () => true, now: () => new Date('2026-12-02T00:00:00Z'), log: () => {} });
  t.teardown(() => writer.stop());
  writer.update(c.statuses);
  const r = await writer.reconcile();
  t.same(r.written, ['AuthorizationPolicy/shop/allow-web'], 'status written through the status subresource');
  const st = api.get(AP, 'shop', 'allow-web')?.status as PolicyStatus;
  t.equal(st.ancestors[0]!.controllerName, 'weft.io/mesh-controller');
  t.match(st.ancestors[0]!.conditions[0], { type: 'Accepted', status: 'True', reason: 'Accepted', message: /selects 1 pod\(s\) of namespace shop now; allows service account shop\/web on every port/ });

  // An invalid update (action DENY) is refused with its field; the last good version keeps serving.
  api.apply(AP, policy('DENY'));
  await waitFor('the error is reported', () => store.errors().some((e) => e.field === 'spec.action'));
  t.equal(store.snapshot().authorizationPolicies[0]?.spec.action, 'ALLOW', 'last good version kept');
  t.same(compile(store.snapshot()).inbound({ namespace: 'shop', name: '', workload: '', labels: {}, podIP: '10.1.0.7' }).policies.map((p) => p.name), ['shop/allow-web']);
});

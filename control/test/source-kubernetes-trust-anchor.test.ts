import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../store.js';
import { KubernetesSource } from '../source-kubernetes.js';
import { TrustAnchorPublisher } from '../trust-anchor-kubernetes.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import { createTrustAnchor } from '../../certs/index.js';

const NS = '/api/v1/namespaces';
const CM = '/api/v1/configmaps';
const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t.test('the trust anchor ConfigMap is kept in every namespace, written only when needed', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  for (const n of ['shop', 'kube-system', 'weft-system']) api.apply(NS, { metadata: { name: n } });
  const a1 = createTrustAnchor().certPem;
  const a2 = createTrustAnchor().certPem;
  api.apply(CM, { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': a1 } });
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store: new Store({ sessionKey: 'k' }), kinds: ['Namespace', 'ConfigMap'], log: () => {} });
  t.teardown(() => src.stop());
  await src.start();
  let bundle = a1;
  let leader = false;
  const pub = new TrustAnchorPublisher({ client: src.client, source: src, bundle: () => bundle, isLeader: () => leader });
  t.same(await pub.reconcile(), [], 'not the leader');
  leader = true;
  t.same(await pub.reconcile(), ['shop'], 'created where missing; kube-system skipped; weft-system already right');
  t.equal((api.get(CM, 'shop', 'weft-trust-anchor')?.['data'] as Record<string, string>)['ca-bundle.pem'], a1);
  await waitFor('watch saw it', () => src.objects('ConfigMap').some((c) => c.metadata.namespace === 'shop'));
  t.same(await pub.reconcile(), [], 'nothing to do');
  api.apply(NS, { metadata: { name: 'new-team' } });
  await waitFor('namespace seen', () => src.objects('Namespace').some((n) => n.metadata.name === 'new-team'));
  t.same(await pub.reconcile(), ['new-team']);
  bundle = a1 + a2; // rotation: both anchors
  await waitFor('watch caught up', () => src.objects('ConfigMap').filter((c) => c.metadata.name === 'weft-trust-anchor').length === 3);
  t.same((await pub.reconcile()).sort(), ['new-team', 'shop', 'weft-system']);
  t.equal((api.get(CM, 'shop', 'weft-trust-anchor')?.['data'] as Record<string, string>)['ca-bundle.pem'], a1 + a2);
});

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../store.js';
import { compile } from '../compile.js';
import { startKubernetesMode } from '../kubernetes-mode.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import { createTrustAnchor } from '../../certs/index.js';
import type { RouteStatus, CertifyRequestMsg } from '../../api/index.js';

const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
async function waitFor(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('kubernetes mode: API → store → compile → status, trust anchors, identity', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.apply('/api/v1/namespaces', { metadata: { name: 'shop', labels: { 'weft.io/inject': 'enabled' } } });
  api.apply('/api/v1/services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] } });
  api.apply('/apis/gateway.networking.k8s.io/v1/httproutes', { metadata: { name: 'r', namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
  api.tokens.set('tok', { username: 'system:serviceaccount:shop:web', audiences: ['weft'] });
  const anchor = createTrustAnchor().certPem;
  const store = new Store({ sessionKey: 'k' });
  const kube = await startKubernetesMode({ store, kubeConfig: api.kubeConfig(), identity: 'control-0', trustBundle: () => anchor, log: () => {}, source: { backoffMs: 20 } });
  t.teardown(() => kube.stop());
  // What control's push engine does after each store change:
  const recompile = () => kube.onCompiled(compile(store.snapshot()).statuses);
  store.onChange(recompile);
  recompile();
  await waitFor('status written', () => ((api.get('/apis/gateway.networking.k8s.io/v1/httproutes', 'shop', 'r')?.status as RouteStatus | undefined)?.parents.length ?? 0) === 1);
  const st = api.get('/apis/gateway.networking.k8s.io/v1/httproutes', 'shop', 'r')?.status as RouteStatus;
  t.equal(st.parents[0]?.controllerName, 'weft.io/mesh-controller');
  t.ok(kube.lease.isLeader());
  await waitFor('trust anchor published', () => api.get('/api/v1/configmaps', 'shop', 'weft-trust-anchor') !== undefined);
  t.same(await kube.authenticate({ token: 'tok', namespace: 'shop', service_account: 'web' } as unknown as CertifyRequestMsg), { namespace: 'shop', serviceAccount: 'web' });
  // Steady state: no more status writes once converged.
  await sleep(300);
  const writes = api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/status')).length;
  api.bookmark();
  await sleep(300);
  t.equal(api.requests.filter((r) => r.method === 'PUT' && r.path.endsWith('/status')).length, writes, 'no writes without changes');
  t.equal(writes, 1, 'exactly one status write');
});

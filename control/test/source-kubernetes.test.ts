import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Store } from '../store.js';
import { KubernetesSource } from '../source-kubernetes.js';
import { FakeKubeApiServer, type Obj } from './helpers/kube-apiserver.js';

const SVC = '/api/v1/services';
const HR = '/apis/gateway.networking.k8s.io/v1/httproutes';
const LB = '/apis/gateway.networking.k8s.io/v1alpha2/backendlbpolicies';
const TLS = '/apis/gateway.networking.k8s.io/v1alpha3/backendtlspolicies';
const CM = '/api/v1/configmaps';
const NS = '/api/v1/namespaces';
const ES = '/apis/discovery.k8s.io/v1/endpointslices';

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const service = (name: string, ns = 'shop'): Obj => ({ metadata: { name, namespace: ns }, spec: { clusterIP: '10.96.0.10', selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
const route = (name: string, backend: string, ns = 'shop'): Obj => ({
  metadata: { name, namespace: ns },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
});

function names(store: Store, kind: 'services' | 'httpRoutes' | 'configMaps' | 'backendLBPolicies' | 'namespaces' | 'endpointSlices'): string[] {
  return (store.snapshot()[kind] as { metadata: { namespace?: string; name: string } }[]).map((r) => `${r.metadata.namespace ?? ''}/${r.metadata.name}`).sort();
}

t.test('list, watch, bookmarks, dropped connections, 410 relists, missing CRDs', async (t) => {
  const api = new FakeKubeApiServer(`127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`);
  await api.start();
  t.teardown(() => api.close());
  for (const n of ['web', 'web-v2', 'cart', 'db', 'cache']) api.apply(SVC, service(n));
  api.apply(NS, { metadata: { name: 'shop', labels: { 'weft.io/inject': 'enabled' } } });
  api.apply(ES, {
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true, serving: true, terminating: false } }, { addresses: ['10.0.0.6'], conditions: { ready: false, serving: true, terminating: true } }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  api.apply(HR, route('split', 'web-v2'));
  api.apply(CM, { metadata: { name: 'unrelated', namespace: 'shop' }, data: { big: 'x'.repeat(1000) } });
  api.apply(CM, { metadata: { name: 'ca', namespace: 'shop' }, data: { 'ca.crt': '-----BEGIN CERTIFICATE-----\n' } });
  api.missing.add(LB); // BackendLBPolicy CRD not installed yet

  const store = new Store({ sessionKey: 'k' });
  const logs: string[] = [];
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store, pageSize: 2, backoffMs: 20, maxBackoffMs: 200, missingCrdRetryMs: 300, watchTimeoutSeconds: 30, log: (l) => logs.push(l) });
  t.teardown(() => src.stop());
  const rvAtStart = api.resourceVersion;
  await src.start();

  await t.test('initial list (paged, items without kind) fills the store', async (t) => {
    t.same(names(store, 'services'), ['shop/cache', 'shop/cart', 'shop/db', 'shop/web', 'shop/web-v2']);
    t.same(names(store, 'httpRoutes'), ['shop/split']);
    t.same(names(store, 'namespaces'), ['/shop']);
    t.same(store.snapshot().endpointSlices[0]?.endpoints.map((e) => e.conditions), [{ ready: true, serving: true, terminating: false }, { ready: false, serving: true, terminating: true }], 'endpoint conditions kept');
    t.same(names(store, 'configMaps'), [], 'ConfigMaps no BackendTLSPolicy references stay out');
    t.same(names(store, 'backendLBPolicies'), []);
    t.ok(src.stats()['BackendLBPolicy']?.missing, 'missing CRD noticed');
    t.match(logs.join('\n'), /BackendLBPolicy: .* not served/);
    const listReqs = api.requests.filter((r) => r.path === SVC && r.query.get('watch') !== 'true');
    t.equal(listReqs.length, 3, 'five services in pages of two');
    t.equal(listReqs[1]?.query.get('continue'), '2');
    t.equal(store.sourcesSynced()['kubernetes/Service'], true);
    await waitFor('watches open', () => api.watchCount(SVC) === 1 && api.watchCount(HR) === 1);
    const w = api.requests.find((r) => r.path === HR && r.query.get('watch') === 'true');
    t.equal(w?.query.get('allowWatchBookmarks'), 'true');
    t.equal(w?.query.get('resourceVersion'), String(rvAtStart), 'the watch starts from the list resourceVersion');
  });

  await t.test('watch events: add, modify, delete', async (t) => {
    api.apply(HR, route('canary', 'web'));
    await waitFor('route added', () => names(store, 'httpRoutes').includes('shop/canary'));
    api.apply(HR, route('canary', 'web-v2'));
    await waitFor('route modified', () => store.snapshot().httpRoutes.find((r) => r.metadata.name === 'canary')?.spec.rules?.[0]?.backendRefs?.[0]?.name === 'web-v2');
    t.equal(store.snapshot().httpRoutes.find((r) => r.metadata.name === 'canary')?.metadata.generation, 2);
    api.remove(HR, 'shop', 'canary');
    await waitFor('route deleted', () => !names(store, 'httpRoutes').includes('shop/canary'));
    t.same(names(store, 'httpRoutes'), ['shop/split']);
    t.equal(src.stats()['HTTPRoute']?.relists, 0, 'no relist needed');
  });

  await t.test('bookmarks advance the resourceVersion without touching the store', async (t) => {
    api.apply(SVC, service('noise', 'other')); // moves the global resourceVersion past HTTPRoute's last event
    await waitFor('noise', () => names(store, 'services').includes('other/noise'));
    const gen = store.generation;
    api.bookmark();
    await waitFor('bookmark seen', () => (src.stats()['HTTPRoute']?.bookmarks ?? 0) >= 1);
    t.equal(src.stats()['HTTPRoute']?.resourceVersion, String(api.resourceVersion));
    t.equal(store.generation, gen, 'no store change from a bookmark');
  });

  await t.test('a dropped connection resumes from the last resourceVersion, missing nothing', async (t) => {
    const watchesBefore = src.stats()['HTTPRoute']?.watches ?? 0;
    const rvBefore = src.stats()['HTTPRoute']?.resourceVersion;
    api.dropWatches();
    api.apply(HR, route('while-away', 'web')); // happens while no watch is open
    await waitFor('event after reconnect', () => names(store, 'httpRoutes').includes('shop/while-away'));
    t.ok((src.stats()['HTTPRoute']?.watches ?? 0) > watchesBefore, 'watched again');
    const resumed = api.requests.filter((r) => r.path === HR && r.query.get('watch') === 'true').at(-1);
    t.equal(resumed?.query.get('resourceVersion'), rvBefore, 'resumed from the last seen resourceVersion');
    t.equal(src.stats()['HTTPRoute']?.relists, 0, 'no relist');
  });

  await t.test('410 Gone forces a relist that also catches deletions', async (t) => {
    const relists = src.stats()['HTTPRoute']?.relists ?? 0;
    api.dropWatches();
    api.remove(HR, 'shop', 'while-away');
    api.compact(); // history lost: the resumed watch gets ERROR 410
    await waitFor('relist', () => (src.stats()['HTTPRoute']?.relists ?? 0) > relists);
    await waitFor('deletion applied', () => !names(store, 'httpRoutes').includes('shop/while-away'));
    t.match(logs.join('\n'), /HTTPRoute: resourceVersion \d+ is gone \(410\); relisting/);
    // ERROR 410 on an open watch (etcd compaction) does the same.
    const relists2 = src.stats()['Service']?.relists ?? 0;
    api.expireWatches();
    await waitFor('service relist', () => (src.stats()['Service']?.relists ?? 0) > relists2);
    api.apply(SVC, service('after-expiry'));
    await waitFor('watching again', () => names(store, 'services').includes('shop/after-expiry'));
  });

  await t.test('a CRD installed later is picked up', async (t) => {
    api.missing.delete(LB);
    api.apply(LB, { metadata: { name: 'sticky', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'web' }], sessionPersistence: { sessionName: 's', type: 'Cookie' } } });
    await waitFor('policy listed', () => names(store, 'backendLBPolicies').includes('shop/sticky'), 3000);
    t.notOk(src.stats()['BackendLBPolicy']?.missing);
  });

  await t.test('only ConfigMaps a BackendTLSPolicy references reach the store', async (t) => {
    api.apply(TLS, { metadata: { name: 'tls', namespace: 'shop' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'db' }], validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }], hostname: 'db.shop.svc' } } });
    await waitFor('ca published', () => names(store, 'configMaps').includes('shop/ca'));
    t.same(names(store, 'configMaps'), ['shop/ca']);
  });

  await t.test('an invalid update keeps the last good version and reports the field', async (t) => {
    const bad = route('split', 'web-v2');
    (bad['spec'] as { rules: { matches?: unknown }[] }).rules[0]!.matches = [{ path: { type: 'PathPrefix', value: 'no-leading-slash' } }];
    api.apply(HR, bad);
    await waitFor('error recorded', () => store.errors().some((e) => e.resource.includes('split')));
    const err = store.errors().find((e) => e.resource.includes('split'));
    t.match(err, { source: 'kubernetes', field: /spec\.rules\[0\]\.matches\[0\]\.path/ });
    t.equal(store.snapshot().httpRoutes.find((r) => r.metadata.name === 'split')?.spec.rules?.[0]?.matches?.[0]?.path?.value, '/', 'last good version (default match) still served');
    api.apply(HR, route('split', 'web'));
    await waitFor('error cleared', () => !store.errors().some((e) => e.resource.includes('split')));
  });

  await t.test('injected pods become meshed workloads; endpoints get their identity', async (t) => {
    const PODS = '/api/v1/pods';
    const pod = (name: string, ip: string, injected: boolean, phase = 'Running'): Obj => ({
      metadata: { name, namespace: 'shop', labels: { app: 'web' }, ...(injected ? { annotations: { 'weft.io/injected': '0.1.0' } } : {}), ownerReferences: [{ kind: 'ReplicaSet', name: 'web-7c9d8f6b5', controller: true }] },
      spec: { serviceAccountName: 'web', containers: [{ name: 'web', ports: [{ containerPort: 8080 }] }] },
      status: { podIP: ip, phase },
    });
    api.apply(PODS, pod('web-7c9d8f6b5-aaaaa', '10.0.0.5', true));
    api.apply(PODS, pod('web-7c9d8f6b5-bbbbb', '10.0.0.6', false));
    api.apply(PODS, pod('web-7c9d8f6b5-ccccc', '10.0.0.7', true, 'Succeeded'));
    await waitFor('registered', () => store.registered().length === 1);
    t.same(store.registered(), [{ namespace: 'shop', workload: 'web', serviceAccount: 'web', podName: 'web-7c9d8f6b5-aaaaa', podIP: '10.0.0.5', labels: { app: 'web' }, appPorts: [8080], meshed: true }]);
    api.remove(PODS, 'shop', 'web-7c9d8f6b5-aaaaa');
    await waitFor('unregistered', () => store.registered().length === 0);
  });

  await t.test('raw objects keep status for the status writer', async (t) => {
    const raw = src.raw('HTTPRoute', 'shop', 'split');
    t.equal(raw?.metadata.name, 'split');
    t.equal(raw?.kind, 'HTTPRoute');
    t.ok(raw?.metadata.resourceVersion);
  });
});

t.test('list errors back off and retry', async (t) => {
  const api = new FakeKubeApiServer(`127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`);
  await api.start();
  t.teardown(() => api.close());
  api.apply(SVC, service('web'));
  api.failNext('GET', /^\/api\/v1\/services$/, 500, 2);
  const store = new Store({ sessionKey: 'k' });
  const logs: string[] = [];
  const src = new KubernetesSource({ kubeConfig: api.kubeConfig(), store, kinds: ['Service'], backoffMs: 20, log: (l) => logs.push(l) });
  t.teardown(() => src.stop());
  await src.start();
  t.same(names(store, 'services'), ['shop/web']);
  t.equal(src.stats()['Service']?.errors, 2);
  t.match(logs[0], /Service: list failed .*500.*retrying in \d+ ms/);
  // Wrong credentials: a clear error, not a crash.
  const src2 = new KubernetesSource({ kubeConfig: api.kubeConfig('wrong'), store: new Store({ sessionKey: 'k' }), kinds: ['Service'], backoffMs: 20, log: (l) => logs.push(l) });
  t.teardown(() => src2.stop());
  void src2.start();
  await waitFor('401 logged', () => logs.some((l) => /401/.test(l)));
  t.equal(src2.synced(), false);
});

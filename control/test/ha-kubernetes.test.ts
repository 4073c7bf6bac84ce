// Control in HA, Kubernetes mode, against the fake API server (which speaks
// the coordination.k8s.io/v1 Lease wire format): two replicas serve the same
// views with the same content versions; only the Lease holder writes route
// status; when it leaves, the other takes the Lease and writes.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControl, kubernetesExtension, type ControlHandle } from '../index.js';
import { createIssuer, createTrustAnchor } from '../../certs/index.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import { certify, FakeSidecar, updateOf } from './helpers/fake-sidecar.js';

const ip = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const LEASES = '/apis/coordination.k8s.io/v1/leases';
const ROUTES = '/apis/gateway.networking.k8s.io/v1/httproutes';

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('two control replicas: same views and versions; route status only from the Lease holder, then from the next', async (t) => {
  const api = new FakeKubeApiServer(ip);
  await api.start();
  t.teardown(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'weft-kha-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor);
  const issuerDir = join(dir, 'issuer');
  mkdirSync(issuerDir);
  writeFileSync(join(issuerDir, 'issuer.pem'), issuer.certPem);
  writeFileSync(join(issuerDir, 'issuer.key'), issuer.keyPem);
  writeFileSync(join(issuerDir, 'trust-bundle.pem'), anchor.certPem);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfigYaml());
  const savedEnv = process.env['KUBECONFIG'];
  process.env['KUBECONFIG'] = kubeconfig;
  t.teardown(() => {
    if (savedEnv === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = savedEnv;
  });
  api.apply('/api/v1/namespaces', { metadata: { name: 'shop' } });
  api.apply('/api/v1/namespaces', { metadata: { name: 'weft-system' } });
  api.apply('/api/v1/services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
  // Two slices, so the replicas' watch order could differ; the views must not.
  api.apply('/apis/discovery.k8s.io/v1/endpointslices', { metadata: { name: 'web-b', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.9'], conditions: { ready: true } }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] });
  api.apply('/apis/discovery.k8s.io/v1/endpointslices', { metadata: { name: 'web-a', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] });
  api.apply(ROUTES, { metadata: { name: 'r', namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
  api.tokens.set('tok-face', { username: 'system:serviceaccount:shop:face', audiences: ['weft'] });

  const replica = (name: string): Promise<ControlHandle> =>
    startControl({ stateDir: join(dir, `state-${name}`), issuerDir, registerWorkloads: false, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {}, extend: kubernetesExtension({ identity: name }) });
  const a = await replica('control-0');
  let aClosed = false;
  t.teardown(() => (aClosed ? undefined : a.close()));
  await waitFor('control-0 holds the Lease', () => (api.get(LEASES, 'weft-system', 'weft-control-status')?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity === 'control-0');
  const b = await replica('control-1');
  t.teardown(() => b.close());

  // Same content → same version on both replicas.
  const versionAt = async (c: ControlHandle): Promise<string> => {
    const cert = await certify(c.grpcAddress, anchor.certPem, { token: 'tok-face', namespace: 'shop', serviceAccount: 'face' });
    const s = new FakeSidecar(c.grpcAddress, anchor.certPem, cert, { namespace: 'shop', service_account: 'face', subscribe: ['shop/web'] });
    try {
      const m = await s.next((x) => updateOf(x)?.service === 'shop/web' && JSON.stringify(updateOf(x)).length > 0, 5000);
      return updateOf(m)!.version;
    } finally {
      s.close();
    }
  };
  const va = await versionAt(a);
  const vb = await versionAt(b);
  t.equal(vb, va, 'both replicas give the view the same version (derived from its content)');

  await waitFor('route status written', () => ((api.get(ROUTES, 'shop', 'r')?.['status'] as { parents?: unknown[] } | undefined)?.parents?.length ?? 0) > 0);
  const statusWrites = () => api.requests.filter((r) => r.method !== 'GET' && r.path.endsWith('/httproutes/r/status'));
  const writesBefore = statusWrites().length;
  t.ok(writesBefore >= 1, 'the holder wrote status');
  // An edit: only the holder writes the new status.
  api.apply(ROUTES, { metadata: { name: 'r', namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'missing', port: 80 }] }] } });
  await waitFor('status after the edit', () => JSON.stringify(api.get(ROUTES, 'shop', 'r')?.['status'] ?? {}).includes('BackendNotFound'));
  await sleep(500);
  t.equal(statusWrites().length - writesBefore, 1, 'one status write per change, not one per replica');
  t.match(api.get(LEASES, 'weft-system', 'weft-control-status')?.['spec'], { holderIdentity: 'control-0' });

  // The holder leaves: the other takes the Lease and writes the next change.
  await a.close();
  aClosed = true;
  await waitFor('control-1 holds the Lease', () => (api.get(LEASES, 'weft-system', 'weft-control-status')?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity === 'control-1', 30_000);
  api.apply(ROUTES, { metadata: { name: 'r', namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
  await waitFor('status written by the new holder', () => JSON.stringify(api.get(ROUTES, 'shop', 'r')?.['status'] ?? {}).includes('"ResolvedRefs","status":"True"'));
  t.pass('the new holder writes route status');
});

// weft control in Kubernetes mode, end to end against the fake API server:
// startControl + kubernetesExtension (what `weft control --kubernetes` runs).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { startControl, kubernetesExtension } from '../index.js';
import { createIssuer, createTrustAnchor, spiffeIdOfCert, verifyChain } from '../../certs/index.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import { certify } from './helpers/fake-sidecar.js';
import type { RouteStatus } from '../../api/index.js';

const ip = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('weft control --kubernetes: identity by TokenReview, route status, trust anchors, meshed endpoints', async (t) => {
  const api = new FakeKubeApiServer(ip);
  await api.start();
  t.teardown(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'weft-kctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The issuer directory as the Deployment mounts it (weft install's projected volume).
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor);
  const issuerDir = join(dir, 'issuer');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(issuerDir);
  writeFileSync(join(issuerDir, 'issuer.pem'), issuer.certPem);
  writeFileSync(join(issuerDir, 'issuer.key'), issuer.keyPem);
  writeFileSync(join(issuerDir, 'trust-bundle.pem'), anchor.certPem);
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfigYaml());
  const savedEnv = process.env['KUBECONFIG'];
  process.env['KUBECONFIG'] = kubeconfig; // loadFromDefault reads it, as outside a pod
  t.teardown(() => { if (savedEnv === undefined) delete process.env['KUBECONFIG']; else process.env['KUBECONFIG'] = savedEnv; });

  api.apply('/api/v1/namespaces', { metadata: { name: 'shop', labels: { 'weft.io/inject': 'enabled' } } });
  api.apply('/api/v1/namespaces', { metadata: { name: 'weft-system' } });
  api.apply('/api/v1/services', { metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] } });
  api.apply('/apis/discovery.k8s.io/v1/endpointslices', { metadata: { name: 'web-1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }, { addresses: ['10.0.0.9'], conditions: { ready: true } }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] });
  api.apply('/api/v1/pods', { metadata: { name: 'web-abc-12345', namespace: 'shop', annotations: { 'weft.io/injected': '0.1.0' } }, spec: { serviceAccountName: 'web', containers: [{ name: 'web' }] }, status: { podIP: '10.0.0.5', phase: 'Running' } });
  api.apply('/apis/gateway.networking.k8s.io/v1/httproutes', { metadata: { name: 'r', namespace: 'shop' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] } });
  api.tokens.set('tok-web', { username: 'system:serviceaccount:shop:web', audiences: ['weft'] });

  const logs: string[] = [];
  const ctl = await startControl({
    stateDir: join(dir, 'state'),
    issuerDir,
    registerWorkloads: false,
    listen: `${ip}:0`,
    adminListen: `${ip}:0`,
    log: (l) => logs.push(l),
    extend: kubernetesExtension({ identity: 'control-0' }),
  });
  t.teardown(() => ctl.close());

  await t.test('Certify signs for the token\'s service account only', async (t) => {
    const cert = await certify(ctl.grpcAddress, anchor.certPem, { token: 'tok-web', namespace: 'shop', serviceAccount: 'web' });
    t.equal(spiffeIdOfCert(cert.certPem), 'spiffe://cluster.local/ns/shop/sa/web');
    t.same(verifyChain(cert.certPem, cert.chain, anchor.certPem), { ok: true, spiffeId: 'spiffe://cluster.local/ns/shop/sa/web' });
    await t.rejects(certify(ctl.grpcAddress, anchor.certPem, { token: 'tok-web', namespace: 'kube-system', serviceAccount: 'admin' }), { code: grpc.status.PERMISSION_DENIED });
    await t.rejects(certify(ctl.grpcAddress, anchor.certPem, { token: 'forged', namespace: 'shop', serviceAccount: 'web' }), { code: grpc.status.UNAUTHENTICATED });
  });

  await t.test('route status is written by the lease holder', async (t) => {
    await waitFor('status', () => ((api.get('/apis/gateway.networking.k8s.io/v1/httproutes', 'shop', 'r')?.status as RouteStatus | undefined)?.parents.length ?? 0) > 0);
    const st = api.get('/apis/gateway.networking.k8s.io/v1/httproutes', 'shop', 'r')?.status as RouteStatus;
    t.equal(st.parents[0]?.controllerName, 'weft.io/mesh-controller');
    t.same(st.parents[0]?.conditions.map((c) => [c.type, c.status]), [['Accepted', 'True'], ['ResolvedRefs', 'True']]);
    t.match(api.get('/apis/coordination.k8s.io/v1/leases', 'weft-system', 'weft-control-status')?.['spec'], { holderIdentity: 'control-0' });
  });

  await t.test('the trust anchor is published into namespaces', async (t) => {
    await waitFor('published', () => api.get('/api/v1/configmaps', 'shop', 'weft-trust-anchor') !== undefined);
    t.equal((api.get('/api/v1/configmaps', 'shop', 'weft-trust-anchor')?.['data'] as Record<string, string>)['ca-bundle.pem'], anchor.certPem);
  });

  await t.test('an endpoint with a sidecar carries its identity, one without does not', async (t) => {
    let view: { endpoints?: { ip: string; identity?: unknown }[] }[] | unknown;
    await waitFor('view', async () => {
      const res = await fetch(`http://${ctl.adminAddress}/config/shop/web?consumer=shop`);
      if (res.status !== 200) return false;
      view = await res.json();
      return JSON.stringify(view).includes('10.0.0.5');
    });
    const text = JSON.stringify(view);
    t.match(text, /"ip":"10\.0\.0\.5"[^}]*"identity":\{"namespace":"shop","serviceAccount":"web"\}/, 'meshed pod: mTLS identity');
    t.notMatch(text, /"ip":"10\.0\.0\.9"[^}]*"identity"/, 'no sidecar: no identity');
  });
});

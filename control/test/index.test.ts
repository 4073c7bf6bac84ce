// startControl's extension points, as Kubernetes mode uses them: another
// source feeding the store, a different authenticator, a compile hook, and no
// local workload registration.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Service } from '../../api/index.js';
import { startControl, splitHostPort, type CompileResult } from '../index.js';
import { certify, FakeSidecar, readState, updateOf } from './helpers/fake-sidecar.js';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

t.test('host:port parsing', async (t) => {
  t.same(splitHostPort('127.0.0.1:7443', 1), { host: '127.0.0.1', port: 7443 });
  t.same(splitHostPort('[::1]:80', 1), { host: '::1', port: 80 });
  t.same(splitHostPort(':9', 1), { host: '127.0.0.1', port: 9 });
  t.same(splitHostPort('0', 1), { host: '127.0.0.1', port: 0 });
  t.same(splitHostPort('example', 7), { host: 'example', port: 7 });
});

t.test('extensions: another source, another authenticator, a compile hook, no local registration', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const compiled: CompileResult[] = [];
  let stopped = false;
  const svc: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
  };
  const control = await startControl({
    stateDir,
    listen: `${ip}:0`,
    adminListen: `${ip}:0`,
    log: () => {},
    registerWorkloads: false,
    sessionKey: Buffer.alloc(32, 7).toString('base64'),
    extend: async ({ store }) => {
      store.upsert('kubernetes', svc);
      store.markSynced('kubernetes');
      return {
        authenticate: (req) =>
          req.token === 'projected-sa-token' ? { namespace: 'shop', serviceAccount: 'web' } : { error: 'token review: not authenticated' },
        onCompiled: (r) => compiled.push(r),
        stop: async () => {
          stopped = true;
        },
      };
    },
  });
  t.teardown(() => control.close());
  t.ok(compiled.length >= 1, 'the hook saw the first compile');
  t.same(compiled.at(-1)!.directory.map((d) => d.name), ['web'], 'the extension source is compiled');
  t.equal(control.store.snapshot().sessionKey, Buffer.alloc(32, 7).toString('base64'));

  const { token, bundle } = readState(stateDir);
  await t.rejects(certify(control.grpcAddress, bundle, { token, namespace: 'shop', serviceAccount: 'web' }), {
    code: grpc.status.UNAUTHENTICATED,
  });
  // The identity comes from the authenticator, not from what the request claims.
  const cert = await certify(control.grpcAddress, bundle, { token: 'projected-sa-token', namespace: 'shop', serviceAccount: 'web' });
  const s = new FakeSidecar(control.grpcAddress, bundle, cert, {
    namespace: 'shop',
    service_account: 'web',
    pod_ip: '10.0.0.5',
    labels: { app: 'web' },
    app_ports: [8080],
    subscribe: ['web'],
  });
  t.teardown(() => s.close());
  const u = updateOf(await s.next((m) => updateOf(m)?.service === 'shop/web'))!;
  t.equal(u.removed, false);
  await sleep(100);
  t.same(control.registry.list(), [], 'no local registration');
  t.same(control.store.snapshot().registered, []);
  s.close();
  await control.close();
  t.ok(stopped, 'extension stopped with control');
});

t.test('Kubernetes mode end to end: API source, mounted issuer, TokenReview, EndpointSlice endpoints, route status', async (t) => {
  const { FakeKubeApiServer } = await import('./helpers/kube-apiserver.js');
  const { kubernetesExtension } = await import('../index.js');
  const { createTrustAnchor, createIssuer, ISSUER_DIR_FILES, verifyChain } = await import('../../certs/index.js');
  const api = new FakeKubeApiServer(ip.replace(/\.\d+$/, `.${(Number(ip.split('.')[3]) % 250) + 2}`));
  await api.start();
  t.teardown(() => api.close());
  api.apply('/api/v1/namespaces', { metadata: { name: 'shop' } });
  api.apply('/api/v1/services', {
    metadata: { name: 'web', namespace: 'shop' },
    spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] },
  });
  api.apply('/apis/discovery.k8s.io/v1/endpointslices', {
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  api.apply('/apis/gateway.networking.k8s.io/v1/httproutes', {
    metadata: { name: 'r', namespace: 'shop' },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  });
  api.tokens.set('projected', { username: 'system:serviceaccount:shop:web', audiences: ['weft'] });

  const issuerDir = mkdtempSync(join(tmpdir(), 'weft-issuer-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => {
    rmSync(issuerDir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(issuerDir, ISSUER_DIR_FILES.issuerCert), issuer.certPem);
  writeFileSync(join(issuerDir, ISSUER_DIR_FILES.issuerKey), issuer.keyPem);
  writeFileSync(join(issuerDir, ISSUER_DIR_FILES.trustBundle), anchor.certPem);

  const start = () =>
    startControl({
      stateDir,
      issuerDir,
      listen: `${ip}:0`,
      adminListen: `${ip}:0`,
      log: () => {},
      registerWorkloads: false,
      extend: kubernetesExtension({ identity: 'control-0', kubeConfig: api.kubeConfig() }),
    });
  const control = await start();
  t.teardown(() => control.close());
  const bundle = anchor.certPem;
  await t.rejects(certify(control.grpcAddress, bundle, { token: 'wrong', namespace: 'shop', serviceAccount: 'web' }), {
    code: grpc.status.UNAUTHENTICATED,
  });
  const cert = await certify(control.grpcAddress, bundle, { token: 'projected', namespace: 'shop', serviceAccount: 'web' });
  t.ok(verifyChain(cert.certPem, cert.chain, bundle).ok, 'leaf chains to the mounted anchor');
  const s = new FakeSidecar(control.grpcAddress, bundle, cert, { namespace: 'shop', service_account: 'web', pod_ip: '10.0.0.5', subscribe: ['shop/web'] });
  t.teardown(() => s.close());
  const u = updateOf(await s.next((m) => updateOf(m)?.service === 'shop/web'))!;
  const cfg = JSON.parse(Buffer.from(u.config_json).toString()) as { backends: Record<string, { endpoints: { ip: string; port: number }[] }> };
  t.same(cfg.backends['shop/web:80']?.endpoints.map((e) => `${e.ip}:${e.port}`), ['10.0.0.5:8080'], 'endpoints from the EndpointSlice');
  const deadline = Date.now() + 5000;
  let status: { parents?: { controllerName: string }[] } | undefined;
  while (Date.now() < deadline) {
    status = api.get('/apis/gateway.networking.k8s.io/v1/httproutes', 'shop', 'r')?.status as typeof status;
    if (status?.parents?.length) break;
    await sleep(50);
  }
  t.equal(status?.parents?.[0]?.controllerName, 'weft.io/mesh-controller', 'route status written');
  // Replicas share the session key: derived from the mounted issuer.
  const again = await (async () => {
    s.close();
    await control.close();
    const other = mkdtempSync(join(tmpdir(), 'weft-state-'));
    t.teardown(() => rmSync(other, { recursive: true, force: true }));
    const c2 = await startControl({ stateDir: other, issuerDir, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {}, registerWorkloads: false });
    const key = c2.store.snapshot().sessionKey;
    await c2.close();
    return key;
  })();
  t.equal(again, control.store.snapshot().sessionKey, 'a second replica derives the same session key');
});

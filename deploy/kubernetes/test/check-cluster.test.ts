import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeKubeApiServer } from '../../../control/test/helpers/kube-apiserver.js';
import { renderManifests, installCerts } from '../../../cli/cmd-install.js';
import { createIssuer, createTrustAnchor } from '../../../certs/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
// Three CLI runs that each load the Kubernetes client: slow on a loaded machine.
t.setTimeout(300_000);
const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

function weft(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill(), 60_000);
    p.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const PATHS: Record<string, string> = {
  ConfigMap: '/api/v1/configmaps',
  Secret: '/api/v1/secrets',
  Deployment: '/apis/apps/v1/deployments',
  MutatingWebhookConfiguration: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
  Namespace: '/api/v1/namespaces',
};

t.test('weft check against an API server: what is there, what is missing, what expires', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  const home = mkdtempSync(join(tmpdir(), 'weft-check-k-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const kubeconfig = join(home, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeConfigYaml());

  // Nothing installed yet.
  const empty = await weft(['check', '--kubeconfig', kubeconfig], { HOME: home });
  t.equal(empty.status, 1, empty.stderr);
  t.match(empty.stdout, /× namespace weft-system: not found: run weft install/);
  t.match(empty.stdout, /× CRD httproutes\.gateway\.networking\.k8s\.io: not found: install the Gateway API v1\.1 CRDs/);
  t.match(empty.stdout, /‼ CRD backendlbpolicies\.gateway\.networking\.k8s\.io: not found \(experimental channel/);

  // Install: CRDs, the manifests (Secrets as the API server stores them: base64 data), ready Deployments.
  for (const n of ['httproutes', 'grpcroutes', 'referencegrants', 'backendlbpolicies', 'backendtlspolicies']) {
    api.apply('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { metadata: { name: `${n}.gateway.networking.k8s.io` }, spec: { group: 'gateway.networking.k8s.io', versions: [{ name: 'v1', served: true, storage: true }] } });
  }
  const { certs } = installCerts(undefined);
  // An issuer that expires in 10 days, to see the warning.
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor, { validityMs: 10 * 86_400_000 });
  for (const o of renderManifests({ certs: { ...certs, issuer, trustBundlePem: anchor.certPem } }) as { kind: string; metadata: { name: string; namespace?: string }; stringData?: Record<string, string>; spec?: { replicas?: number } }[]) {
    const path = PATHS[o.kind];
    if (!path) continue;
    if (o.kind === 'Secret') {
      const data = Object.fromEntries(Object.entries(o.stringData ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
      api.apply(path, { metadata: o.metadata, type: 'Opaque', data });
    } else if (o.kind === 'Deployment') {
      api.apply(path, { ...o, status: { readyReplicas: o.metadata.name === 'weft-control' ? 2 : 1, replicas: 2 } } as never);
    } else api.apply(path, o as never);
  }
  const r = await weft(['check', '--kubeconfig', kubeconfig, '--warn-days', '30'], { HOME: home });
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /√ namespace weft-system/);
  t.match(r.stdout, /√ CRD httproutes\.gateway\.networking\.k8s\.io: served: v1/);
  t.match(r.stdout, /√ deployment weft-control: 2\/2 ready/);
  t.match(r.stdout, /‼ deployment weft-injector: 1\/2 ready/);
  t.match(r.stdout, /√ webhook configuration weft-injector: 2 webhooks/);
  t.match(r.stdout, /√ injector answers \(service proxy \/ready\): ok/);
  t.match(r.stdout, /√ trust anchor \(ConfigMap weft-trust-anchor\) certificate: expires/);
  t.match(r.stdout, /‼ issuer \(Secret weft-issuer\) certificate: expires .* \(\d+\.\d days left\)/);
  t.match(r.stdout, /√ webhook serving \(Secret weft-injector-tls\) certificate/);
  t.match(r.stdout, /√ rotation: no rotation in progress \(bundle has 1 anchor/);
  // Mid-rotation: a second anchor in the ConfigMap, the issuer still under the first.
  api.apply(PATHS['ConfigMap']!, { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': anchor.certPem + createTrustAnchor().certPem } });
  const mid = await weft(['check', '--kubeconfig', kubeconfig], { HOME: home });
  t.match(mid.stdout, /‼ rotation: bundle has 2 anchors; issuer signed by the old anchor → run `weft certs rotate issuer`/);
  t.ok(api.requests.some((q) => decodeURIComponent(q.path) === '/api/v1/namespaces/weft-system/services/https:weft-injector:443/proxy/ready'), 'webhook probed through the API server');

  // The injector stops answering.
  api.serviceProxyReply = 'no endpoints available';
  api.failNext('GET', /\/proxy\/ready$/, 503);
  const down = await weft(['check', '--kubeconfig', kubeconfig], { HOME: home });
  t.equal(down.status, 1);
  t.match(down.stdout, /× injector answers \(service proxy \/ready\)/);
});

import t from 'tap';
import https from 'node:https';
import jsonpatch from 'fast-json-patch';
import { Pod } from 'kubernetes-models/v1';
import { createTrustAnchor, createIssuer, issueCert } from '../../certs/index.js';
import { startInjector, handleReview, buildPatch, type PodLike, type Container } from '../index.js';
import { WEFT_VERSION } from '../../api/index.js';
import { deploymentPod, review } from './fixtures/reviews.js';

const anchor = createTrustAnchor();
const issuer = createIssuer(anchor);
const serving = issueCert(issuer, { dnsNames: ['weft-injector.weft-system.svc'], ipAddresses: ['127.0.0.1'] });
const logs: string[] = [];

function post(port: number, path: string, body: string): Promise<{ status: number; json: unknown; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: 'POST', ca: anchor.certPem, servername: 'weft-injector.weft-system.svc', headers: { 'content-type': 'application/json' }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          let json: unknown;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

interface Resp { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[]; status?: { code: number; message: string } }

function applyResponse(pod: unknown, resp: Resp): PodLike {
  if (!resp.patch) return pod as PodLike;
  const ops = JSON.parse(Buffer.from(resp.patch, 'base64').toString('utf8'));
  t.equal(resp.patchType, 'JSONPatch');
  const errors = jsonpatch.validate(ops, structuredClone(pod));
  t.equal(errors, undefined, 'patch validates against the pod');
  return jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument as PodLike;
}

function validPod(p: PodLike) {
  // Names the API server fills in after admission.
  const obj = structuredClone(p) as PodLike & { metadata: { name?: string } };
  obj.metadata = { ...obj.metadata, name: 'web-7c9d8f6b5-abcde', namespace: 'shop' };
  new Pod(obj as ConstructorParameters<typeof Pod>[0]).validate();
}

function checkInjected(t: Tap, pod: PodLike, ownInit: string[]) {
  const init = pod.spec?.initContainers ?? [];
  t.same(init.map((c) => c.name), ['weft-init', 'weft-proxy', ...ownInit], 'weft-init, then the native sidecar, then the pod\'s own init containers');
  const [wi, proxy] = init as [Container, Container];
  t.same(wi.args?.slice(0, 9), ['init', '--proxy-uid', '2102', '--inbound-port', '7002', '--outbound-port', '7001', '--skip-inbound-ports', '7090']);
  t.same((wi.securityContext as { capabilities: { add: string[] } }).capabilities.add, ['NET_ADMIN', 'NET_RAW']);
  t.equal(proxy.restartPolicy, 'Always', 'native sidecar');
  t.same(proxy.args?.slice(0, 3), ['sidecar', '--control', 'weft-control.weft-system.svc:7443']);
  t.equal((proxy.securityContext as { runAsUser: number }).runAsUser, 2102);
  const env = Object.fromEntries((proxy.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
  t.match(env, { POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', POD_IP: 'status.podIP', SERVICE_ACCOUNT: 'spec.serviceAccountName' });
  t.same(proxy.readinessProbe?.httpGet, { path: '/ready', port: 7090 });
  t.same(proxy.livenessProbe?.httpGet, { path: '/live', port: 7090 });
  t.same(proxy.startupProbe?.httpGet, { path: '/ready', port: 7090 });
  const vol = (pod.spec?.volumes ?? []).find((v) => v.name === 'weft-identity') as { projected: { sources: Record<string, Record<string, unknown>>[] } } | undefined;
  t.ok(vol, 'identity volume added');
  t.match(vol?.projected.sources[0]?.['serviceAccountToken'], { audience: 'weft', path: 'bootstrap-token' });
  t.match(vol?.projected.sources[1]?.['configMap'], { name: 'weft-trust-anchor' });
  t.same(proxy.volumeMounts, [{ name: 'weft-identity', mountPath: '/var/run/weft/identity', readOnly: true }]);
  t.equal(pod.metadata?.annotations?.['weft.io/injected'], WEFT_VERSION);
  t.equal(pod.spec?.containers[0]?.name, 'web', 'app containers untouched');
  t.equal(pod.spec?.volumes?.[0]?.name, 'kube-api-access-x7k2p', 'existing volumes kept');
}
type Tap = typeof t;

t.test('webhook over real HTTPS', async (t) => {
  const srv = await startInjector({ host: '127.0.0.1', port: 0, certPem: serving.certPem + issuer.certPem, keyPem: serving.keyPem, log: (l) => logs.push(l) });
  t.teardown(() => srv.close());

  await t.test('deployment pod without init containers is injected', async (t) => {
    const pod = deploymentPod();
    const r = await post(srv.port, '/mutate', JSON.stringify(review(pod)));
    t.equal(r.status, 200);
    const out = r.json as { apiVersion: string; kind: string; response: Resp };
    t.equal(out.apiVersion, 'admission.k8s.io/v1');
    t.equal(out.kind, 'AdmissionReview');
    t.equal(out.response.uid, 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10', 'uid echoed');
    t.equal(out.response.allowed, true);
    const patched = applyResponse(pod, out.response);
    checkInjected(t, patched, []);
    validPod(patched);
  });

  await t.test('deployment pod with init containers: the proxy goes before them', async (t) => {
    const pod = deploymentPod({ initContainers: true, annotations: { 'config.weft.io/proxy-cpu-request': '250m', 'config.weft.io/proxy-memory-limit': '1Gi', 'config.weft.io/log-level': 'debug', 'config.weft.io/skip-outbound-ports': '5432,6379' } });
    const r = await post(srv.port, '/mutate', JSON.stringify(review(pod)));
    const resp = (r.json as { response: Resp }).response;
    const patched = applyResponse(pod, resp);
    checkInjected(t, patched, ['migrate', 'warm-cache']);
    const proxy = patched.spec?.initContainers?.[1] as Container;
    t.same(proxy.resources, { requests: { cpu: '250m', memory: '64Mi' }, limits: { memory: '1Gi' } });
    t.same(proxy.env?.find((e) => e.name === 'WEFT_LOG_LEVEL'), { name: 'WEFT_LOG_LEVEL', value: 'debug' }, 'log level from annotation');
    t.same(proxy.args?.slice(proxy.args.indexOf('--app-ports'), proxy.args.indexOf('--app-ports') + 2), ['--app-ports', '8080'], 'the app\'s declared ports');
    const wi = patched.spec?.initContainers?.[0] as Container;
    t.same(wi.args?.slice(-2), ['--skip-outbound-ports', '5432,6379']);
    t.equal(resp.warnings, undefined, 'no warnings for good annotations');
    validPod(patched);
  });

  await t.test('bad annotations inject with defaults and warn, naming the annotation', async (t) => {
    const pod = deploymentPod({ annotations: { 'config.weft.io/proxy-memory-limit': 'lots', 'config.weft.io/log-level': 'loud', 'config.weft.io/nope': 'x' } });
    const r = await post(srv.port, '/mutate', JSON.stringify(review(pod)));
    const resp = (r.json as { response: Resp }).response;
    t.equal(resp.warnings?.length, 3);
    t.match(resp.warnings?.join('\n'), /config\.weft\.io\/proxy-memory-limit: "lots"/);
    t.match(resp.warnings?.join('\n'), /config\.weft\.io\/log-level: "loud"/);
    t.match(resp.warnings?.join('\n'), /config\.weft\.io\/nope/);
    const patched = applyResponse(pod, resp);
    t.same((patched.spec?.initContainers?.[1] as Container).resources?.limits, { memory: '256Mi' });
    validPod(patched);
  });

  const notInjected: [string, unknown, string, RegExp][] = [
    ['opt-out annotation', deploymentPod({ annotations: { 'weft.io/inject': 'disabled' } }), '/mutate', /opts out/],
    ['already injected', deploymentPod({ annotations: { 'weft.io/injected': '0.0.9' } }), '/mutate', /already injected/],
    ['hostNetwork', deploymentPod({ hostNetwork: true }), '/mutate', /hostNetwork/],
    ['opt-in route without pod opt-in', deploymentPod(), '/mutate-pod-opt-in', /neither/],
  ];
  for (const [name, pod, path, why] of notInjected) {
    await t.test(`not injected: ${name}`, async (t) => {
      const r = await post(srv.port, path, JSON.stringify(review(pod)));
      t.equal(r.status, 200);
      const resp = (r.json as { response: Resp }).response;
      t.same(resp, { uid: 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10', allowed: true }, 'allowed, no patch');
      t.match(logs.at(-1), why, 'reason logged');
    });
  }

  await t.test('pod opt-in label in an unlabelled namespace is injected', async (t) => {
    const pod = deploymentPod({ labels: { 'weft.io/inject': 'enabled' } });
    const r = await post(srv.port, '/mutate-pod-opt-in', JSON.stringify(review(pod)));
    const patched = applyResponse(pod, (r.json as { response: Resp }).response);
    checkInjected(t, patched, []);
  });

  const garbage: [string, string, number, RegExp, string][] = [
    ['not JSON', '{"apiVersion": admission', 400, /not JSON/, ''],
    ['JSON but not an object', '[1,2]', 400, /not a JSON object/, ''],
    ['not an AdmissionReview', JSON.stringify({ apiVersion: 'v1', kind: 'Pod', request: { uid: 'u1' } }), 200, /kind: expected AdmissionReview/, 'u1'],
    ['unknown apiVersion', JSON.stringify({ ...review(deploymentPod()), apiVersion: 'admission.k8s.io/v1beta1' }), 200, /apiVersion: expected admission\.k8s\.io\/v1/, 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10'],
    ['not a Pod', JSON.stringify(review({ apiVersion: 'v1', kind: 'Service', spec: {} }, { kind: { group: '', version: 'v1', kind: 'Service' }, resource: { group: '', version: 'v1', resource: 'services' } })), 200, /only core\/v1 Pods/, 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10'],
    ['Pod without spec', JSON.stringify(review({ apiVersion: 'v1', kind: 'Pod', metadata: {} })), 200, /not a Pod/, 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10'],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, /no request/, ''],
  ];
  for (const [name, body, status, msg, uid] of garbage) {
    await t.test(`bad input: ${name}`, async (t) => {
      const r = await post(srv.port, '/mutate', body);
      t.equal(r.status, status);
      const resp = (r.json as { response: Resp }).response;
      t.equal(resp.uid, uid);
      t.equal(resp.allowed, true, 'never blocks the pod');
      t.equal(resp.patch, undefined);
      t.match(resp.status?.message, msg);
      t.match(resp.warnings?.[0], msg);
    });
  }

  await t.test('other paths and methods', async (t) => {
    t.equal((await post(srv.port, '/nope', '{}')).status, 404);
    const get = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: srv.port, path: '/mutate', ca: anchor.certPem, servername: 'weft-injector.weft-system.svc', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
    });
    t.equal(get, 405);
  });

  await t.test('the server survives all of it', async (t) => {
    const r = await post(srv.port, '/mutate', JSON.stringify(review(deploymentPod())));
    t.equal(r.status, 200);
    t.ok((r.json as { response: Resp }).response.patch);
  });
});

t.test('UPDATE is allowed without a patch', async (t) => {
  const out = handleReview(JSON.stringify(review(deploymentPod(), { operation: 'UPDATE' })), 'namespace-enabled');
  t.same(out.review.response, { uid: 'b9a4f0f4-5f7e-4e0b-9d6c-3d1a3c2b7a10', allowed: true });
});

t.test('legacy mode: plain first container with a start-up hold, weft-init after the pod\'s init containers', async (t) => {
  const pod = deploymentPod({ initContainers: true });
  const r = buildPatch(pod as PodLike, { 'weft.io/inject': 'enabled' }, { nativeSidecar: false });
  t.ok(r.inject);
  if (!r.inject) return;
  const patched = jsonpatch.applyPatch(structuredClone(pod), r.ops as jsonpatch.Operation[], true, false).newDocument as PodLike;
  t.same(patched.spec?.initContainers?.map((c) => c.name), ['migrate', 'warm-cache', 'weft-init']);
  t.same(patched.spec?.containers.map((c) => c.name), ['weft-proxy', 'web']);
  const proxy = patched.spec?.containers[0] as Container;
  t.equal(proxy.restartPolicy, undefined);
  t.ok((proxy.lifecycle as { postStart?: unknown }).postStart, 'postStart hold');
  t.equal(patched.metadata?.annotations?.['kubectl.kubernetes.io/default-container'], 'web');
  validPod(patched);
});

t.test('decision table', async (t) => {
  const en = { 'weft.io/inject': 'enabled' };
  const cases: [string, PodLike, Record<string, string>, boolean][] = [
    ['labelled namespace', deploymentPod() as PodLike, en, true],
    ['unlabelled namespace', deploymentPod() as PodLike, {}, false],
    ['pod annotation enabled, unlabelled namespace', deploymentPod({ annotations: { 'weft.io/inject': 'enabled' } }) as PodLike, {}, true],
    ['pod annotation disabled wins over namespace', deploymentPod({ annotations: { 'weft.io/inject': 'disabled' } }) as PodLike, en, false],
    ['annotation disabled wins over label enabled', deploymentPod({ annotations: { 'weft.io/inject': 'disabled' }, labels: { 'weft.io/inject': 'enabled' } }) as PodLike, en, false],
    ['namespace disabled', deploymentPod() as PodLike, { 'weft.io/inject': 'disabled' }, false],
    ['typo in annotation', deploymentPod({ annotations: { 'weft.io/inject': 'yes' } }) as PodLike, en, false],
    ['hostNetwork with opt-in', deploymentPod({ hostNetwork: true, annotations: { 'weft.io/inject': 'enabled' } }) as PodLike, en, false],
    ['already injected', deploymentPod({ annotations: { 'weft.io/injected': WEFT_VERSION } }) as PodLike, en, false],
  ];
  for (const [name, pod, ns, want] of cases) t.equal(buildPatch(pod, ns).inject, want, name);
  // Idempotent: injecting the injected pod again changes nothing.
  const first = buildPatch(deploymentPod() as PodLike, en);
  if (!first.inject) throw new Error('expected injection');
  const once = jsonpatch.applyPatch(structuredClone(deploymentPod()), first.ops as jsonpatch.Operation[], true, false).newDocument as PodLike;
  t.equal(buildPatch(once, en).inject, false, 'never twice');
});

t.test('a renewed serving certificate on disk is picked up without a restart', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync, renameSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const tls = await import('node:tls');
  const dir = mkdtempSync(join(tmpdir(), 'weft-injector-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = (p: { certPem: string; keyPem: string }) => {
    // Like the kubelet's atomic swap of a Secret volume: write aside, rename into place.
    writeFileSync(join(dir, 'tls.key.new'), p.keyPem);
    writeFileSync(join(dir, 'tls.crt.new'), p.certPem + issuer.certPem);
    renameSync(join(dir, 'tls.key.new'), join(dir, 'tls.key'));
    renameSync(join(dir, 'tls.crt.new'), join(dir, 'tls.crt'));
  };
  write(serving);
  const reloaded: string[] = [];
  const srv = await startInjector({ host: '127.0.0.1', port: 0, certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reloadIntervalMs: 50, log: (l) => reloaded.push(l) });
  t.teardown(() => srv.close());
  const serial = () => new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, ca: anchor.certPem, servername: 'weft-injector.weft-system.svc' }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
  const first = await serial();
  const renewed = issueCert(issuer, { dnsNames: ['weft-injector.weft-system.svc'], ipAddresses: ['127.0.0.1'] });
  write(renewed);
  const end = Date.now() + 10_000;
  let now = first;
  while (now === first && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    now = await serial();
  }
  t.not(now, first, 'new connections get the renewed certificate');
  t.ok(reloaded.some((l) => /reloaded serving certificate/.test(l)));
});

// Issuer and trust bundle replaced while control runs: the checks a candidate
// must pass (table), the STATE file watch, and the Kubernetes watch of the
// ConfigMap weft-trust-anchor and the Secret weft-issuer through the fake API
// server (real wire format).
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STATE_FILES } from '../../api/index.js';
import { certSha256, createIssuer, createTrustAnchor, loadOrCreateAuthority, readAuthorityFiles, rotate, writeAuthorityFiles, type AuthorityFiles } from '../../certs/index.js';
import { authorityProblem, LiveAuthority, type AuthorityChange } from '../authority.js';
import { AuthorityFilesWatch } from '../authority-files.js';
import { issuerOfSecret } from '../authority-kubernetes.js';
import { startKubernetesMode } from '../kubernetes-mode.js';
import { Store } from '../store.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';

const randomLoopback = () => `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - t0;
}

const anchorA = createTrustAnchor();
const anchorB = createTrustAnchor();
const issuerA = createIssuer(anchorA);
const issuerB = createIssuer(anchorB);

t.test('a candidate issuer/bundle is used only when it holds together', async (t) => {
  const expired = createIssuer(anchorA, { now: new Date(Date.now() - 3 * 86_400_000), validityMs: 86_400_000 });
  const table: [string, { issuer: { certPem: string; keyPem: string }; trustBundlePem: string }, RegExp | undefined][] = [
    ['issuer under the one anchor', { issuer: issuerA, trustBundlePem: anchorA.certPem }, undefined],
    ['issuer under one of two anchors', { issuer: issuerB, trustBundlePem: anchorA.certPem + anchorB.certPem }, undefined],
    ['key of another issuer (half-written rotation)', { issuer: { certPem: issuerA.certPem, keyPem: issuerB.keyPem }, trustBundlePem: anchorA.certPem }, /^issuer key: does not match/],
    ['bundle without the issuer\'s anchor (finish too early)', { issuer: issuerA, trustBundlePem: anchorB.certPem }, /^issuer certificate: not signed by any anchor/],
    ['empty bundle', { issuer: issuerA, trustBundlePem: '' }, /^trust bundle: holds no CERTIFICATE/],
    ['garbage issuer', { issuer: { certPem: 'nope', keyPem: issuerA.keyPem }, trustBundlePem: anchorA.certPem }, /^issuer certificate:/],
    ['expired issuer', { issuer: expired, trustBundlePem: anchorA.certPem }, /^issuer certificate: expired/],
    ['an anchor is not an issuer key pair', { issuer: { certPem: anchorA.certPem, keyPem: issuerA.keyPem }, trustBundlePem: anchorA.certPem }, /^issuer key: does not match/],
  ];
  for (const [name, pair, want] of table) {
    const p = authorityProblem(pair);
    if (want) t.match(p, want, name);
    else t.equal(p, undefined, name);
  }
});

t.test('LiveAuthority keeps the last good pair and says what changed', async (t) => {
  const target = { issuer: issuerA, trustBundlePem: anchorA.certPem };
  const logs: string[] = [];
  const a = new LiveAuthority(target, (l) => logs.push(l));
  const changes: AuthorityChange[] = [];
  a.on('changed', (c: AuthorityChange) => changes.push(c));
  t.equal(a.issuerSha256, certSha256(issuerA.certPem));
  t.equal(a.offer({ trustBundlePem: anchorA.certPem }, 'x'), undefined, 'same: nothing to do');
  t.equal(changes.length, 0);
  t.match(a.offer({ issuer: issuerB }, 'x'), /not signed by any anchor/, 'new issuer before its anchor is trusted: refused');
  t.match(a.offer({ issuer: issuerB }, 'x'), /not signed by any anchor/);
  t.equal(logs.filter((l) => l.includes('keeping the current one')).length, 1, 'the same problem is logged once');
  t.equal(target.issuer, issuerA, 'still the old issuer');
  t.equal(a.offer({ trustBundlePem: anchorA.certPem + anchorB.certPem }, 'x'), undefined);
  t.same(changes.pop(), { issuerChanged: false, bundleChanged: true, from: 'x' });
  t.equal(a.offer({ issuer: issuerB }, 'x'), undefined);
  t.same(changes.pop(), { issuerChanged: true, bundleChanged: false, from: 'x' });
  t.equal(a.issuerSha256, certSha256(issuerB.certPem));
  t.equal(target.issuer, issuerB, 'the target object is updated in place (control reads state.issuer)');
});

t.test('STATE files: each rotate step is taken within the poll interval; a half-written issuer waits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-auth-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const auth = loadOrCreateAuthority(dir);
  const target = { issuer: auth.issuer, trustBundlePem: auth.trustBundlePem };
  const live = new LiveAuthority(target, () => {});
  const watch = new AuthorityFilesWatch({ dir, files: STATE_FILES, authority: live, intervalMs: 100 });
  watch.start();
  t.teardown(() => watch.stop());
  let cur = readAuthorityFiles(dir, STATE_FILES) as AuthorityFiles;
  for (const step of ['anchor', 'issuer', 'finish'] as const) {
    const r = rotate(step, cur);
    if ('error' in r) throw new Error(r.error);
    writeAuthorityFiles(dir, STATE_FILES, cur, r.files);
    cur = r.files;
    const ms = await waitFor(`${step} taken`, () => target.trustBundlePem === cur.trustBundlePem && target.issuer.certPem === cur.issuer.certPem);
    t.ok(ms < 1000, `${step}: taken in ${ms} ms`);
  }
  // Half a rotation on disk: a new key with the old certificate.
  const other = createIssuer(createTrustAnchor());
  const { writeSecretFile } = await import('../../certs/index.js');
  writeSecretFile(join(dir, STATE_FILES.issuerKey), other.keyPem);
  await sleep(300);
  t.equal(target.issuer.certPem, cur.issuer.certPem, 'mismatched key: the issuer in service is unchanged');
  t.equal(target.issuer.keyPem, cur.issuer.keyPem);
});

t.test('Kubernetes: the issuer Secret and the weft-system trust anchor ConfigMap are watched; the bundle is copied to namespaces', async (t) => {
  const api = new FakeKubeApiServer(randomLoopback());
  await api.start();
  t.teardown(() => api.close());
  api.apply('/api/v1/namespaces', { metadata: { name: 'weft-system' } });
  api.apply('/api/v1/namespaces', { metadata: { name: 'shop' } });
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  api.apply('/api/v1/configmaps', { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': anchorA.certPem } });
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerA.certPem), 'issuer.key': b64(issuerA.keyPem) } });
  // Another Secret in the namespace must not be mistaken for the issuer.
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-injector-tls', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerB.certPem), 'issuer.key': b64(issuerB.keyPem) } });
  const target = { issuer: issuerA, trustBundlePem: anchorA.certPem };
  const live = new LiveAuthority(target, () => {});
  const changes: AuthorityChange[] = [];
  live.on('changed', (c: AuthorityChange) => changes.push(c));
  const kube = await startKubernetesMode({
    store: new Store({ sessionKey: 'k' }),
    kubeConfig: api.kubeConfig(),
    identity: 'control-0',
    trustBundle: () => target.trustBundlePem,
    authority: live,
    log: () => {},
    source: { backoffMs: 20, kinds: ['Namespace', 'ConfigMap'] },
  });
  t.teardown(() => kube.stop());
  await waitFor('leader', () => kube.lease.isLeader());
  t.equal(changes.length, 0, 'nothing changed at start');
  const shopBundle = () => (api.get('/api/v1/configmaps', 'shop', 'weft-trust-anchor')?.['data'] as Record<string, string> | undefined)?.['ca-bundle.pem'];
  await waitFor('published to shop', () => shopBundle() === anchorA.certPem);

  // Step 1 (anchor): the operator applies the ConfigMap with old + new.
  const both = anchorA.certPem + anchorB.certPem;
  api.apply('/api/v1/configmaps', { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': both } });
  let ms = await waitFor('bundle taken', () => target.trustBundlePem === both);
  t.ok(ms < 5000, `ConfigMap edit taken in ${ms} ms`);
  await waitFor('copied to shop', () => shopBundle() === both);
  t.equal((api.get('/api/v1/configmaps', 'weft-system', 'weft-trust-anchor')?.['data'] as Record<string, string>)['ca-bundle.pem'], both, 'the source ConfigMap is not overwritten with the old bundle');

  // Step 2 (issuer): the Secret.
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerB.certPem), 'issuer.key': b64(issuerB.keyPem) } });
  ms = await waitFor('issuer taken', () => target.issuer.certPem === issuerB.certPem);
  t.ok(ms < 5000, `Secret edit taken in ${ms} ms`);
  t.equal(live.issuerSha256, certSha256(issuerB.certPem));

  // A broken Secret keeps the issuer in service.
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerA.certPem) } });
  await sleep(300);
  t.equal(target.issuer.certPem, issuerB.certPem, 'Secret without issuer.key: ignored');

  // Step 3 (finish): the ConfigMap with the new anchor alone.
  api.apply('/api/v1/configmaps', { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': anchorB.certPem } });
  await waitFor('finish taken', () => target.trustBundlePem === anchorB.certPem);
  await waitFor('copied to shop', () => shopBundle() === anchorB.certPem);

  // The watch survives a dropped connection.
  api.dropWatches();
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerA.certPem), 'issuer.key': b64(issuerA.keyPem) } });
  await sleep(200);
  t.equal(target.issuer.certPem, issuerB.certPem, 'issuer A does not chain to the bundle of anchor B alone: refused');
  const issuerB2 = createIssuer(anchorB);
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerB2.certPem), 'issuer.key': b64(issuerB2.keyPem) } });
  await waitFor('taken after the watch was dropped', () => target.issuer.certPem === issuerB2.certPem, 10_000);
  // A finish applied while the issuer is still under the old anchor: refused, and the
  // operator's ConfigMap is left as they wrote it (control never writes its own namespace's copy).
  const anchorC = createTrustAnchor();
  api.apply('/api/v1/configmaps', { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': anchorC.certPem } });
  await sleep(300);
  t.equal(target.trustBundlePem, anchorB.certPem, 'bundle without the issuer\'s anchor: refused');
  t.equal((api.get('/api/v1/configmaps', 'weft-system', 'weft-trust-anchor')?.['data'] as Record<string, string>)['ca-bundle.pem'], anchorC.certPem, 'the operator\'s ConfigMap is not reverted');
  t.equal(shopBundle(), anchorB.certPem, 'namespaces keep the bundle in service');
  // The matching Secret arrives: the pair fits and is taken together.
  const issuerC = createIssuer(anchorC);
  api.apply('/api/v1/secrets', { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, data: { 'issuer.pem': b64(issuerC.certPem), 'issuer.key': b64(issuerC.keyPem) } });
  await waitFor('ConfigMap and Secret taken together', () => target.issuer.certPem === issuerC.certPem && target.trustBundlePem === anchorC.certPem);
  await waitFor('copied to shop', () => shopBundle() === anchorC.certPem);

  const secretReqs = api.requests.filter((r) => r.path.includes('/secrets'));
  t.ok(secretReqs.every((r) => r.path.startsWith('/api/v1/namespaces/weft-system/secrets') && r.query.get('fieldSelector') === 'metadata.name=weft-issuer'), 'only the issuer Secret is asked for, by name');
});

t.test('issuerOfSecret reads data (base64) or stringData and names the missing key', async (t) => {
  const md = { name: 'weft-issuer', namespace: 'weft-system' };
  t.same(issuerOfSecret({ metadata: md, stringData: { 'issuer.pem': 'c', 'issuer.key': 'k' } }), { certPem: 'c', keyPem: 'k' });
  t.same(issuerOfSecret({ metadata: md, data: { 'issuer.pem': Buffer.from('c').toString('base64'), 'issuer.key': Buffer.from('k').toString('base64') } }), { certPem: 'c', keyPem: 'k' });
  t.same(issuerOfSecret({ metadata: md, data: {} }), { error: 'Secret weft-system/weft-issuer: data.issuer.pem: missing' });
});

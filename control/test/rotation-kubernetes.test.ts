// weft control --kubernetes across a rotation, against the fake API server:
// the operator applies each step as the ConfigMap weft-trust-anchor and the
// Secret weft-issuer in weft-system (what `weft certs manifests --dir DIR |
// kubectl apply -f -` writes); within 5 s control signs with the new issuer,
// serves Discovery/Identity with a certificate of it, sends the bundle and
// the issuer's fingerprint to a connected stream, and copies the bundle into
// every namespace. No restart.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControl, kubernetesExtension } from '../index.js';
import { certSha256, createIssuer, createTrustAnchor, verifyChain } from '../../certs/index.js';
import { FakeKubeApiServer } from './helpers/kube-apiserver.js';
import { certify, FakeSidecar } from './helpers/fake-sidecar.js';

const ip = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      if (await cond()) return Date.now() - t0;
    } catch {
      // not yet
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

t.test('rotation in a cluster: ConfigMap and Secret edits reach signing, serving, the stream and the namespaces', async (t) => {
  const api = new FakeKubeApiServer(ip);
  await api.start();
  t.teardown(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'weft-krot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const anchorA = createTrustAnchor();
  const issuerA = createIssuer(anchorA);
  const issuerDir = join(dir, 'issuer');
  mkdirSync(issuerDir);
  writeFileSync(join(issuerDir, 'issuer.pem'), issuerA.certPem);
  writeFileSync(join(issuerDir, 'issuer.key'), issuerA.keyPem);
  writeFileSync(join(issuerDir, 'trust-bundle.pem'), anchorA.certPem);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const CM = '/api/v1/configmaps';
  const SECRETS = '/api/v1/secrets';
  const setBundle = (pem: string) => api.apply(CM, { metadata: { name: 'weft-trust-anchor', namespace: 'weft-system' }, data: { 'ca-bundle.pem': pem } });
  const setIssuer = (p: { certPem: string; keyPem: string }) => api.apply(SECRETS, { metadata: { name: 'weft-issuer', namespace: 'weft-system' }, type: 'Opaque', data: { 'issuer.pem': b64(p.certPem), 'issuer.key': b64(p.keyPem) } });
  api.apply('/api/v1/namespaces', { metadata: { name: 'weft-system' } });
  api.apply('/api/v1/namespaces', { metadata: { name: 'shop', labels: { 'weft.io/inject': 'enabled' } } });
  setBundle(anchorA.certPem);
  setIssuer(issuerA);
  api.tokens.set('tok-web', { username: 'system:serviceaccount:shop:web', audiences: ['weft'] });

  const logs: string[] = [];
  const ctl = await startControl({
    stateDir: join(dir, 'state'),
    issuerDir,
    registerWorkloads: false,
    listen: `${ip}:0`,
    adminListen: `${ip}:0`,
    log: (l) => logs.push(l),
    extend: kubernetesExtension({ identity: 'control-0', kubeConfig: api.kubeConfig() }),
  });
  t.teardown(() => ctl.close());
  const who = { token: 'tok-web', namespace: 'shop', serviceAccount: 'web' };
  const first = await certify(ctl.grpcAddress, anchorA.certPem, who);
  t.equal(first.chain[0], issuerA.certPem, 'signed by issuer A');
  const sidecar = new FakeSidecar(ctl.grpcAddress, anchorA.certPem, first, { namespace: 'shop', service_account: 'web' });
  t.teardown(() => sidecar.close());
  await waitFor('first directory', () => sidecar.directories().length > 0);
  t.equal(sidecar.directories().at(-1)!.issuer_sha256, certSha256(issuerA.certPem), 'the directory names the issuer');
  const shopBundle = () => (api.get(CM, 'shop', 'weft-trust-anchor')?.['data'] as Record<string, string> | undefined)?.['ca-bundle.pem'];

  // Step 1: anchor.
  const anchorB = createTrustAnchor();
  const both = anchorA.certPem + anchorB.certPem;
  setBundle(both);
  let ms = await waitFor('bundle on the stream', () => sidecar.directories().at(-1)?.trust_bundle === both);
  t.ok(ms < 5000, `anchor: bundle pushed to the stream ${ms} ms after the ConfigMap edit`);
  await waitFor('bundle copied to shop', () => shopBundle() === both);
  t.equal((await certify(ctl.grpcAddress, anchorA.certPem, who)).chain[0], issuerA.certPem, 'still issuer A');

  // Step 2: issuer.
  const issuerB = createIssuer(anchorB);
  setIssuer(issuerB);
  ms = await waitFor('fingerprint on the stream', () => sidecar.directories().at(-1)?.issuer_sha256 === certSha256(issuerB.certPem));
  t.ok(ms < 5000, `issuer: fingerprint pushed ${ms} ms after the Secret edit`);
  const second = await certify(ctl.grpcAddress, anchorA.certPem + anchorB.certPem, who);
  t.equal(second.chain[0], issuerB.certPem, 'signs with issuer B');
  t.same(verifyChain(second.certPem, second.chain, both), { ok: true, spiffeId: 'spiffe://cluster.local/ns/shop/sa/web' });

  // Step 3: finish.
  setBundle(anchorB.certPem);
  ms = await waitFor('new anchor alone on the stream', () => sidecar.directories().at(-1)?.trust_bundle === anchorB.certPem);
  t.ok(ms < 5000, `finish: pushed ${ms} ms after the ConfigMap edit`);
  await waitFor('copied to shop', () => shopBundle() === anchorB.certPem);
  // A client that trusts only anchor B reaches control: its serving certificate is from issuer B.
  const third = await certify(ctl.grpcAddress, anchorB.certPem, who);
  t.equal(third.chain[0], issuerB.certPem);
  // A stream with a leaf of issuer B is accepted; one with the old leaf of issuer A is not.
  const fresh = new FakeSidecar(ctl.grpcAddress, anchorB.certPem, third, { namespace: 'shop', service_account: 'web' });
  t.teardown(() => fresh.close());
  await waitFor('new-issuer stream served', () => fresh.directories().length > 0);
  const stale = new FakeSidecar(ctl.grpcAddress, anchorB.certPem, first, { namespace: 'shop', service_account: 'web' });
  t.teardown(() => stale.close());
  const st = await stale.ended;
  t.not(st.code, 0, `old-issuer leaf refused (${st.details})`);
  t.ok(sidecar.directories().length >= 4, 'the stream opened before the rotation kept going through all of it');

  // A finish applied too early (bundle without the issuer's anchor) is refused; the last good pair serves on.
  setIssuer(createIssuer(createTrustAnchor()));
  await waitFor('refusal logged', () => logs.some((l) => l.includes('not signed by any anchor')));
  t.equal((await certify(ctl.grpcAddress, anchorB.certPem, who)).chain[0], issuerB.certPem, 'still issuer B');
});

// The sidecar's identity across an issuer rotation, against a fake control
// over real TLS: GET /identity's shape and fingerprints, and a renewal from
// the new issuer once control announces it, at a random moment within the
// spread (never at once, never twice for one announcement).
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { certSha256, createIssuer, createTrustAnchor, splitPemBundle } from '../../../certs/index.js';
import { IdentityHolder } from '../bootstrap.js';
import { identityView } from '../../admin/admin.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const host = `127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const fp = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();

t.test('GET /identity and the renewal an issuer change causes', async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-id-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const fc = await startFakeControl({ host, stateDir });
  t.teardown(() => fc.close());
  const logs: string[] = [];
  const id = new IdentityHolder({ control: fc.address, stateDir, namespace: 'shop', serviceAccount: 'web', trustDomain: 'cluster.local', log: (l) => logs.push(l) });
  t.teardown(() => id.close());
  id.start();
  await id.ready;

  const v = identityView(id.spiffe, id.current);
  t.equal(v.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  const leafPem = splitPemBundle(id.current!.certChainPem)[0]!;
  t.equal(v.leaf?.sha256, fp(leafPem), 'leaf sha256 = fingerprint of its DER, lower case, no colons');
  t.match(v.leaf?.sha256, /^[0-9a-f]{64}$/);
  t.equal(v.leaf?.issuerSha256, fp(fc.issuer.certPem), 'issuerSha256 = the issuer that signed it');
  t.same(v.trustBundle.map((a) => a.sha256), [fp(fc.anchor.certPem)]);
  t.match(v.trustBundle[0]!.subject, /weft trust anchor/);
  t.equal(v.leaf?.notAfter, new Date(new X509Certificate(leafPem).validTo).toISOString());
  t.same(identityView('spiffe://x', undefined), { spiffeId: 'spiffe://x', leaf: null, trustBundle: [] }, 'before the first certificate');

  // The same issuer announced: nothing to do.
  const before = fc.certified;
  id.noteIssuer(certSha256(fc.issuer.certPem), 100);
  await sleep(300);
  t.equal(fc.certified, before, 'same issuer: no renewal');

  // A new issuer: renewed once, within the spread, from the new issuer; the bundle stays.
  const next = createIssuer(fc.anchor);
  fc.setIssuer(next);
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) id.noteIssuer(certSha256(next.certPem), 1500);
  while (id.current!.issuerSha256 !== certSha256(next.certPem)) {
    if (Date.now() - t0 > 10_000) throw new Error('no renewal');
    await sleep(20);
  }
  const ms = Date.now() - t0;
  t.ok(ms <= 1500 + 1000, `renewed in ${ms} ms (spread 1500 ms)`);
  await sleep(200);
  t.equal(fc.certified, before + 1, 'five announcements, one renewal');
  t.equal(identityView(id.spiffe, id.current).leaf?.issuerSha256, fp(next.certPem));
  t.equal(logs.filter((l) => l.includes('renewing the certificate in')).length, 1);

  // A new bundle from the directory is used for new handshakes at once.
  const changed = new Promise((r) => id.once('changed', r));
  const second = createTrustAnchor().certPem;
  id.setBundle(fc.anchor.certPem + second);
  await changed;
  t.same(identityView(id.spiffe, id.current).trustBundle.map((a) => a.sha256), [fp(fc.anchor.certPem), fp(second)]);
  // A bundle TLS cannot take is refused (the directory is NACKed with it); the one in use stays.
  t.match(id.setBundle('not a bundle'), /^trust_bundle: no CERTIFICATE block/);
  t.match(id.setBundle('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), /^trust_bundle: /);
  t.equal(identityView(id.spiffe, id.current).trustBundle.length, 2, 'still the last good bundle');
});

// The three rotation steps as pure functions, the status `weft check`
// prints, and the files they read and write (STATE and `weft certs --out` layouts).
import t from 'tap';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATE_FILES } from '../../api/index.js';
import {
  certSha256, createIssuer, createTrustAnchor, finishRotation, issueCert, readAuthorityFiles, rotate, rotateAnchor, rotateIssuer, rotationStatus,
  splitPemBundle, verifyChain, writeAuthorityFiles, loadOrCreateAuthority, ISSUER_DIR_FILES, type AuthorityFiles,
} from '../index.js';

const anchor0 = createTrustAnchor();
const issuer0 = createIssuer(anchor0);
const start: AuthorityFiles = { anchor: anchor0, issuer: issuer0, trustBundlePem: anchor0.certPem };
const ok = (r: ReturnType<typeof rotate>): AuthorityFiles => {
  if ('error' in r) throw new Error(r.error);
  return r.files;
};

t.test('certSha256 is the hex SHA-256 of the DER', async (t) => {
  const der = new X509Certificate(anchor0.certPem).raw;
  t.equal(certSha256(anchor0.certPem), createHash('sha256').update(der).digest('hex'));
  t.equal(certSha256(anchor0.certPem), new X509Certificate(anchor0.certPem).fingerprint256.replace(/:/g, '').toLowerCase());
});

t.test('anchor → issuer → finish: every leaf verifies at every step until finish drops the old anchor', async (t) => {
  const oldLeaf = issueCert(issuer0, { spiffeId: 'spiffe://cluster.local/ns/a/sa/b' });
  const verifies = (leaf: { certPem: string }, issuer: { certPem: string }, bundle: string) => verifyChain(leaf.certPem, [issuer.certPem], bundle).ok;

  const a = ok(rotateAnchor(start));
  t.equal(splitPemBundle(a.trustBundlePem).length, 2, 'bundle: old + new');
  t.ok(splitPemBundle(a.trustBundlePem).includes(splitPemBundle(anchor0.certPem)[0]!), 'old anchor kept');
  t.ok(splitPemBundle(a.trustBundlePem).includes(splitPemBundle(a.anchor.certPem)[0]!), 'new anchor added');
  t.equal(a.issuer, issuer0, 'issuer unchanged');
  t.ok(verifies(oldLeaf, issuer0, a.trustBundlePem), 'old leaf verifies against old + new');
  t.equal(rotationStatus(a.trustBundlePem, a.issuer.certPem, a.anchor.certPem).next, 'issuer');

  const b = ok(rotateIssuer(a));
  t.not(b.issuer.certPem, issuer0.certPem, 'new issuer');
  const nb = new X509Certificate(b.issuer.certPem);
  t.ok(nb.checkIssued(new X509Certificate(a.anchor.certPem)) && nb.verify(new X509Certificate(a.anchor.certPem).publicKey), 'signed by the newest anchor');
  t.equal(b.trustBundlePem, a.trustBundlePem, 'bundle unchanged');
  const newLeaf = issueCert(b.issuer, { spiffeId: 'spiffe://cluster.local/ns/a/sa/b' });
  t.ok(verifies(oldLeaf, issuer0, b.trustBundlePem), 'old leaf still verifies');
  t.ok(verifies(newLeaf, b.issuer, b.trustBundlePem), 'new leaf verifies');
  t.equal(rotationStatus(b.trustBundlePem, b.issuer.certPem, b.anchor.certPem).next, 'finish');

  const c = ok(finishRotation(b));
  t.same(splitPemBundle(c.trustBundlePem), splitPemBundle(b.anchor.certPem), 'the newest anchor alone');
  t.notOk(verifies(oldLeaf, issuer0, c.trustBundlePem), 'old leaf refused');
  t.ok(verifies(newLeaf, b.issuer, c.trustBundlePem), 'new leaf verifies');
  t.equal(rotationStatus(c.trustBundlePem, c.issuer.certPem, c.anchor.certPem).phase, 'steady');
});

t.test('steps that would break the mesh are refused with the field at fault', async (t) => {
  const cases: [string, ReturnType<typeof rotate>, RegExp][] = [
    ['finish before the issuer step', finishRotation(ok(rotateAnchor(start))), /^issuer: not signed by the newest anchor.*rotate issuer/],
    ['issuer without the anchor key', rotateIssuer({ ...start, anchor: { certPem: anchor0.certPem } }), /^anchor key: missing/],
    ['issuer from an anchor not in the bundle', rotateIssuer({ ...start, trustBundlePem: createTrustAnchor().certPem }), /^trust bundle: does not hold the newest anchor/],
  ];
  for (const [name, r, want] of cases) t.match('error' in r ? r.error : 'no error', want, name);
});

t.test('rotate anchor drops expired anchors from the bundle', async (t) => {
  const expired = createTrustAnchor({ now: new Date(Date.now() - 3 * 86_400_000), validityMs: 86_400_000 });
  const a = ok(rotateAnchor({ ...start, trustBundlePem: anchor0.certPem + expired.certPem }));
  t.equal(splitPemBundle(a.trustBundlePem).length, 2);
  t.notOk(splitPemBundle(a.trustBundlePem).includes(splitPemBundle(expired.certPem)[0]!));
});

t.test('rotationStatus names the phase and the next step', async (t) => {
  const a = ok(rotateAnchor(start));
  const b = ok(rotateIssuer(a));
  const stranger = createIssuer(createTrustAnchor());
  const table: [string, string, string, string | undefined, string, RegExp][] = [
    ['one anchor, issuer signed by it', anchor0.certPem, issuer0.certPem, anchor0.certPem, 'steady', /^no rotation in progress \(bundle has 1 anchor/],
    ['two anchors, old issuer', a.trustBundlePem, issuer0.certPem, a.anchor.certPem, 'anchor-added', /^rotation: bundle has 2 anchors; issuer signed by the old anchor → run `weft certs rotate issuer`$/],
    ['two anchors, new issuer', b.trustBundlePem, b.issuer.certPem, b.anchor.certPem, 'issuer-rotated', /^rotation: bundle has 2 anchors; issuer signed by the new anchor → .*`weft certs rotate finish`$/],
    ['newest anchor unknown: the latest notBefore (last on a tie)', b.trustBundlePem, b.issuer.certPem, undefined, 'issuer-rotated', /new anchor/],
    ['issuer of another anchor', anchor0.certPem, stranger.certPem, undefined, 'broken', /signed by none of them/],
    ['anchor file not in the bundle', anchor0.certPem, issuer0.certPem, a.anchor.certPem, 'broken', /does not hold the newest anchor/],
    ['empty bundle', '', issuer0.certPem, undefined, 'broken', /holds no certificate/],
  ];
  for (const [name, bundle, issuer, anchor, phase, msg] of table) {
    const s = rotationStatus(bundle, issuer, anchor);
    t.equal(s.phase, phase, name);
    t.match(s.message, msg, name);
  }
});

t.test('files: STATE and --out layouts read back what the steps wrote; keys 0600; control restarts on the result', async (t) => {
  for (const [label, layout] of [['STATE', STATE_FILES], ['--out DIR', ISSUER_DIR_FILES]] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'weft-rotate-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const initial = label === 'STATE' ? loadOrCreateAuthority(dir) : start;
    if (label !== 'STATE') writeAuthorityFiles(dir, layout, { anchor: { certPem: '' }, issuer: { certPem: '', keyPem: '' }, trustBundlePem: '' }, start);
    const read0 = readAuthorityFiles(dir, layout);
    if ('error' in read0) throw new Error(read0.error);
    t.equal(read0.issuer.certPem, initial.issuer.certPem, `${label}: issuer read`);
    let cur = read0;
    for (const step of ['anchor', 'issuer', 'finish'] as const) {
      const next = ok(rotate(step, cur));
      const written = writeAuthorityFiles(dir, layout, cur, next);
      t.ok(written.length > 0, `${label} ${step}: wrote ${written.join(', ')}`);
      const back = readAuthorityFiles(dir, layout);
      if ('error' in back) throw new Error(back.error);
      t.equal(back.trustBundlePem, next.trustBundlePem, `${label} ${step}: bundle`);
      t.equal(back.issuer.certPem, next.issuer.certPem, `${label} ${step}: issuer`);
      cur = back;
    }
    t.equal(statSync(join(dir, layout.issuerKey)).mode & 0o777, 0o600, `${label}: issuer key 0600`);
    t.equal(statSync(join(dir, layout.anchorKey)).mode & 0o777, 0o600, `${label}: anchor key 0600`);
    t.equal(statSync(join(dir, layout.trustBundle)).mode & 0o777, 0o644, `${label}: bundle 0644`);
    if (label === 'STATE') {
      // A control restarted after the rotation keeps the rotated issuer and bundle.
      const again = loadOrCreateAuthority(dir);
      t.equal(again.issuer.certPem, cur.issuer.certPem, 'restart: same issuer');
      t.equal(again.trustBundlePem, readFileSync(join(dir, STATE_FILES.trustBundle), 'utf8'), 'restart: same bundle');
      t.equal(splitPemBundle(again.trustBundlePem).length, 1);
    }
  }
});

t.test('readAuthorityFiles names the missing or mismatched file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-rotate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = readAuthorityFiles(dir, ISSUER_DIR_FILES);
  t.match('error' in r ? r.error : '', /anchor\.pem: missing/);
  writeAuthorityFiles(dir, ISSUER_DIR_FILES, { anchor: { certPem: '' }, issuer: { certPem: '', keyPem: '' }, trustBundlePem: '' }, { ...start, issuer: { certPem: issuer0.certPem, keyPem: createIssuer(anchor0).keyPem } });
  const m = readAuthorityFiles(dir, ISSUER_DIR_FILES);
  t.match('error' in m ? m.error : '', /issuer\.key: does not match issuer\.pem/);
});

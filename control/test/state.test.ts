import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { verifyChain } from '../../certs/index.js';
import { CONTROL_SERVER_NAME, loadOrCreateState, loadOrIssueServingCert, SERVING_KEY_FILE, writeControlAddress } from '../state.js';

t.test('STATE: created once, secrets 0600, stable across restarts', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'weft-state-')), 'state');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  const a = loadOrCreateState(dir);
  for (const f of ['bootstrap-token', 'session-key', 'ca/anchor.key', 'ca/issuer.key']) {
    t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  }
  t.ok(a.bootstrapToken.length >= 40, 'token has 256 bits');
  t.equal(Buffer.from(a.sessionKey, 'base64').length, 32);
  const b = loadOrCreateState(dir);
  t.equal(b.bootstrapToken, a.bootstrapToken);
  t.equal(b.sessionKey, a.sessionKey);
  t.equal(b.issuer.certPem, a.issuer.certPem);
  t.equal(readFileSync(join(dir, 'trust-bundle.pem'), 'utf8'), a.trustBundlePem);
  writeControlAddress(dir, '127.0.0.1:7443');
  t.equal(readFileSync(join(dir, 'control-address'), 'utf8'), '127.0.0.1:7443\n');
});

t.test('the serving certificate names control, chains to the anchor, and is reused while it fits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const st = loadOrCreateState(dir);
  const c1 = loadOrIssueServingCert(st, '127.44.0.1');
  const x = new X509Certificate(c1.certPem);
  t.ok(x.checkHost(CONTROL_SERVER_NAME), CONTROL_SERVER_NAME);
  t.ok(x.checkIP('127.44.0.1'), 'listen IP');
  t.ok(x.checkIP('127.0.0.1'), 'loopback');
  t.match(x.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/weft-system\/sa\/weft-control/);
  const v = verifyChain(c1.certPem, [st.issuer.certPem], st.trustBundlePem);
  t.ok(v.ok, 'chains to the trust bundle');
  t.equal(statSync(join(dir, SERVING_KEY_FILE)).mode & 0o777, 0o600);
  const c2 = loadOrIssueServingCert(st, '127.44.0.1');
  t.equal(c2.certPem, c1.certPem, 'reused on restart');
  const c3 = loadOrIssueServingCert(st, '127.45.0.9');
  t.not(c3.certPem, c1.certPem, 'a new listen IP gets a new certificate');
  t.ok(new X509Certificate(c3.certPem).checkIP('127.45.0.9'));
});

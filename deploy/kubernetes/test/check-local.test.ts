import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTrustAnchor, createIssuer } from '../../../certs/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const weft = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 30_000 });

t.test('weft check without a cluster says so and checks local certificates', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'weft-check-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const dir = join(home, 'certs');
  t.equal(weft(['certs', '--out', dir], { HOME: home }).status, 0);
  const ok = weft(['check', '--certs', dir], { HOME: home });
  t.equal(ok.status, 0, ok.stdout + ok.stderr);
  t.match(ok.stdout, /no cluster: .*cluster checks skipped/);
  t.match(ok.stdout, /√ issuer certificate: expires .* \(364 days left\)/);
  t.match(ok.stdout, /√ issuer chains to the trust bundle/);

  // An issuer from another anchor, about to expire: one failure, one warning.
  const other = createIssuer(createTrustAnchor(), { validityMs: 5 * 86_400_000 });
  writeFileSync(join(dir, 'issuer.pem'), other.certPem);
  const bad = weft(['check', '--certs', dir], { HOME: home });
  t.equal(bad.status, 1);
  t.match(bad.stdout, /‼ issuer certificate: .*days left/);
  t.match(bad.stdout, /× issuer chains to the trust bundle: no anchor in the bundle signed the issuer/);
  t.match(bad.stdout, /1 check\(s\) failed, 1 warning\(s\)/);

  const missing = weft(['check', '--certs', join(home, 'nope')], { HOME: home });
  t.equal(missing.status, 1);
  t.match(missing.stdout, /× trust anchor: .*trust-bundle\.pem is missing/);

  const refuse = weft(['certs', '--out', dir], { HOME: home });
  t.equal(refuse.status, 2, 'refuses to overwrite an anchor key');
  t.match(refuse.stderr, /--force/);
});

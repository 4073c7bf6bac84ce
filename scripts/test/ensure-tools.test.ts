// npm test's set-up step: with a tool missing it names the Debian package and
// stops (exit 1) instead of letting a test skip or fail somewhere later.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'ensure-tools.mjs');

t.test('everything the tests need is here (npm test installed what was missing)', async (t) => {
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
});

t.test('a missing tool is named with its package and the run stops', async (t) => {
  // Only /usr/sbin and /sbin stay visible (the script always looks there): curl, chromium, prometheus... are gone.
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
  t.equal(r.status, 1);
  t.match(r.stderr, /weft tests need: .*curl \(curl\)/);
  t.match(r.stderr, /chromium \(chromium\)/);
  t.match(r.stderr, /promtool \(prometheus\)/);
  t.match(r.stderr, /apt-get install -y --no-install-recommends .*redis-tools/);
  t.notMatch(r.stderr, /iptables \(iptables\)/, 'found in /usr/sbin');
});

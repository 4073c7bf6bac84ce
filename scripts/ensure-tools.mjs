#!/usr/bin/env node
// What `npm test` needs besides npm packages: the programs the tests run for
// real (iptables in network namespaces, a real Prometheus, curl, redis, a
// headless Chromium, kubectl for manifest dry-runs...). Missing ones are
// installed with apt-get when we are root on Debian; otherwise this names
// exactly what to install and exits non-zero. No test skips itself because a
// tool is missing: it is here, or the run stops before it starts.
//
//   node scripts/ensure-tools.mjs          check, install what is missing (root)
//   node scripts/ensure-tools.mjs --check  check only, exit 1 when something is missing
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Command → the Debian package that provides it. */
export const TOOLS = [
  ['iptables', 'iptables'],
  ['ip', 'iproute2'],
  ['prometheus', 'prometheus'],
  ['promtool', 'prometheus'],
  ['curl', 'curl'],
  ['redis-server', 'redis-server'],
  ['redis-cli', 'redis-tools'],
  ['openssl', 'openssl'],
  ['chromium', 'chromium'],
  ['kubectl', 'kubernetes-client'],
];

/** Daemons Debian starts on install: the tests start their own on loopback. */
const DAEMONS = ['prometheus', 'redis-server'];

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

export function missingTools() {
  return TOOLS.filter(([cmd]) => !onPath(cmd));
}

export function ensureTools({ checkOnly = false } = {}) {
  const missing = missingTools();
  if (missing.length === 0) return 0;
  const pkgs = [...new Set(missing.map(([, p]) => p))];
  const what = missing.map(([c, p]) => `${c} (${p})`).join(', ');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const hasApt = onPath('apt-get') || existsSync('/usr/bin/apt-get');
  if (checkOnly || !isRoot || !hasApt) {
    process.stderr.write(
      `weft tests need: ${what}.\n` +
        (hasApt ? `Install them with:\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs.join(' ')}\n` : `Install the packages ${pkgs.join(', ')} with your system's package manager.\n`) +
        (isRoot || checkOnly ? '' : '(npm test installs them itself when run as root.)\n'),
    );
    return 1;
  }
  process.stderr.write(`npm test: installing ${pkgs.join(' ')} with apt-get (missing: ${what})\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args) => spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
  let r = run(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
  if (r.status !== 0) {
    // A fresh machine has no package lists yet.
    if (run(['update', '-qq']).status !== 0) {
      process.stderr.write('apt-get update failed\n');
      return 1;
    }
    r = run(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
  }
  if (r.status !== 0) {
    process.stderr.write(`apt-get install ${pkgs.join(' ')} failed\n`);
    return 1;
  }
  for (const d of DAEMONS) {
    try {
      execFileSync('systemctl', ['stop', d], { stdio: 'ignore' });
    } catch {
      /* no systemd, or not running */
    }
  }
  const still = missingTools();
  if (still.length) {
    process.stderr.write(`still missing after apt-get: ${still.map(([c]) => c).join(', ')}\n`);
    return 1;
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) process.exit(ensureTools({ checkOnly: process.argv.includes('--check') }));

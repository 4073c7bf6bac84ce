// The `weft` command itself: usage, version, exit codes and one-line errors.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { weft } from './helpers/mesh.js';

async function run(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = weft(t, args);
  const { code } = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

t.test('usage lists every command; help exits 0, no command exits 2', async (t) => {
  const help = await run(['--help']);
  t.equal(help.code, 0);
  for (const c of ['up', 'control', 'sidecar', 'init', 'inject', 'install', 'certs', 'check', 'get', 'describe', 'stat', 'conformance', 'version']) {
    t.match(help.out, new RegExp(`^  ${c} `, 'm'), c);
  }
  t.equal((await run([])).code, 2);
});

t.test('version', async (t) => {
  const v = await run(['version']);
  t.equal(v.code, 0);
  t.match(v.out, /^weft \d+\.\d+\.\d+ \(node /);
});

t.test('an unknown command or flag is one clear line and exit 2', async (t) => {
  const u = await run(['frobnicate']);
  t.equal(u.code, 2);
  t.match(u.err, /^weft: unknown command "frobnicate"/);
  const f = await run(['up', '--no-such-flag', 'x']);
  t.equal(f.code, 2);
  t.match(f.err, /^weft up: Unknown option '--no-such-flag'/);
  t.equal(f.err.trim().split('\n').length, 1);
});

t.test('weft up refuses a missing directory and a directory without valid Workloads', async (t) => {
  const missing = await run(['up', '/nonexistent/weft-dir']);
  t.equal(missing.code, 2);
  t.match(missing.err, /is not a directory/);
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'w.yaml'), 'apiVersion: local.weft.io/v1alpha1\nkind: Workload\nmetadata: {name: app}\nspec: {command: []}\n');
  const bad = await run(['up', dir, '--state-dir', join(dir, 'state')]);
  t.equal(bad.code, 1);
  t.match(bad.err, /w\.yaml: Workload default\/app: spec\.command: must be a non-empty list of strings/);
});

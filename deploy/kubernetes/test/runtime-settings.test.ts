// The sidecar's runtime is the same wherever it is launched: the image's Node
// is the LTS the tests also run on, and its V8/allocator settings are the ones
// api/runtime.ts gives the injected container and `weft up`.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SIDECAR_ENV, SIDECAR_NODE_OPTIONS, sidecarNodeOptions } from '../../../api/index.js';
// @ts-expect-error: a plain .mjs script without types
import { LTS_MAJOR } from '../../../scripts/lts-node.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

t.test('the image builds and runs on the LTS Node the tests use', async (t) => {
  const froms = [...dockerfile.matchAll(/^FROM node:(\d+)-slim/gm)].map((m) => Number(m[1]));
  t.ok(froms.length >= 2, 'build and runtime stages');
  t.same([...new Set(froms)], [LTS_MAJOR], `node:${LTS_MAJOR}-slim in every stage`);
});

t.test('the image sets the sidecar V8 and malloc bounds of api/runtime.ts', async (t) => {
  // ENV K="a b" K2=v: the quotes are Dockerfile syntax, not part of the value.
  const env = [...dockerfile.matchAll(/^ENV (.+)$/gm)].map((m) => m[1]!).join(' ').replace(/"/g, '');
  t.match(env, `NODE_OPTIONS=${SIDECAR_NODE_OPTIONS}`);
  for (const [k, v] of Object.entries(SIDECAR_ENV)) t.match(env, `${k}=${v}`);
});

t.test("an operator's own NODE_OPTIONS are kept, after ours so theirs win", async (t) => {
  t.equal(sidecarNodeOptions(undefined), SIDECAR_NODE_OPTIONS);
  t.equal(sidecarNodeOptions('--max-semi-space-size=8'), `${SIDECAR_NODE_OPTIONS} --max-semi-space-size=8`);
});

t.test('the injected sidecar container gets the same bounds', async (t) => {
  const { buildPatch } = await import('../../../injector/index.js');
  const { deploymentPod } = await import('../../../injector/test/fixtures/reviews.js');
  const pod = deploymentPod();
  const r = buildPatch(pod, { 'weft.io/inject': 'enabled' });
  const text = JSON.stringify(r);
  t.match(text, JSON.stringify({ name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS }));
  for (const [name, value] of Object.entries(SIDECAR_ENV)) t.match(text, JSON.stringify({ name, value }));
});

t.test('the `weft` the injected containers and the Deployments run is on the image\'s PATH', async (t) => {
  const { buildPatch } = await import('../../../injector/index.js');
  const { deploymentPod } = await import('../../../injector/test/fixtures/reviews.js');
  const patch = JSON.stringify(buildPatch(deploymentPod(), { 'weft.io/inject': 'enabled' }));
  const manifest = readFileSync(join(root, 'deploy', 'kubernetes', 'weft.yaml'), 'utf8');
  t.ok((patch.match(/"command":\["weft"\]/g) ?? []).length >= 2, 'init and sidecar containers run weft');
  t.ok((manifest.match(/command:\n\s+- weft\n/g) ?? []).length >= 2, 'control and injector run weft');
  const entry = dockerfile.match(/^ENTRYPOINT \["node", "([^"]+)"\]/m)?.[1];
  t.ok(entry, 'ENTRYPOINT runs node on weft.js');
  t.match(dockerfile, new RegExp(`^RUN chmod 755 ${entry!.replace('/opt/weft/', '')} && ln -s ${entry} /usr/local/bin/weft$`, 'm'));
  const bin = readFileSync(join(root, 'cli', 'weft.ts'), 'utf8');
  t.match(bin, /^#!\/usr\/bin\/env node\n/, 'weft.js starts node itself');
});

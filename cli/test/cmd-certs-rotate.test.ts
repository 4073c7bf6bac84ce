// `weft certs rotate … --dir DIR` and `weft certs manifests --dir DIR`, run
// as the CLI (dist/): exit codes, refusals naming the file or field, and the
// ConfigMap and Secret that carry each step to a cluster.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { splitPemBundle } from '../../certs/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const weft = (...args: string[]) => spawnSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), ...args], { encoding: 'utf8', timeout: 60_000 });

t.test('rotate --dir: the three steps, their refusals, and the manifests to apply', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'weft-rot-cli-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const dir = join(home, 'certs');
  t.equal(weft('certs', '--out', dir).status, 0);
  const file = (f: string) => readFileSync(join(dir, f), 'utf8');

  const early = weft('certs', 'rotate', 'finish', '--dir', dir);
  t.equal(early.status, 0, 'finish with one anchor and its issuer: nothing to drop');
  t.match(early.stdout, /nothing \(already done\)/);

  const a = weft('certs', 'rotate', 'anchor', '--dir', dir);
  t.equal(a.status, 0, a.stderr);
  t.match(a.stdout, /weft certs manifests --dir .* \| kubectl apply -f -/);
  t.match(a.stdout, /→ run `weft certs rotate issuer --dir /);
  t.equal(splitPemBundle(file('trust-bundle.pem')).length, 2);

  const refused = weft('certs', 'rotate', 'finish', '--dir', dir);
  t.equal(refused.status, 1, 'finish before the issuer step is refused');
  t.match(refused.stderr, /issuer: not signed by the newest anchor/);
  t.equal(splitPemBundle(file('trust-bundle.pem')).length, 2, 'nothing written');

  const i = weft('certs', 'rotate', 'issuer', '--dir', dir);
  t.equal(i.status, 0, i.stderr);
  t.match(i.stdout, /→ once every sidecar has renewed its leaf .*`weft certs rotate finish --dir /);

  const m = weft('certs', 'manifests', '--dir', dir);
  t.equal(m.status, 0, m.stderr);
  const objs = parseAllDocuments(m.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace: string }; data?: Record<string, string>; stringData?: Record<string, string> });
  t.same(objs.map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`), ['ConfigMap weft-system/weft-trust-anchor', 'Secret weft-system/weft-issuer']);
  t.equal(objs[0]!.data!['ca-bundle.pem'], file('trust-bundle.pem'));
  t.equal(objs[1]!.stringData!['issuer.pem'], file('issuer.pem'));
  t.equal(objs[1]!.stringData!['issuer.key'], file('issuer.key'));

  const f = weft('certs', 'rotate', 'finish', '--dir', dir);
  t.equal(f.status, 0, f.stderr);
  t.same(splitPemBundle(file('trust-bundle.pem')), splitPemBundle(file('anchor.pem')));

  const c = weft('check', '--certs', dir);
  t.match(c.stdout, /√ rotation: no rotation in progress/);

  unlinkSync(join(dir, 'anchor.key'));
  const nokey = weft('certs', 'rotate', 'issuer', '--dir', dir);
  t.equal(nokey.status, 1);
  t.match(nokey.stderr, /anchor key: missing .*anchor\.key/);

  const usage = [
    [['certs', 'rotate', 'sideways', '--dir', dir], /name a step: anchor, issuer, finish/],
    [['certs', 'rotate', 'anchor'], /--state-dir STATE or --dir DIR is required/],
    [['certs', 'rotate', 'anchor', '--dir', dir, '--state-dir', dir], /give one, not both/],
    [['certs', 'rotate', 'anchor', '--dir', join(home, 'none')], /anchor\.pem: missing/],
  ] as const;
  for (const [args, want] of usage) {
    const r = weft(...args);
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, want, args.join(' '));
  }
});

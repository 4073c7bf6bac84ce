// `weft get` and `weft check` show every file and resource that failed to
// load, whatever its kind (unknown kinds, files that do not parse, kinds no
// `weft get` lists), with the message. The built CLI on a real directory.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cli = join(process.cwd(), 'dist', 'cli', 'weft.js');

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 30_000, env: { ...process.env, KUBECONFIG: '/nonexistent', HOME: '/nonexistent' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const GOOD = `apiVersion: v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 80 }] }
`;

t.test('weft get and weft check list every failed file and resource, whatever its kind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-get-err-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'good.yaml'), GOOD);
  writeFileSync(join(dir, 'unknown-kind.yaml'), 'apiVersion: example.com/v1\nkind: Gizmo\nmetadata: { name: g }\n');
  writeFileSync(join(dir, 'bomb.yaml'), 'a: &a [x, x]\nb: &b [*a, *a]\n' + 'c: [' + Array(120).fill('*b').join(', ') + ']\n');
  writeFileSync(join(dir, 'misspelt.yaml'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - backendRef: [{ name: echo, port: 80 }]
`);
  writeFileSync(join(dir, 'workload.yaml'), 'apiVersion: local.weft.io/v1alpha1\nkind: Workload\nmetadata: { name: w }\nspec: { command: [x], replica: 2 }\n');

  for (const kind of ['routes', 'services', 'policies']) {
    const r = await weft(['get', kind, '--config-dir', dir]);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /Other files and resources that failed to load/, `get ${kind}: heading`);
    t.match(r.stdout, /unknown-kind\.yaml: Gizmo default\/g: kind: Unsupported value: "Gizmo"/, `get ${kind}: unknown kind`);
    t.match(r.stdout, /bomb\.yaml: document 1: YAML: more than 100 aliases/, `get ${kind}: alias bomb`);
    t.match(r.stdout, /workload\.yaml: Workload default\/w: spec\.replica: unknown field "spec\.replica"/, `get ${kind}: Workload`);
  }
  const routes = await weft(['get', 'routes', '--config-dir', dir]);
  t.match(routes.stdout, /Errors \(invalid input[^\n]*\n {2}\S*misspelt\.yaml: HTTPRoute default\/web: spec\.rules\[0\]\.backendRef: unknown field "spec\.rules\[0\]\.backendRef"/);

  const check = await weft(['check', '--config-dir', dir]);
  t.equal(check.code, 1, 'weft check fails on load errors');
  t.match(check.stdout, new RegExp(`config \\(${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)`));
  for (const m of [/× config error: \S*bomb\.yaml: document 1: YAML: more than 100 aliases/, /× config error: \S*unknown-kind\.yaml: Gizmo default\/g: kind: Unsupported value/, /× config error: \S*misspelt\.yaml: HTTPRoute default\/web: spec\.rules\[0\]\.backendRef: unknown field/]) {
    t.match(check.stdout, m);
  }

  const clean = mkdtempSync(join(tmpdir(), 'weft-get-ok-'));
  t.teardown(() => rmSync(clean, { recursive: true, force: true }));
  writeFileSync(join(clean, 'good.yaml'), GOOD);
  const ok = await weft(['check', '--config-dir', clean]);
  t.match(ok.stdout, /√ config loaded: 1 resource\(s\), no load errors/);
});

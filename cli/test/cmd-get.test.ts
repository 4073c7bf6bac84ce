// `weft get` and `weft describe` as a user runs them: the built CLI, a real
// config directory, and a real control's admin /resources.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl } from '../../control/index.js';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const cli = join(process.cwd(), 'dist', 'cli', 'weft.js');

function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const CONFIG = `
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: mesh }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-v1, namespace: mesh }
spec:
  selector: { app: echo-v1 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: mesh, labels: { team: web } }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
  - matches: [{ path: { type: PathPrefix, value: /v1 } }]
    backendRefs: [{ name: echo-v1, port: 80 }, { name: ghost, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken, namespace: mesh }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo }]
  rules:
  - backendRefs: [{ name: echo-v1 }]
`;

t.test('weft get / describe read a config directory offline', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-get-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'mesh.yaml'), CONFIG);

  const routes = await weft(['get', 'routes', '-n', 'mesh', '--config-dir', dir]);
  t.equal(routes.code, 0, routes.stderr);
  t.match(routes.stdout, /^NAME\s+KIND\s+PARENTS\s+RULES\s+ACCEPTED\s+RESOLVED\s+AGE\nsplit\s+HTTPRoute\s+echo:80\s+1\s+True\s+False\(BackendNotFound\)/);

  t.match(routes.stdout, /\nErrors \(invalid input; a resource that was valid before keeps its last good version\):\n {2}\S*mesh\.yaml: HTTPRoute mesh\/broken: spec\.rules\[0\]\.backendRefs\[0\]: Must have port for Service reference\n$/);

  const none = await weft(['get', 'routes', '--config-dir', dir]);
  t.equal(none.stdout, 'No routes found in namespace default.\n');

  const sel = await weft(['get', 'routes', '-A', '-l', 'team!=web', '--config-dir', dir]);
  t.equal(sel.stdout, 'No routes found.\n');

  const json = await weft(['get', 'routes', '-A', '-o', 'json', '--config-dir', dir]);
  const list = JSON.parse(json.stdout) as { items: Array<{ metadata: { name: string }; status: { parents: Array<{ conditions: Array<{ type: string; reason: string }> }> } }> };
  t.same(list.items.map((i) => i.metadata.name), ['split']);
  t.equal(list.items[0]!.status.parents[0]!.conditions.find((c) => c.type === 'ResolvedRefs')!.reason, 'BackendNotFound');

  const yaml = await weft(['get', 'services', '-n', 'mesh', '-o', 'yaml', '--config-dir', dir]);
  t.match(yaml.stdout, /kind: List\nitems:\n {2}- apiVersion: v1\n {4}kind: Service/);

  const svc = await weft(['describe', 'service', 'echo', '-n', 'mesh', '--config-dir', dir]);
  t.equal(svc.code, 0, svc.stderr);
  t.match(svc.stdout, /1\. PathPrefix \/v1 → HTTPRoute mesh\/split rules\[0\]/);
  t.match(svc.stdout, /otherwise: 404/);

  const broken = await weft(['describe', 'route', 'mesh/broken', '--config-dir', dir]);
  t.equal(broken.code, 0);
  t.match(broken.stdout, /route mesh\/broken was not loaded: it is invalid\nErrors:\n {2}\S*mesh\.yaml: HTTPRoute mesh\/broken: spec\.rules\[0\]\.backendRefs\[0\]: Must have port for Service reference/);

  const missing = await weft(['describe', 'service/nope', '--config-dir', dir]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /service default\/nope not found/);

  const usage = await weft(['get', 'things']);
  t.equal(usage.code, 2);
  t.match(usage.stderr, /unknown kind "things"/);
  const badSel = await weft(['get', 'routes', '-l', 'a in (', '--config-dir', dir]);
  t.equal(badSel.code, 2);
  t.match(badSel.stderr, /unbalanced/);
});

t.test('weft get / describe ask a running control', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-get-'));
  const state = mkdtempSync(join(tmpdir(), 'weft-get-state-'));
  writeFileSync(join(dir, 'mesh.yaml'), CONFIG);
  const control = await startControl({ configDir: dir, stateDir: state, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {} });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });
  // Wait until control has compiled once (statuses present).
  const deadline = Date.now() + 10_000;
  for (;;) {
    const body = (await (await fetch(`http://${control.adminAddress}/resources`)).json()) as { statuses: unknown[] };
    if (body.statuses.length > 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const routes = await weft(['get', 'routes', '-A', '--control-admin', control.adminAddress]);
  t.equal(routes.code, 0, routes.stderr);
  t.match(routes.stdout, /mesh\s+split\s+HTTPRoute\s+echo:80\s+1\s+True\s+False\(BackendNotFound\)/);
  const d = await weft(['describe', 'route', 'split', '-n', 'mesh', '--control-admin', `http://${control.adminAddress}`]);
  t.equal(d.code, 0, d.stderr);
  t.match(d.stdout, /ResolvedRefs\s+False\s+BackendNotFound: rules\[0\]\.backendRefs\[1\]: Service mesh\/ghost not found/);

  const down = await weft(['get', 'routes', '--control-admin', `${ip}:1`]);
  t.equal(down.code, 1);
  t.match(down.stderr, /weft get: cannot read control's resources/);
});

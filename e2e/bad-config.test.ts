// Issue 16: each bad file of item 1 dropped into a live mesh's config
// directory under traffic: control stays up, routing is unchanged, and the
// error is shown by `weft get`. Then a misspelt field in the live route file:
// rejected with its path, the route's last good version keeps serving.
import t from 'tap';
import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BAD_FILES } from '../control/test/helpers/bad-files.js';
import { WEFT_JS, configDir, docs, echoWorkload, httpRequest, meshGet, service, startMesh, waitFor, writeConfig, type EchoResponse } from './helpers/mesh.js';

const NS = 'baddemo';
const route = (backend: string, field = 'backendRefs') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - ${field}: [{ name: ${backend}, port: 80 }]
`;
const dir = configDir(t, {
  'services.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    service({ name: 'web-a', namespace: NS, selector: { app: 'web', version: 'a' } }),
    service({ name: 'web-b', namespace: NS, selector: { app: 'web', version: 'b' } }),
  ),
  'workloads.yaml': docs(
    echoWorkload({ name: 'client', namespace: NS, calls: ['web'] }),
    echoWorkload({ name: 'web-a', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'a' } }),
    echoWorkload({ name: 'web-b', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'b' } }),
  ),
  'route.yaml': route('web-b'),
});
const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const who = async (): Promise<string> => {
  const r = await meshGet(client.podIP, `http://web.${NS}/`, { timeoutMs: 3000 });
  return r.status === 200 ? r.json<EchoResponse>().workload : `status ${r.status}`;
};
await waitFor('the route to send everything to web-b', async () => (await who()) === 'web-b', { timeoutMs: 30_000 });

function weftGet(kind: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT_JS, 'get', kind, '-A', '--control-admin', mesh.controlAdmin], { timeout: 20_000 }, (_e, stdout) => resolve(stdout));
  });
}

// Traffic all along: every answer must come from web-b.
const seen = new Map<string, number>();
let running = true;
const traffic = (async () => {
  while (running) {
    const w = await who().catch((e: Error) => `error ${e.message}`);
    seen.set(w, (seen.get(w) ?? 0) + 1);
  }
})();

t.test('each bad file: control stays up, routing is unchanged, weft get shows the error', async (t) => {
  for (const [i, b] of BAD_FILES.entries()) {
    const name = `bad-${i}.yaml`;
    writeConfig(dir, name, b.bytes() as unknown as string);
    const shown = await waitFor(`weft get to show ${b.name}`, async () => {
      const out = await weftGet('routes');
      return out.includes(name) && b.message.test(out) ? out : undefined;
    }, { timeoutMs: 20_000 }).catch((e: Error) => e.message);
    t.match(shown, b.message, `${b.name}: shown by weft get`);
    t.equal((await httpRequest(`${mesh.controlAdmin}/ready`)).status, 200, `${b.name}: control is up`);
    t.equal(await who(), 'web-b', `${b.name}: routing unchanged`);
    rmSync(join(dir, name));
  }
  t.equal(mesh.proc.child.exitCode, null, 'weft up (and control in it) still running');
});

t.test('a misspelt field in the live route: rejected with its path, the last good route keeps serving', async (t) => {
  writeConfig(dir, 'route.yaml', route('web-a', 'backendRef'));
  const out = await waitFor('weft get to show the unknown field', async () => {
    const o = await weftGet('routes');
    return /spec\.rules\[0\]\.backendRef: unknown field "spec\.rules\[0\]\.backendRef"/.test(o) ? o : undefined;
  }, { timeoutMs: 20_000 });
  t.match(out, /route\.yaml: HTTPRoute baddemo\/web: spec\.rules\[0\]\.backendRef: unknown field "spec\.rules\[0\]\.backendRef"/);
  t.equal(await who(), 'web-b', 'the last good version keeps serving');
  running = false;
  await traffic;
  t.same([...seen.keys()], ['web-b'], `every request under traffic went to web-b (${[...seen.values()].reduce((a, b) => a + b, 0)} requests)`);
});

// `weft tap` end to end against `weft up`: the command finds the sidecars in
// control's registry (the same --control-admin as `weft stat`), and streams
// one line per live request through real sidecars — JSON with method, path,
// status, latencyMs, source and destination, or a text line — until --max.
import t, { type Test } from 'tap';
import { configDir, docs, echoWorkload, meshGet, service, sleep, startMesh, waitFor, weft } from './helpers/mesh.js';

const NS = 'tapdemo';
const dir = configDir(t, {
  'mesh.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    service({ name: 'other', namespace: NS, selector: { app: 'other' } }),
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['web', 'other'] }),
    echoWorkload({ name: 'web', namespace: NS, serviceAccount: 'web', replicas: 2 }),
    echoWorkload({ name: 'other', namespace: NS, serviceAccount: 'other' }),
  ),
});
const mesh = await startMesh(t, dir, { args: ['--dashboard', 'off'] });
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const controlAdmin = mesh.controlAdmin.replace('http://', '');

/** Runs `weft tap ARGS`, and once it says it is tapping, sends requests (to `other` too) until it exits. */
async function tapWhileSending(t: Test, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = weft(t, ['tap', '-n', NS, ...args, '--control-admin', controlAdmin]);
  await waitFor('weft tap to connect to the sidecars', () => /tapping/.test(p.stderr()), { timeoutMs: 15_000 });
  let done = false;
  void p.exited.then(() => (done = true));
  for (let i = 0; !done && i < 200; i++) {
    await meshGet(client.podIP, `http://other.${NS}/not-this-${i}`).catch(() => undefined);
    await meshGet(client.podIP, `http://web.${NS}/tap-${i}`).catch(() => undefined);
    await sleep(20);
  }
  const { code } = await p.exited;
  return { code, out: p.stdout(), err: p.stderr() };
}

t.test('service/NAME -o json: one JSON object a line per request to the Service, until --max', async (t) => {
  const r = await tapWhileSending(t, ['service/web', '--max', '4', '-o', 'json']);
  t.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 4);
  for (const l of lines) {
    t.equal(l.method, 'GET');
    t.match(l.path, /^\/tap-\d+$/);
    t.equal(l.status, 200);
    t.type(l.latencyMs, 'number');
    t.ok((l.latencyMs as number) > 0);
    t.equal(l.source, `spiffe://cluster.local/ns/${NS}/sa/client`);
    t.equal(l.destination, `${NS}/web`);
    t.equal(l.service, `${NS}/web`);
    t.equal(l.direction, 'outbound');
    t.match(l.endpoint, new RegExp(`^(${mesh.pods.filter((p) => p.workload === 'web').map((p) => p.podIP.replace(/\./g, '\\.')).join('|')}):8080$`));
    t.ok(Date.parse(l.time as string) > 0);
  }
});

t.test('workload/NAME: text lines for the requests the workload served, from its own sidecars', async (t) => {
  const r = await tapWhileSending(t, ['workload/web', '--max', '3']);
  t.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  t.equal(lines.length, 3);
  for (const l of lines) {
    t.match(l, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z in  spiffe://cluster\\.local/ns/${NS}/sa/client -> ${NS}/web GET web\\.${NS}/tap-\\d+ status=200 \\d+\\.\\dms$`));
  }
  t.match(r.err, /tapping workload\/tapdemo\/web through 2 sidecars/);
});

t.test('bad targets are clear errors', async (t) => {
  const bad = weft(t, ['tap', 'pods/web', '--control-admin', controlAdmin]);
  t.equal((await bad.exited).code, 2);
  t.match(bad.stderr(), /"pods\/web" is not service\/NAME or workload\/NAME/);
  const none = weft(t, ['tap', '-n', NS, 'workload/nobody', '--control-admin', controlAdmin]);
  t.equal((await none.exited).code, 1);
  t.match(none.stderr(), /no sidecar of workload tapdemo\/nobody is registered/);
});

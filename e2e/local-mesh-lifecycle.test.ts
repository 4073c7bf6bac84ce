// `weft up` as a process supervisor: a crashing app is restarted with
// backoff, and SIGTERM stops every process it started — apps first, then
// their sidecars — and exits 0.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDir, docs, echoWorkload, httpRequest, startMesh, waitFor, writeConfig, type EchoResponse, type PodInfo } from './helpers/mesh.js';

const crashy = `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata: { name: crashy, namespace: life }
spec:
  command: [node, -e, "console.log('bye for now'); process.exit(3)"]
`;
const dir = configDir(t, {
  'workloads.yaml': docs(echoWorkload({ name: 'steady', namespace: 'life' }), crashy),
  // An app that starts a process of its own: stopping the app stops it too.
  'family.yaml': `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata: { name: family, namespace: life }
spec:
  command: [sh, -c, "sleep 300 & echo $! > grandchild.pid; wait"]
`,
});
const readPods = (): PodInfo[] => JSON.parse(readFileSync(join(mesh.stateDir, 'local-pods.json'), 'utf8')).pods as PodInfo[];
const logDir = mkdtempSync(join(tmpdir(), 'weft-logs-'));
t.teardown(() => rmSync(logDir, { recursive: true, force: true }));
const mesh = await startMesh(t, dir, { args: ['--log-dir', logDir] });
t.teardown(() => mesh.stop());

const alive = (pid: number | null): boolean => {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

t.test('a crashing app is restarted with growing backoff, and weft up says why', async (t) => {
  await waitFor('two restarts', () => /life\/crashy-0 exited \(code 3\): bye for now; restart #2 in 500 ms/.test(mesh.proc.stderr()), {
    timeoutMs: 20_000,
  });
  t.match(mesh.proc.stderr(), /life\/crashy-0 exited \(code 3\): bye for now; restart #1 in 250 ms/);
  t.notMatch(mesh.proc.stderr(), /steady-0 exited/, 'the healthy pod was left alone');
});

t.test('Workload edits scale, restart and remove pods while weft up runs', async (t) => {
  const before = readPods();
  const steady0 = before.find((p) => p.pod === 'steady-0')!;
  // Two replicas, crashy gone.
  writeConfig(dir, 'workloads.yaml', echoWorkload({ name: 'steady', namespace: 'life', replicas: 2 }));
  const scaled = await waitFor(
    'steady-1 to serve and crashy to go',
    async () => {
      const pods = readPods();
      const s1 = pods.find((p) => p.pod === 'steady-1');
      if (!s1 || pods.some((p) => p.workload === 'crashy')) return undefined;
      const r = await httpRequest(`http://${s1.podIP}:8080/`, { timeoutMs: 500 });
      return r.json<EchoResponse>().pod === 'steady-1' ? pods : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  const s0 = scaled.find((p) => p.pod === 'steady-0')!;
  t.equal(s0.appPid, steady0.appPid, 'scaling up leaves replica 0 running');
  t.equal(s0.podIP, steady0.podIP);
  t.equal(scaled.find((p) => p.pod === 'steady-1')!.podIP, steady0.podIP.replace(/\.1$/, '.2'), 'the new replica gets the next address');
  t.notOk(alive(before.find((p) => p.workload === 'crashy')!.sidecarPid), 'the removed workload\'s sidecar is stopped');

  // An invalid Workload changes nothing.
  writeConfig(dir, 'workloads.yaml', echoWorkload({ name: 'steady', namespace: 'life', replicas: 2 }).replace('replicas: 2', 'replicas: -4'));
  await waitFor('the error to be reported', () => /spec\.replicas: must be an integer from 0 to 250/.test(mesh.proc.stderr()), { timeoutMs: 10_000 });
  t.equal(readPods().filter((p) => p.workload === 'steady').length, 2, 'both replicas still run');

  // A changed spec restarts the pods on the same addresses.
  writeConfig(dir, 'workloads.yaml', echoWorkload({ name: 'steady', namespace: 'life', replicas: 1, ports: [8080, 9090] }));
  const restarted = await waitFor(
    'steady-0 to restart with its new port',
    async () => {
      const pods = readPods();
      const s0 = pods.find((p) => p.workload === 'steady');
      if (pods.filter((p) => p.workload === 'steady').length !== 1 || !s0) return undefined;
      const r = await httpRequest(`http://${s0.podIP}:9090/`, { timeoutMs: 500 });
      return r.json<EchoResponse>().port === 9090 ? [s0] : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
  t.equal(restarted[0]!.podIP, steady0.podIP, 'same address after the restart');
  t.not(restarted[0]!.appPid, steady0.appPid, 'a new app process');
});

t.test('SIGTERM stops apps, then sidecars, and every process is gone', async (t) => {
  const pods = readPods();
  const steady = pods.find((p) => p.pod === 'steady-0')!;
  t.ok(alive(steady.appPid) && alive(steady.sidecarPid), 'steady app and sidecar run');
  mesh.proc.child.kill('SIGTERM');
  const { code } = await mesh.proc.exited;
  t.equal(code, 0, 'weft up exits 0');
  t.match(mesh.proc.stderr(), /SIGTERM: stopping apps, then sidecars, then control/);
  const grandchild = Number(readFileSync(join(dir, 'grandchild.pid'), 'utf8'));
  t.ok(grandchild > 0);
  await waitFor('the grandchild to be gone', () => !alive(grandchild), { timeoutMs: 3000 }).catch(() => undefined);
  t.notOk(alive(grandchild), 'a process the app started is stopped with it');
  for (const p of pods) {
    t.notOk(alive(p.appPid), `${p.pod} app stopped`);
    t.notOk(alive(p.sidecarPid), `${p.pod} sidecar stopped`);
  }
  // The log files record when each process exited: the app before its sidecar.
  const exitAt = (file: string) => {
    const m = [...readFileSync(join(logDir, file), 'utf8').matchAll(/^--- (\S+) exit /gm)].pop();
    return m ? Date.parse(m[1]!) : NaN;
  };
  const appExit = exitAt('life.steady-0.app.log');
  const sidecarExit = exitAt('life.steady-0.sidecar.log');
  t.ok(appExit <= sidecarExit, `app exited at ${appExit}, its sidecar at ${sidecarExit}`);
});

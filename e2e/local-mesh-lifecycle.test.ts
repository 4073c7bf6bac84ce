// `weft up` as a process supervisor: a crashing app is restarted with
// backoff, and SIGTERM stops every process it started — apps first, then
// their sidecars — and exits 0.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDir, docs, echoWorkload, startMesh, waitFor, type PodInfo } from './helpers/mesh.js';

const dir = configDir(t, {
  'workloads.yaml': docs(
    echoWorkload({ name: 'steady', namespace: 'life' }),
    `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata: { name: crashy, namespace: life }
spec:
  command: [node, -e, "console.log('bye for now'); process.exit(3)"]
`,
  ),
});
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

t.test('SIGTERM stops apps, then sidecars, and every process is gone', async (t) => {
  const pods = JSON.parse(readFileSync(join(mesh.stateDir, 'local-pods.json'), 'utf8')).pods as PodInfo[];
  const steady = pods.find((p) => p.pod === 'steady-0')!;
  t.ok(alive(steady.appPid) && alive(steady.sidecarPid), 'steady app and sidecar run');
  mesh.proc.child.kill('SIGTERM');
  const { code } = await mesh.proc.exited;
  t.equal(code, 0, 'weft up exits 0');
  t.match(mesh.proc.stderr(), /SIGTERM: stopping apps, then sidecars, then control/);
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

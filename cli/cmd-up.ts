// `weft up DIR`: a whole mesh on one machine. Control runs in this process;
// every Workload replica in DIR gets its own loopback pod IP, its sidecar as
// a separate `weft sidecar` process, and then its app. Every two seconds the
// sidecars' /metrics become a table per service and backend.
//
// Order matters the way it does for a native sidecar in Kubernetes: a pod's
// app starts only once its sidecar is ready, and on shutdown the apps stop
// first and the sidecars after them, so an app never loses its proxy while
// it still runs. Each step lives in its own cli/up-*.ts; this file is the order.
import { mkdirSync } from 'node:fs';
import { bannerText, readyStatus } from './up-banner.js';
import { upConsole } from './up-console.js';
import { startUpControl } from './up-control.js';
import { startUpDashboard } from './up-dashboard.js';
import { parseUpFlags, UP_HELP } from './up-flags.js';
import { Pods } from './up-pods.js';
import { WorkloadReconciler } from './up-reconcile.js';
import { catchStopSignals } from './up-signals.js';
import { startTable } from './up-table.js';
import { loadWorkloads, planPods } from './up-workloads.js';

export async function run(argv: string[]): Promise<number> {
  const o = parseUpFlags(argv);
  if (o === 'help') {
    process.stdout.write(UP_HELP);
    return 0;
  }

  const { workloads, errors } = loadWorkloads(o.dir);
  for (const e of errors) process.stderr.write(`weft up: ${e}\n`);
  if (errors.length > 0 && workloads.length === 0) {
    process.stderr.write('weft up: no valid Workload; fix the errors above\n');
    return 1;
  }
  const planned = planPods(workloads, o.prefix);
  mkdirSync(o.stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(o.logDir, { recursive: true });

  let stopping = false;
  let status = 'starting';
  const isStopping = () => stopping;
  const con = upConsole(o.quiet, isStopping);
  const control = await startUpControl(o, con.note);
  const pods = new Pods(o, con.say, isStopping);
  const dashboard = await startUpDashboard(o, con.say);
  const banner = () => bannerText(o, pods.runs.length ? pods.runs.map((r) => r.pod) : planned, dashboard?.url ?? '');
  process.stdout.write(`${banner()}\n`);

  for (const pod of planned) pods.add(pod);
  process.on('exit', pods.killAll);
  const started = Date.now();
  const reconciler = new WorkloadReconciler(
    {
      dir: o.dir,
      prefix: o.prefix,
      pods,
      say: con.say,
      isStopping,
      afterChange: () => {
        if (!con.redraw && !stopping) process.stdout.write(`${banner()}\n`);
      },
    },
    workloads,
    errors,
  );
  const signals = catchStopSignals(pods.killAll, con.say);
  const allUp = pods.bringUpAll().then(() => {
    if (stopping) return;
    status = readyStatus(pods.runs, Date.now() - started);
    process.stdout.write(`weft up: ${status}\n`);
  });
  reconciler.watch();
  const stopTable = o.quiet
    ? undefined
    : startTable({
        intervalS: o.intervalS,
        redraw: con.redraw,
        podIps: () => pods.runs.map((r) => r.pod.ip),
        isStopping,
        banner,
        status: () => status,
        errors: () => [...reconciler.errors, ...control.configErrors()],
        recent: con.recent,
      });

  const sig = await signals.signal;
  stopping = true;
  await reconciler.stop();
  stopTable?.();
  con.say(`${sig}: stopping apps, then sidecars${control.embedded ? ', then control' : ''} (again to kill at once)`);
  await pods.stopAll();
  await allUp.catch(() => undefined);
  await dashboard?.close();
  await control.close();
  process.off('exit', pods.killAll);
  signals.release();
  con.say('stopped');
  return 0;
}

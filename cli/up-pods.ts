// The running pods of `weft up`, ordered as a native sidecar is in
// Kubernetes: a pod's app starts only once its sidecar is ready, and a
// stopping pod never leaves an app without its proxy.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PORTS } from '../api/index.js';
import { formatHostPort } from './args.js';
import type { Say } from './up-console.js';
import type { UpOptions } from './up-flags.js';
import { appCommand, appEnv, podEnvs, sidecarArgs } from './up-pod-spec.js';
import { httpGet, sleep, tcpAccepts } from './up-probes.js';
import { Supervised } from './up-process.js';
import type { LocalPod } from './up-workloads.js';

export interface PodRun {
  pod: LocalPod;
  sidecar: Supervised;
  app: Supervised;
  sidecarReadyMs?: number;
  /** Stopped by a Workload edit. */
  removed?: boolean;
}

export class Pods {
  readonly runs: PodRun[] = [];
  private readonly envs = podEnvs(process.env);
  // Pure clients (no ports, like a load generator) start their apps once
  // every server accepts, so their first requests do not meet half a mesh.
  private serversUp: () => void = () => undefined;
  private readonly serversReady = new Promise<void>((r) => (this.serversUp = r));

  constructor(
    private readonly o: UpOptions,
    private readonly say: Say,
    private readonly isStopping: () => boolean,
  ) {}

  /** A pod's sidecar and app, not started yet. */
  add(pod: LocalPod): PodRun {
    const w = pod.workload;
    const id = `${w.namespace}.${pod.name}`;
    const app = appCommand(pod);
    const r: PodRun = {
      pod,
      sidecar: new Supervised({
        label: `${w.namespace}/${pod.name} sidecar`,
        command: process.execPath,
        args: sidecarArgs(pod, this.o),
        cwd: this.o.dir,
        env: this.envs.sidecarEnv,
        logFile: join(this.o.logDir, `${id}.sidecar.log`),
        echo: this.o.echoLogs,
        say: this.say,
        restart: true,
        onSpawn: () => this.writePods(),
      }),
      app: new Supervised({
        label: `${w.namespace}/${pod.name}`,
        command: app.command,
        args: app.args,
        cwd: this.o.dir,
        env: appEnv(pod, this.envs.baseEnv),
        logFile: join(this.o.logDir, `${id}.app.log`),
        echo: this.o.echoLogs,
        say: this.say,
        restart: true,
        onSpawn: () => this.writePods(),
      }),
    };
    this.runs.push(r);
    return r;
  }

  /** Servers first; clients' apps wait for every server (their sidecars start at once). */
  bringUpAll(): Promise<unknown> {
    const servers = this.runs.filter((r) => r.pod.workload.ports.length > 0);
    const clients = this.runs.filter((r) => r.pod.workload.ports.length === 0);
    const serversDone = Promise.all(servers.map((r) => this.bringUp(r))).then(() => this.serversUp());
    return Promise.all([serversDone, ...clients.map((r) => this.bringUp(r))]);
  }

  /** A pod added by a Workload edit, started at once. */
  start(pod: LocalPod): Promise<void> {
    const r = this.add(pod);
    this.say(`${pod.workload.namespace}/${pod.name}: starting at ${pod.ip}`);
    return this.bringUp(r);
  }

  /** The sidecar, then — once it is ready — the app; resolves when the app accepts on its ports. */
  private async bringUp(r: PodRun): Promise<void> {
    const t0 = Date.now();
    r.sidecar.start();
    const url = `http://${r.pod.ip}:${PORTS.admin}/ready`;
    let warned = false;
    while (!this.isStopping() && !r.removed) {
      const ok = await httpGet(url, 500).then(
        (x) => x.status === 200,
        () => false,
      );
      if (ok) break;
      if (!warned && Date.now() - t0 > 15_000) {
        warned = true;
        this.say(
          `${r.pod.workload.namespace}/${r.pod.name}: sidecar not ready after 15 s — log: ${join(this.o.logDir, `${r.pod.workload.namespace}.${r.pod.name}.sidecar.log`)}`,
        );
      }
      await sleep(50);
    }
    if (this.isStopping() || r.removed) return;
    r.sidecarReadyMs = Date.now() - t0;
    if (r.pod.workload.ports.length === 0) await this.serversReady;
    if (this.isStopping() || r.removed) return;
    r.app.start();
    for (const port of r.pod.workload.ports) {
      const t1 = Date.now();
      while (!this.isStopping() && !r.removed && !(await tcpAccepts(r.pod.ip, port))) {
        if (Date.now() - t1 > 30_000) {
          this.say(`${r.pod.workload.namespace}/${r.pod.name}: app does not accept on ${r.pod.ip}:${port} after 30 s`);
          break;
        }
        await sleep(100);
      }
    }
  }

  /** One pod removed by a Workload edit or a scale-down. */
  async stop(r: PodRun): Promise<void> {
    r.removed = true;
    if (r.pod.workload.ports.length > 0) {
      // A server: its sidecar drains first (Goodbye: the endpoints leave the
      // other sidecars' configs, in-flight requests are answered by the app,
      // which still runs), then the app stops.
      await r.sidecar.stop(this.o.sidecarStopMs);
      await r.app.stop(5000);
    } else {
      // A pure client: nothing calls it; the app stops first so it never loses its proxy.
      await r.app.stop(5000);
      await r.sidecar.stop(this.o.sidecarStopMs);
    }
    const i = this.runs.indexOf(r);
    if (i >= 0) this.runs.splice(i, 1);
  }

  /** Shutdown: every app, then every sidecar. */
  async stopAll(): Promise<void> {
    await Promise.all(this.runs.map((r) => r.app.stop(5000)));
    await Promise.all(this.runs.map((r) => r.sidecar.stop(this.o.sidecarStopMs)));
  }

  /** Whatever happens to this process, its children must not outlive it. */
  readonly killAll = (): void => {
    for (const r of this.runs) {
      r.app.kill();
      r.sidecar.kill();
    }
  };

  /** STATE/local-pods.json: what runs where (addresses, pids), for whoever looks at the mesh from outside. */
  writePods(): void {
    const body = this.runs.map((r) => ({
      namespace: r.pod.workload.namespace,
      workload: r.pod.workload.name,
      pod: r.pod.name,
      podIP: r.pod.ip,
      serviceAccount: r.pod.workload.serviceAccount,
      labels: r.pod.workload.labels,
      ports: r.pod.workload.ports,
      adminUrl: `http://${r.pod.ip}:${PORTS.admin}`,
      sidecarPid: r.sidecar.pid ?? null,
      appPid: r.app.pid ?? null,
    }));
    try {
      writeFileSync(join(this.o.stateDir, 'local-pods.json'), JSON.stringify({ control: formatHostPort(this.o.controlAddr), pods: body }, null, 2));
    } catch {
      /* state dir removed under us: nothing to record */
    }
  }
}

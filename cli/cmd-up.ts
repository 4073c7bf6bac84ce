// `weft up DIR`: a whole mesh on one machine. Control runs in this process;
// every Workload replica in DIR gets its own loopback pod IP, its sidecar as
// a separate `weft sidecar` process, and then its app. Every two seconds the
// sidecars' /metrics become a table per service and backend.
//
// Order matters the way it does for a native sidecar in Kubernetes: a pod's
// app starts only once its sidecar is ready, and on shutdown the apps stop
// first and the sidecars after them, so an app never loses its proxy while
// it still runs.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, statSync, watch, writeFileSync, type FSWatcher, type WriteStream } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_INBOUND_POLICIES, parseDrainTimeout, PORTS, SIDECAR_ENV, sidecarNodeOptions, type DefaultInboundPolicy } from '../api/index.js';
import {
  bool,
  formatHostPort,
  formatLabels,
  int,
  parseFlags,
  parseHostPort,
  str,
  UsageError,
  type HostPort,
} from './args.js';
import { aggregate, parseExposition, renderStat, type TargetScrape } from './stat-table.js';
import { startDashboard } from './dashboard-server.js';
import {
  assignIndexes,
  isPodIpPrefix,
  loadWorkloads,
  planPods,
  podsOf,
  sameSpec,
  workloadKey,
  yamlFiles,
  type LocalPod,
} from './up-workloads.js';

const HELP = `usage: weft up DIR [flags]

Runs a local mesh from DIR: control (in this process), and for every
Workload (apiVersion local.weft.io/v1alpha1) replica a loopback pod IP, a
sidecar process and the app. Edit the YAML in DIR while it runs: routes
change within a second, Workload edits start, stop, scale or restart pods.

flags:
  --state-dir DIR          control's state: CA, bootstrap token (default DIR/.weft-state)
  --control-listen H:P     control's gRPC address (default <prefix>.0.1:${PORTS.controlGrpc})
  --control-admin H:P      control's admin/metrics address (default <prefix>.0.1:${PORTS.controlAdmin})
  --control H:P            use a control that is already running there instead of starting one
  --pod-ip-prefix 127.N    pods get 127.N.<workload>.<replica> (default 127.0)
  --interval SECONDS       refresh period of the traffic table (default 2)
  --quiet                  no traffic table
  --logs                   copy app and sidecar output to stderr, prefixed by pod
  --log-dir DIR            where each process's output is written (default STATE/logs,
                           or a temp dir when STATE is inside DIR)
  --default-inbound-policy P
                           mesh-wide default inbound policy: all-unauthenticated (default),
                           all-authenticated, deny or audit (see README "Authorization")

  --drain-timeout DURATION how long a stopping pod's sidecar drains (default 5s): a pod
                           removed by an edit or a scale-down drains its sidecar first
                           (endpoints withdrawn, in-flight requests answered), then its app
  --dashboard H:P|off      serve the web dashboard there (default <prefix>.0.1:7070,
                           i.e. http://127.0.0.1:7070/)
  --trace-collector URL    every sidecar exports spans over OTLP/HTTP there (mesh-wide;
                           a Workload's annotation weft.io/trace-collector wins)
  --trace-sampling RATE    share of new traces sampled, 0..1 (default 0.01)
`;

const WEFT_JS = fileURLToPath(new URL('./weft.js', import.meta.url));

type ControlHandle = Awaited<ReturnType<(typeof import('../control/index.js'))['startControl']>>;

// ---- supervised processes ------------------------------------------------------

type Say = (line: string) => void;

interface ProcOptions {
  label: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  echo: boolean;
  say: Say;
  restart: boolean;
  onSpawn?: (pid: number) => void;
}

/**
 * Signals the child's whole process group (it leads one, being detached):
 * like a container's processes, whatever the app spawned stops with it.
 */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

/**
 * A child process restarted with backoff when it dies (250 ms doubling to
 * 10 s; reset once it has run for 10 s), whose output goes to a log file.
 * Children get their own process group, so a Ctrl-C at the terminal reaches
 * only `weft up`, which then stops them in order.
 */
class Supervised {
  child: ChildProcess | undefined;
  private stopping = false;
  private failures = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private log: WriteStream;
  private exited: Promise<void> = Promise.resolve();
  /** The last non-empty line the process printed: the likely reason it died. */
  private lastLine = '';

  constructor(private readonly o: ProcOptions) {
    this.log = createWriteStream(o.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.stopping) return;
    this.startedAt = Date.now();
    const child = spawn(this.o.command, this.o.args, {
      cwd: this.o.cwd,
      env: this.o.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.log.write(`--- ${new Date().toISOString()} start ${this.o.command} ${this.o.args.join(' ')}\n`);
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        const lines = chunk.toString('utf8').split('\n').filter((l) => l.trim() !== '');
        if (lines.length) this.lastLine = lines[lines.length - 1]!.slice(0, 200);
        if (this.o.echo) {
          const text = chunk.toString('utf8').replace(/\n$/, '');
          process.stderr.write(text.split('\n').map((l) => `[${this.o.label}] ${l}\n`).join(''));
        }
      });
    }
    this.exited = new Promise((res) => {
      // 'close', not 'exit': the output is all read by then, so lastLine is the real last line.
      child.once('close', (code, signal) => {
        this.child = undefined;
        this.log.write(`--- ${new Date().toISOString()} exit ${signal ?? code}\n`);
        if (!this.stopping) this.crashed(code, signal);
        res();
      });
    });
    child.once('error', (e) => {
      this.o.say(`${this.o.label}: cannot start ${this.o.command}: ${e.message}`);
    });
    if (child.pid !== undefined) this.o.onSpawn?.(child.pid);
  }

  private crashed(code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.o.restart) return;
    if (Date.now() - this.startedAt > 10_000) this.failures = 0;
    const delay = Math.min(10_000, 250 * 2 ** this.failures);
    this.failures++;
    // A crash loop must not bury everything else: the first few, then every tenth.
    if (this.failures <= 3 || this.failures % 10 === 0) {
      const why = this.lastLine ? `: ${this.lastLine}` : '';
      this.o.say(
        `${this.o.label} exited (${signal ?? `code ${code}`})${why}; restart #${this.failures} in ${delay} ms — log: ${this.o.logFile}`,
      );
    }
    this.timer = setTimeout(() => this.start(), delay);
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      signalGroup(child, 'SIGTERM');
      const t = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    await new Promise<void>((r) => this.log.end(r));
  }

  kill(): void {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.child) signalGroup(this.child, 'SIGKILL');
  }
}

// ---- probes --------------------------------------------------------------------

function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolveP, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolveP({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function tcpAccepts(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect({ host, port });
    s.setTimeout(500);
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
    s.once('timeout', () => {
      s.destroy();
      r(false);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the command ---------------------------------------------------------------

interface PodRun {
  pod: LocalPod;
  sidecar: Supervised;
  app: Supervised;
  sidecarReadyMs?: number;
  /** Stopped by a Workload edit. */
  removed?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    help: { type: 'boolean', short: 'h' },
    'state-dir': { type: 'string' },
    'control-listen': { type: 'string' },
    'control-admin': { type: 'string' },
    control: { type: 'string' },
    'pod-ip-prefix': { type: 'string' },
    interval: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    logs: { type: 'boolean' },
    'log-dir': { type: 'string' },
    'default-inbound-policy': { type: 'string' },

    'drain-timeout': { type: 'string' },
    dashboard: { type: 'string' },
    'trace-collector': { type: 'string' },
    'trace-sampling': { type: 'string' },
  });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError('expects exactly one DIR (see weft up --help)');
  const dir = resolve(p.positionals[0]!);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${p.positionals[0]} is not a directory`);
  const prefix = str(p, 'pod-ip-prefix') ?? '127.0';
  if (!isPodIpPrefix(prefix)) throw new UsageError(`--pod-ip-prefix: "${prefix}" is not 127.N (N 0..255)`);
  const stateDir = resolve(str(p, 'state-dir') ?? join(dir, '.weft-state'));
  const external = str(p, 'control');
  const controlAddr: HostPort = external
    ? parseHostPort(external, '--control')
    : parseHostPort(str(p, 'control-listen') ?? `${prefix}.0.1:${PORTS.controlGrpc}`, '--control-listen');
  const adminAddr = parseHostPort(str(p, 'control-admin') ?? `${controlAddr.host}:${PORTS.controlAdmin}`, '--control-admin');
  const intervalS = int(p, 'interval', { min: 1, max: 3600 }) ?? 2;
  const defaultInboundPolicy = str(p, 'default-inbound-policy');
  if (defaultInboundPolicy !== undefined && !(DEFAULT_INBOUND_POLICIES as readonly string[]).includes(defaultInboundPolicy)) {
    throw new UsageError(`--default-inbound-policy: "${defaultInboundPolicy}" is not one of ${DEFAULT_INBOUND_POLICIES.join(', ')}`);
  }

  const drainFlag = parseDrainTimeout(str(p, 'drain-timeout') ?? '5s');
  if (!drainFlag.ok) throw new UsageError(drainFlag.error);
  const drainMs = drainFlag.ms;
  // SIGKILL only if a sidecar outlives its drain by this much.
  const sidecarStopMs = drainMs + 2_000;
  // observe: the dashboard address and the mesh-wide tracing flags for every sidecar.
  const dashboardFlag = str(p, 'dashboard') ?? `${prefix}.0.1:7070`;
  const dashboardAddr = dashboardFlag === 'off' ? undefined : parseHostPort(dashboardFlag, '--dashboard');
  const meshObserveArgs = [
    ...(str(p, 'trace-collector') ? ['--trace-collector', str(p, 'trace-collector')!] : []),
    ...(str(p, 'trace-sampling') ? ['--trace-sampling', str(p, 'trace-sampling')!] : []),
  ];
  let dashboardUrl = '';
  const quiet = bool(p, 'quiet');
  const echoLogs = bool(p, 'logs');
  // Log lines written inside DIR would wake control's file watcher (it
  // watches DIR recursively) many times a second; keep them outside.
  const stateInDir = !relative(dir, stateDir).startsWith('..');
  const logDir = resolve(
    str(p, 'log-dir') ??
      (stateInDir
        ? join(tmpdir(), `weft-up-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`, 'logs')
        : join(stateDir, 'logs')),
  );
  const show = (dirPath: string) => {
    const rel = relative(process.cwd(), dirPath);
    return rel === '' ? '.' : rel.startsWith('..') ? dirPath : rel;
  };

  const { workloads, errors: firstErrors } = loadWorkloads(dir);
  let errors = firstErrors;
  for (const e of errors) process.stderr.write(`weft up: ${e}\n`);
  const wanted = workloads.filter((w) => w.replicas > 0);
  if (errors.length > 0 && workloads.length === 0) {
    process.stderr.write('weft up: no valid Workload; fix the errors above\n');
    return 1;
  }
  let indexes = assignIndexes(workloads);
  const pods = planPods(workloads, prefix);
  let current = new Map(workloads.map((w) => [workloadKey(w), w]));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  mkdirSync(logDir, { recursive: true });

  // Recent messages are also shown under the table, which a terminal redraws.
  const recent: string[] = [];
  // On a terminal the table is redrawn in place: messages then live in the
  // redraw (and go to stderr only once shutdown begins).
  const redraw = !quiet && process.stdout.isTTY === true && process.stderr.isTTY === true;
  let stopping = false;
  let status = 'starting';
  const note = (line: string) => {
    recent.push(`${new Date().toISOString().slice(11, 19)} ${line}`);
    if (recent.length > 8) recent.shift();
    if (!redraw || stopping) process.stderr.write(`${line}\n`);
  };
  const say: Say = (line) => note(`weft up: ${line}`);

  // Control first: it creates STATE (trust anchor, bootstrap token) that the
  // sidecars read when they start.
  let control: ControlHandle | undefined;
  let formatConfigError: (e: ReturnType<ControlHandle['errors']>[number]) => string = (e) => e.message;
  if (!external) {
    // Loaded on demand: `weft up --control` never loads control's code.
    const { startControl, formatConfigError: fmt } = await import('../control/index.js');
    formatConfigError = fmt;
    control = await startControl({
      configDir: dir,
      stateDir,
      listen: formatHostPort(controlAddr),
      adminListen: formatHostPort(adminAddr),
      log: note,
      ...(defaultInboundPolicy ? { defaultInboundPolicy: defaultInboundPolicy as DefaultInboundPolicy } : {}),
    });
  }

  const runs: PodRun[] = [];
  const bannerText = (): string => {
    const list = runs.length ? runs.map((r) => r.pod) : pods;
    const lines: string[] = [
      `weft up ${show(dir)}: ${new Set(list.map((x) => workloadKey(x.workload))).size} workloads, ${list.length} pods`,
      external
        ? `  control    ${formatHostPort(controlAddr)} (already running)`
        : `  control    grpc ${formatHostPort(controlAddr)}  admin http://${formatHostPort(adminAddr)}  state ${show(stateDir)}`,
    ];
    const podW = Math.max(...list.map((x) => `${x.workload.namespace}/${x.name}`.length), 8);
    for (const pod of list) {
      const w = pod.workload;
      const app = w.ports.length ? w.ports.map((x) => `${pod.ip}:${x}`).join(',') : '(no ports)';
      lines.push(
        `  ${`${w.namespace}/${pod.name}`.padEnd(podW)}  pod ${pod.ip.padEnd(13)} app ${app}  sidecar out :${PORTS.outbound} in :${PORTS.inbound} admin http://${pod.ip}:${PORTS.admin}`,
      );
    }
    lines.push(`  logs       ${show(logDir)}/<namespace>.<pod>.{app,sidecar}.log`);
    if (dashboardUrl) lines.push(`  dashboard  ${dashboardUrl}`);
    return lines.join('\n');
  };
  // The dashboard reads the same control admin endpoint as `weft stat`; a busy port only costs the page.
  let dashboard: Awaited<ReturnType<typeof startDashboard>> | undefined;
  if (dashboardAddr) {
    dashboard = await startDashboard({ listen: dashboardAddr, controlAdmin: formatHostPort(adminAddr) }).catch((e: Error) => {
      say(`dashboard: cannot listen on ${formatHostPort(dashboardAddr)}: ${e.message} (--dashboard H:P or off)`);
      return undefined;
    });
  }
  dashboardUrl = dashboard?.url ?? '';
  process.stdout.write(`${bannerText()}\n`);

  const writePods = () => {
    const body = runs.map((r) => ({
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
      writeFileSync(join(stateDir, 'local-pods.json'), JSON.stringify({ control: formatHostPort(controlAddr), pods: body }, null, 2));
    } catch {
      /* state dir removed under us: nothing to record */
    }
  };

  // Node 22+ caches compiled modules here, which cuts a sidecar's start;
  // Node 20 ignores the variable.
  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'weft-node-compile-cache'),
  };
  for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']) {
    delete baseEnv[k];
  }

  // The sidecar's V8 and allocator bounds (api/runtime.ts), as in the image and the injected container.
  const sidecarEnv: NodeJS.ProcessEnv = { ...baseEnv, ...SIDECAR_ENV, NODE_OPTIONS: sidecarNodeOptions(baseEnv.NODE_OPTIONS) };

  const makePod = (pod: LocalPod): PodRun => {
    const w = pod.workload;
    const id = `${w.namespace}.${pod.name}`;
    const sidecarArgs = [
      WEFT_JS,
      'sidecar',
      '--control',
      formatHostPort(controlAddr),
      '--state-dir',
      stateDir,
      '--pod-ip',
      pod.ip,
      '--pod-name',
      pod.name,
      '--namespace',
      w.namespace,
      '--workload',
      w.name,
      '--service-account',
      w.serviceAccount,
    ];
    if (Object.keys(w.labels).length) sidecarArgs.push('--labels', formatLabels(w.labels));
    if (w.ports.length) sidecarArgs.push('--app-ports', w.ports.join(','));
    for (const c of w.calls) sidecarArgs.push('--subscribe', c);
    if (w.strict) sidecarArgs.push('--strict');
    if (w.sidecarFlags) sidecarArgs.push(...w.sidecarFlags);
    sidecarArgs.push('--drain-timeout', `${drainMs}ms`);
    sidecarArgs.push(...meshObserveArgs, ...(w.observeArgs ?? []));
    const proxy = `http://${pod.ip}:${PORTS.outbound}`;
    const [cmd0, ...cmdRest] = w.command;
    const r: PodRun = {
      pod,
      sidecar: new Supervised({
        label: `${w.namespace}/${pod.name} sidecar`,
        command: process.execPath,
        args: sidecarArgs,
        cwd: dir,
        env: sidecarEnv,
        logFile: join(logDir, `${id}.sidecar.log`),
        echo: echoLogs,
        say,
        restart: true,
        onSpawn: () => writePods(),
      }),
      app: new Supervised({
        label: `${w.namespace}/${pod.name}`,
        command: cmd0 === 'node' ? process.execPath : cmd0!,
        args: cmdRest,
        cwd: dir,
        env: {
          ...baseEnv,
          POD_IP: pod.ip,
          POD_NAME: pod.name,
          POD_NAMESPACE: w.namespace,
          SERVICE_ACCOUNT: w.serviceAccount,
          WORKLOAD: w.name,
          HTTP_PROXY: proxy,
          http_proxy: proxy,
          ...w.env,
        },
        logFile: join(logDir, `${id}.app.log`),
        echo: echoLogs,
        say,
        restart: true,
        onSpawn: () => writePods(),
      }),
    };
    return r;
  };
  for (const pod of pods) runs.push(makePod(pod));

  // Whatever happens to this process, its children must not outlive it.
  const killAll = () => {
    for (const r of runs) {
      r.app.kill();
      r.sidecar.kill();
    }
  };
  process.on('exit', killAll);

  const started = Date.now();
  // Pure clients (no ports, like a load generator) start their apps once
  // every server accepts, so their first requests do not meet half a mesh.
  let serversUp: () => void = () => undefined;
  const serversReady = new Promise<void>((r) => (serversUp = r));
  const bringUp = async (r: PodRun): Promise<void> => {
    const t0 = Date.now();
    r.sidecar.start();
    const url = `http://${r.pod.ip}:${PORTS.admin}/ready`;
    let warned = false;
    while (!stopping && !r.removed) {
      const ok = await httpGet(url, 500).then(
        (x) => x.status === 200,
        () => false,
      );
      if (ok) break;
      if (!warned && Date.now() - t0 > 15_000) {
        warned = true;
        say(`${r.pod.workload.namespace}/${r.pod.name}: sidecar not ready after 15 s — log: ${join(logDir, `${r.pod.workload.namespace}.${r.pod.name}.sidecar.log`)}`);
      }
      await sleep(50);
    }
    if (stopping || r.removed) return;
    r.sidecarReadyMs = Date.now() - t0;
    if (r.pod.workload.ports.length === 0) await serversReady;
    if (stopping || r.removed) return;
    if (stopping) return;
    r.app.start();
    for (const port of r.pod.workload.ports) {
      const t1 = Date.now();
      while (!stopping && !r.removed && !(await tcpAccepts(r.pod.ip, port))) {
        if (Date.now() - t1 > 30_000) {
          say(`${r.pod.workload.namespace}/${r.pod.name}: app does not accept on ${r.pod.ip}:${port} after 30 s`);
          break;
        }
        await sleep(100);
      }
    }
  };

  // Workload edits while running: added workloads start, removed ones stop,
  // a changed replica count scales, any other change restarts the
  // workload's pods on the same addresses. Invalid Workloads change nothing.
  const stopPod = async (r: PodRun): Promise<void> => {
    r.removed = true;
    if (r.pod.workload.ports.length > 0) {
      // A server: its sidecar drains first (Goodbye: the endpoints leave the
      // other sidecars' configs, in-flight requests are answered by the app,
      // which still runs), then the app stops.
      await r.sidecar.stop(sidecarStopMs);
      await r.app.stop(5000);
    } else {
      // A pure client: nothing calls it; the app stops first so it never loses its proxy.
      await r.app.stop(5000);
      await r.sidecar.stop(sidecarStopMs);
    }
    const i = runs.indexOf(r);
    if (i >= 0) runs.splice(i, 1);
  };
  const startPod = (pod: LocalPod): Promise<void> => {
    const r = makePod(pod);
    runs.push(r);
    say(`${pod.workload.namespace}/${pod.name}: starting at ${pod.ip}`);
    return bringUp(r);
  };
  const reconcile = async (): Promise<void> => {
    const loaded = loadWorkloads(dir);
    errors = loaded.errors;
    if (errors.length) {
      for (const e of errors) say(e);
      say('Workload errors: running workloads are left as they are until fixed');
      return;
    }
    const next = new Map(loaded.workloads.map((w) => [workloadKey(w), w]));
    indexes = assignIndexes(loaded.workloads, indexes);
    const work: Array<Promise<void>> = [];
    for (const [k, old] of current) {
      const w = next.get(k);
      const mine = runs.filter((r) => workloadKey(r.pod.workload) === k);
      if (!w) {
        say(`Workload ${k} removed: stopping its pods`);
        work.push(Promise.all(mine.map(stopPod)).then(() => undefined));
      } else if (!sameSpec(old, w)) {
        say(`Workload ${k} changed: restarting its pods`);
        work.push(
          Promise.all(mine.map(stopPod)).then(() =>
            Promise.all(podsOf(w, indexes.get(k)!, prefix).map(startPod)).then(() => undefined),
          ),
        );
      } else if (old.replicas !== w.replicas) {
        say(`Workload ${k}: ${old.replicas} → ${w.replicas} replicas`);
        const want = podsOf(w, indexes.get(k)!, prefix);
        work.push(Promise.all(mine.filter((r) => r.pod.replica >= w.replicas).map(stopPod)).then(() => undefined));
        work.push(Promise.all(want.filter((p) => p.replica >= old.replicas).map(startPod)).then(() => undefined));
      }
    }
    for (const [k, w] of next) {
      if (current.has(k)) continue;
      say(`Workload ${k} added`);
      work.push(Promise.all(podsOf(w, indexes.get(k)!, prefix).map(startPod)).then(() => undefined));
    }
    current = next;
    await Promise.all(work);
    writePods();
    if (work.length && !redraw && !stopping) process.stdout.write(`${bannerText()}\n`);
  };
  // fs.watch is fast but misses some replace-by-rename saves on Node 20's
  // recursive watcher; a cheap stat signature polled every second catches
  // those, and both paths reconcile only when the signature changed.
  const signature = (): string =>
    yamlFiles(dir)
      .map((f) => {
        try {
          const st = statSync(f);
          return `${f}:${st.mtimeMs}:${st.size}:${st.ino}`;
        } catch {
          return f;
        }
      })
      .join('|');
  let lastSig = signature();
  let watcher: FSWatcher | undefined;
  let poller: NodeJS.Timeout | undefined;
  let reconciling: Promise<void> = Promise.resolve();
  let debounce: NodeJS.Timeout | undefined;
  const maybeReconcile = () => {
    if (stopping) return;
    const sig = signature();
    if (sig === lastSig) return;
    lastSig = sig;
    reconciling = reconciling
      .then(() => (stopping ? undefined : reconcile()))
      .catch((e: unknown) => say(`reloading Workloads failed: ${(e as Error).message}`));
  };
  const watchWorkloads = () => {
    poller = setInterval(maybeReconcile, 1000);
    try {
      watcher = watch(dir, { recursive: true, persistent: false }, (_ev, filename) => {
        // STATE and editors' temp files live in hidden paths.
        if (filename && String(filename).split(/[\\/]/).some((seg) => seg.startsWith('.'))) return;
        if (debounce) clearTimeout(debounce);
        debounce = setTimeout(maybeReconcile, 200);
      });
      watcher.on('error', () => undefined);
    } catch {
      /* the poller alone then */
    }
  };

  // The first SIGINT/SIGTERM stops everything in order; a second one kills
  // at once — but not the echo of the first: Ctrl-C under `npm start`
  // reaches weft up from the terminal and again from npm. The handler stays
  // installed throughout, so no signal ever meets Node's default (which
  // would leave the children running).
  let firstSignalAt = 0;
  let gotSignal: (s: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((r) => (gotSignal = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (!firstSignalAt) {
      firstSignalAt = Date.now();
      gotSignal(sig);
    } else if (Date.now() - firstSignalAt > 1000) {
      say(`${sig} again: killing everything`);
      killAll();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const servers = runs.filter((r) => r.pod.workload.ports.length > 0);
  const clients = runs.filter((r) => r.pod.workload.ports.length === 0);
  const serversDone = Promise.all(servers.map(bringUp)).then(() => serversUp());
  const allUp = Promise.all([serversDone, ...clients.map(bringUp)]).then(() => {
    if (stopping) return;
    const cold = runs.map((r) => r.sidecarReadyMs ?? 0).sort((a, b) => a - b);
    const median = cold.length ? cold[Math.floor(cold.length / 2)]! : 0;
    status = `ready: ${runs.length} pods in ${Date.now() - started} ms (sidecar start → ready: median ${median} ms, max ${cold[cold.length - 1] ?? 0} ms)`;
    process.stdout.write(`weft up: ${status}\n`);
  });

  watchWorkloads();

  // The live table.
  let table: NodeJS.Timeout | undefined;
  if (!quiet) {
    let prev: TargetScrape[] = [];
    table = setInterval(() => {
      void Promise.all(
        runs.map(async (r): Promise<TargetScrape | undefined> => {
          try {
            const res = await httpGet(`http://${r.pod.ip}:${PORTS.admin}/metrics`, 1000);
            if (res.status !== 200) return undefined;
            return { target: r.pod.ip, at: Date.now(), samples: parseExposition(res.body) };
          } catch {
            return undefined;
          }
        }),
      ).then((scrapes) => {
        if (stopping) return;
        const cur = scrapes.filter((s): s is TargetScrape => s !== undefined);
        const rows = aggregate(prev, cur, { by: ['service', 'backend'], quantiles: [0.5, 0.99] });
        prev = cur;
        const text = renderStat(rows, { by: ['service', 'backend'], quantiles: [0.5, 0.99], share: true });
        const stamp = new Date().toISOString().slice(11, 19);
        if (redraw) {
          const errs = [...errors.map((e) => `  ${e}`), ...(control?.errors() ?? []).map((e) => `  ${formatConfigError(e)}`)];
          const extra = [
            ...(errs.length ? ['', 'config errors (the last good config keeps serving):', ...errs] : []),
            ...(recent.length ? ['', ...recent] : []),
          ];
          process.stdout.write(
            `\x1b[H\x1b[2J${bannerText()}\n  ${status}\n\n${stamp}  outbound traffic, last ${intervalS} s (Ctrl-C stops)\n${text}\n${extra.join('\n')}\n`,
          );
        }
        else process.stdout.write(`\n${stamp}  outbound traffic, last ${intervalS} s\n${text}\n`);
      });
    }, intervalS * 1000);
  }

  const sig = await signal;
  stopping = true;
  watcher?.close();
  if (debounce) clearTimeout(debounce);
  if (poller) clearInterval(poller);
  await reconciling;
  if (table) clearInterval(table);
  say(`${sig}: stopping apps, then sidecars${control ? ', then control' : ''} (again to kill at once)`);

  await Promise.all(runs.map((r) => r.app.stop(5000)));
  await Promise.all(runs.map((r) => r.sidecar.stop(sidecarStopMs)));
  await allUp.catch(() => undefined);
  await dashboard?.close();
  if (control) await control.close();
  process.off('exit', killAll);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  say('stopped');
  return 0;
}

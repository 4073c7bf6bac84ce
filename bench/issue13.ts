// The answer to issue 13 at the top of bench/results.md: its targets (met or
// not, from this run's sections) and the issue's starting figures beside this
// run's. A section that did not run leaves its rows "not measured".
import { median, fmt, signed } from './stats.js';
import type { RuntimeMatrix } from './runtimes.js';

export interface ChainFigures {
  rps: number;
  /** µs per request per proxy at maximum throughput (outbound, inbound). */
  cpuSat: number[];
  /** µs per request per proxy in the open loop (BENCH_RATE req/s). */
  cpuOpen: number[];
  p: { p50: number; p90: number; p99: number; max: number };
  /** Peak VmRSS MB per proxy during the wrk rounds. */
  rssLoad: number[];
}

export interface GrpcFigures {
  rps: number;
  /** µs per call per proxy. */
  cpu: number[];
}

export interface Summary {
  data?: { rate: number; weft?: ChainFigures; weftNote?: string; hap?: ChainFigures; direct?: ChainFigures; startupMs: number[]; /** The measured sidecars' node. */ runtime?: string };
  grpc?: { weft?: GrpcFigures; hap?: GrpcFigures; seconds: number; rounds: number; weftNote?: string };
  runtimes?: RuntimeMatrix;
}

/** The issue's starting figures (issue 13, quiet machine, 2026-12-02): fixed text. */
export const BEFORE = {
  rps: '14,856 (0.57×)',
  cpuMax: '48',
  cpuOpen: '192',
  added: '+0.56 / +1.81 ms',
  rss: '108 / 117 MB',
  grpc: '4,185 (0.22×)',
  grpcCpu: '166 / 152',
} as const;

const IDLE_TARGET = 10_000;

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
const per = (xs: number[], d = 1): string => xs.map((x) => fmt(x, d)).join(' / ');

type Row = [target: string, measured: string, verdict: string];

function judged(target: string, measured: string, ok: boolean): Row {
  return [target, measured, ok ? 'met' : 'NOT met'];
}

function missing(target: string, why: string): Row {
  return [target, `not measured: ${why}`, 'not measured'];
}

export function targetRows(s: Summary): Row[] {
  const rows: Row[] = [];
  const d = s.data;
  const w = d?.weft;
  const h = d?.hap;
  const dataWhy = !d ? 'the data plane did not run' : !w ? `weft: ${d.weftNote ?? 'not run'}` : 'no HAProxy pair (BENCH_CHAINS)';
  const rate = d?.rate ?? 1000;

  const tput = 'HTTP/1.1 two-hop mTLS throughput ≥ 0.8× the HAProxy pair';
  if (w && h) rows.push(judged(tput, `${fmt(w.rps / h.rps, 2)}× (${fmt(w.rps)} vs ${fmt(h.rps)} req/s)`, w.rps / h.rps >= 0.8));
  else rows.push(missing(tput, dataWhy));

  for (const [target, k] of [
    ['CPU per request per sidecar ≤ 1.5× HAProxy\'s, at max', 'cpuSat'],
    [`CPU per request per sidecar ≤ 1.5× HAProxy's, at ${fmt(rate)} req/s`, 'cpuOpen'],
  ] as const) {
    if (!w || !h) {
      rows.push(missing(target, dataWhy));
      continue;
    }
    const worst = Math.max(...w[k]) / mean(h[k]);
    rows.push(judged(target, `worse sidecar ${fmt(worst, 2)}× (out / in ${per(w[k])} vs HAProxy ${per(h[k])} µs)`, worst <= 1.5));
  }

  const p99 = `added p99 at ${fmt(rate)} req/s ≤ HAProxy's`;
  if (w && h && d?.direct) {
    const wa = w.p.p99 - d.direct.p.p99;
    const ha = h.p.p99 - d.direct.p.p99;
    rows.push(judged(p99, `${signed(wa)} vs ${signed(ha)} ms`, wa <= ha));
  } else rows.push(missing(p99, !w || !h ? dataWhy : 'no direct chain (BENCH_CHAINS)'));

  const rtm = s.runtimes;
  const image = rtm?.image;
  const major = process.env.BENCH_LTS_MAJOR ?? '26';
  const rtWhy = !rtm ? 'the runtime matrix did not run (BENCH_RUNTIMES=0)' : !image ? `no Node ${major} row in the runtime matrix` : undefined;
  const on = image ? ` on ${image.rt.version}` : '';
  for (const [target, m] of [
    [`VmRSS after HTTP load ≤ 64 MB per sidecar on the image's runtime (Node ${major})`, image?.http?.mem],
    [`VmRSS after gRPC load ≤ 64 MB per sidecar on the image's runtime (Node ${major})`, image?.grpc?.mem],
  ] as const) {
    if (rtWhy) rows.push(missing(target, rtWhy));
    else if (!m) rows.push(missing(target, `the Node ${major} run stopped early: ${image?.error ?? '?'}`));
    else rows.push(judged(target, `out / in ${per(m.rss)} MB${on}`, Math.max(...m.rss) <= 64));
  }

  const g = s.grpc;
  const gWhy = !g ? (d ? 'the gRPC section did not run (BENCH_GRPC=0) or failed' : 'the data plane (with its gRPC section) did not run') : !g.weft ? `weft: ${g.weftNote ?? 'not available'}` : 'no HAProxy gRPC pair';
  const gt = 'gRPC unary ≥ 0.6× the HAProxy pair';
  if (g?.weft && g.hap) rows.push(judged(gt, `${fmt(g.weft.rps / g.hap.rps, 2)}× (${fmt(g.weft.rps)} vs ${fmt(g.hap.rps)} calls/s)`, g.weft.rps / g.hap.rps >= 0.6));
  else rows.push(missing(gt, gWhy));
  const gc = "CPU per gRPC call ≤ 2× HAProxy's";
  if (g?.weft && g.hap) {
    const worst = Math.max(...g.weft.cpu) / mean(g.hap.cpu);
    rows.push(judged(gc, `worse sidecar ${fmt(worst, 2)}× (out / in ${per(g.weft.cpu)} vs HAProxy ${per(g.hap.cpu)} µs)`, worst <= 2));
  } else rows.push(missing(gc, gWhy));

  const it = `${fmt(IDLE_TARGET)} idle keep-alive connections through one sidecar: VmRSS ≤ 128 MB`;
  const ic = image?.idleConns;
  if (rtWhy) rows.push(missing(it, rtWhy));
  else if (!ic) rows.push(missing(it, `the Node ${major} run stopped early: ${image?.error ?? '?'}`));
  else if (ic.held < IDLE_TARGET) rows.push([it, `not measured at ${fmt(IDLE_TARGET)}: ${fmt(ic.held)} held (BENCH_IDLE_CONNS), client sidecar ${fmt(ic.mem.rss[0]!, 0)} MB${on}`, 'not measured']);
  else rows.push(judged(it, `client sidecar ${fmt(ic.mem.rss[0]!, 0)} MB with ${fmt(ic.held)} held${on} (server sidecar ${fmt(ic.mem.rss[1]!, 0)} MB)`, ic.mem.rss[0]! <= 128));

  const st = 'start-up to ready < 300 ms';
  const su = median(d?.startupMs ?? []);
  if (Number.isFinite(su)) rows.push(judged(st, `median ${fmt(su, 0)} ms of ${d!.startupMs.length}`, su < 300));
  else rows.push(missing(st, w ? 'the start-up run failed (see weft sidecar)' : dataWhy));
  return rows;
}

export function beforeAfterRows(s: Summary): Array<[string, string, string]> {
  const w = s.data?.weft;
  const h = s.data?.hap;
  const dir = s.data?.direct;
  const g = s.grpc;
  const image = s.runtimes?.image;
  const nm = 'not measured';
  const rssAfter = [w ? `${per(w.rssLoad, 0)} MB peak during wrk on ${s.data?.runtime ?? process.version}` : '', image?.http ? `${per(image.http.mem.rss, 0)} MB after wrk on ${image.rt.version}` : ''].filter(Boolean).join('; ');
  return [
    ['HTTP/1.1 req/s (× HAProxy)', BEFORE.rps, w ? `${fmt(w.rps)}${h ? ` (${fmt(w.rps / h.rps, 2)}×)` : ''}` : nm],
    ['CPU µs/request per proxy at max, outbound / inbound', BEFORE.cpuMax, w ? per(w.cpuSat) : nm],
    [`CPU µs/request per proxy at ${fmt(s.data?.rate ?? 1000)} req/s, outbound / inbound`, BEFORE.cpuOpen, w ? per(w.cpuOpen) : nm],
    [`added p50 / p99 at ${fmt(s.data?.rate ?? 1000)} req/s`, BEFORE.added, w && dir ? `${signed(w.p.p50 - dir.p.p50)} / ${signed(w.p.p99 - dir.p.p99)} ms` : nm],
    ['VmRSS under load, outbound / inbound', BEFORE.rss, rssAfter || nm],
    ['gRPC calls/s (× HAProxy)', BEFORE.grpc, g?.weft ? `${fmt(g.weft.rps)}${g.hap ? ` (${fmt(g.weft.rps / g.hap.rps, 2)}×)` : ''}` : nm],
    ['CPU µs per gRPC call, outbound / inbound', BEFORE.grpcCpu, g?.weft ? per(g.weft.cpu) : nm],
  ];
}

/** "## Issue-13 targets" and "## Before / after". */
export function issueSections(s: Summary): string {
  const L = [
    '## Issue-13 targets',
    '',
    "From this run's sections below: data plane (throughput, CPU, latency), gRPC, the runtime matrix (memory on the image's runtime, idle connections) and the weft sidecar's start-up. CPU \"per sidecar\": the worse of weft's two sidecars against the mean of the HAProxy pair's two processes.",
    '',
    '| target | measured | met / NOT met |',
    '| --- | --- | --- |',
    ...targetRows(s).map((r) => `| ${r.join(' | ')} |`),
    '',
    '## Before / after',
    '',
    "Before: the issue's starting figures (issue 13, quiet machine, 2026-12-02). After: this run (its load average is in the header; on a shared machine compare the × HAProxy ratios, not the absolute figures).",
    '',
    '| figure | before | after |',
    '| --- | --- | --- |',
    ...beforeAfterRows(s).map((r) => `| ${r.join(' | ')} |`),
    '',
  ];
  return L.join('\n');
}

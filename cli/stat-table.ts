// The traffic table of `weft up` and `weft stat`: pure functions from
// Prometheus text exposition to an aligned terminal table.
//
//   parseExposition(text)          → samples of one scrape
//   increases(prev, cur)           → per-series counter increase between two scrapes
//   aggregateIncreases(incs, opts) → rows per service / route / backend / workload
//   renderStat(rows, opts)         → the table
//
// Rates come from two scrapes of the same targets (a sidecar's /metrics) as
// Prometheus' rate() would compute them over that window; quantiles follow
// histogram_quantile(): linear interpolation inside the bucket that holds the
// rank, the upper bound of the last finite bucket when the rank falls in +Inf.
import { RESILIENCE_METRICS, SIDECAR_METRICS } from '../api/index.js';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One scrape of one target (a sidecar's admin endpoint). */
export interface TargetScrape {
  target: string;
  /** Milliseconds since the epoch when the scrape was taken. */
  at: number;
  samples: Sample[];
}

/** A counter's increase over a window, with the window's length. */
export interface Increase extends Sample {
  seconds: number;
}

// ---- parsing -----------------------------------------------------------------

function parseValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  return Number(s);
}

/**
 * Parses the Prometheus text exposition format (version 0.0.4). Comment and
 * blank lines are skipped; malformed lines are skipped rather than failing
 * the whole scrape, since one odd metric must not blank the table.
 */
export function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseLine(line);
    if (s) out.push(s);
  }
  return out;
}

function parseLine(line: string): Sample | undefined {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i]!)) i++;
  const name = line.slice(0, i);
  if (!name) return undefined;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      i = eq + 2;
      let val = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return undefined;
        if (c === '\\') {
          const n = line[i + 1];
          val += n === 'n' ? '\n' : (n ?? '');
          i += 2;
          continue;
        }
        if (c === '"') {
          i++;
          break;
        }
        val += c;
        i++;
      }
      labels[key] = val;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  if (rest.length < 1 || rest[0] === '') return undefined;
  const value = parseValue(rest[0]!);
  if (Number.isNaN(value) && rest[0] !== 'NaN') return undefined;
  return { name, labels, value };
}

// ---- rates -------------------------------------------------------------------

function seriesKey(name: string, labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  let k = name;
  for (const l of keys) k += `\u0000${l}\u0001${labels[l]}`;
  return k;
}

/**
 * The increase of every counter series between two scrapes of the same
 * targets. A target absent from `prev` yields nothing (no window yet); a
 * series absent from `prev` of a present target started inside the window,
 * so its whole value is the increase; a value below the previous one is a
 * counter reset (the process restarted), so the new value is the increase.
 * `names` limits the work to the metrics the table needs.
 */
export function increases(prev: TargetScrape[], cur: TargetScrape[], names?: ReadonlySet<string>): Increase[] {
  const before = new Map<string, TargetScrape>();
  for (const p of prev) before.set(p.target, p);
  const out: Increase[] = [];
  for (const c of cur) {
    const p = before.get(c.target);
    if (!p) continue;
    const seconds = (c.at - p.at) / 1000;
    if (!(seconds > 0)) continue;
    const old = new Map<string, number>();
    for (const s of p.samples) {
      if (names && !names.has(s.name)) continue;
      old.set(seriesKey(s.name, s.labels), s.value);
    }
    for (const s of c.samples) {
      if (names && !names.has(s.name)) continue;
      const o = old.get(seriesKey(s.name, s.labels));
      const inc = o === undefined || s.value < o ? s.value : s.value - o;
      out.push({ name: s.name, labels: s.labels, value: inc, seconds });
    }
  }
  return out;
}

// ---- quantiles ---------------------------------------------------------------

export interface Bucket {
  le: number;
  count: number;
}

/**
 * histogram_quantile(q, buckets) as Prometheus computes it. Buckets hold
 * cumulative counts; the +Inf bucket is the total. NaN when there is no
 * observation or fewer than two buckets.
 */
export function histogramQuantile(q: number, input: readonly Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const buckets = [...input].sort((a, b) => a.le - b.le);
  if (buckets.length < 2) return NaN;
  const last = buckets[buckets.length - 1]!;
  if (last.le !== Infinity) return NaN;
  // Scrapes of several targets taken at slightly different moments can make
  // cumulative counts dip; Prometheus forces them monotonic the same way.
  for (let i = 1; i < buckets.length; i++) {
    if (buckets[i]!.count < buckets[i - 1]!.count) buckets[i] = { le: buckets[i]!.le, count: buckets[i - 1]!.count };
  }
  const total = last.count;
  if (!(total > 0)) return NaN;
  const rank = q * total;
  let b = buckets.findIndex((x) => x.count >= rank);
  if (b < 0) b = buckets.length - 1;
  if (b === buckets.length - 1) return buckets[buckets.length - 2]!.le;
  if (b === 0 && buckets[0]!.le <= 0) return buckets[0]!.le;
  const start = b === 0 ? 0 : buckets[b - 1]!.le;
  const end = buckets[b]!.le;
  const below = b === 0 ? 0 : buckets[b - 1]!.count;
  const inBucket = buckets[b]!.count - below;
  if (inBucket <= 0) return end;
  return start + (end - start) * ((rank - below) / inBucket);
}

// ---- aggregation -------------------------------------------------------------

/** A column the rows are grouped by. */
export type Dimension = 'service' | 'route' | 'backend' | 'workload' | 'source' | 'peer';

const DIM_HEADER: Record<Dimension, string> = {
  service: 'SERVICE',
  route: 'ROUTE',
  backend: 'BACKEND',
  workload: 'WORKLOAD',
  source: 'FROM',
  peer: 'PEER',
};

function dimValue(d: Dimension, l: Record<string, string>): string {
  switch (d) {
    case 'service': {
      const svc = l.dst_service ?? '';
      if (svc === '') return '-';
      if (svc === 'external' || svc.includes('/') || !l.dst_namespace) return svc;
      return `${l.dst_namespace}/${svc}`;
    }
    case 'route':
      if (!l.route_name) return '(default)';
      return `${l.route_kind ?? 'HTTPRoute'} ${l.route_namespace ?? ''}/${l.route_name}${l.route_rule ? `#${l.route_rule}` : ''}`;
    case 'backend':
      return l.backend || '-';
    case 'workload':
      return l.dst_workload ? `${l.dst_namespace ?? ''}/${l.dst_workload}` : '-';
    case 'source':
      return l.src_workload ? `${l.src_namespace ?? ''}/${l.src_workload}` : '-';
    case 'peer':
      return l.peer_identity || '-';
  }
}

export interface StatOptions {
  by: Dimension[];
  /** Only series with this direction label; default: outbound, or inbound when grouping by workload. */
  direction?: 'outbound' | 'inbound' | 'any';
  /** Only rows whose dimension values match (exact). */
  filter?: Partial<Record<Dimension, string>>;
  /** Quantiles to compute, default [0.5, 0.95, 0.99]. */
  quantiles?: number[];
}

export interface StatRow {
  keys: Partial<Record<Dimension, string>>;
  /** Requests counted in the window. */
  requests: number;
  /** Requests per second over the window. */
  rps: number;
  /** Share of non-failed requests, 0..1; NaN without requests. */
  successRate: number;
  /** Seconds, one per requested quantile, NaN without observations. */
  latency: Record<string, number>;
  /** rps / rps of all rows with the same first dimension (a split's share). */
  share: number;
  /** Retries the callers made in the window (weft_retries_total), and per second. */
  retries: number;
  retryRate: number;
  /** Requests shed (503 overloaded) in the window. */
  shed: number;
  /** Times failure accrual took an endpoint out of the balancer in the window. */
  ejections: number;
}

/**
 * A response counts as failed when it is a 5xx, had no status at all (the
 * connection failed), or is a gRPC call that ended with a non-OK status —
 * the same classification the dashboards' success-rate panels use.
 */
export function isFailure(l: Record<string, string>): boolean {
  const cls = l.status_class ?? '';
  const code = l.status_code ?? '';
  if (cls === '5xx' || code === '' || code === '0') return true;
  const g = l.grpc_status ?? '';
  return g !== '' && g !== '0';
}

export function quantileLabel(q: number): string {
  return `p${Math.round(q * 1000) / 10}`.replace('.', '_').replace(/_0$/, '');
}

const REQ = SIDECAR_METRICS.requestsTotal;
const BUCKET = `${SIDECAR_METRICS.requestDuration}_bucket`;
const RETRIES = RESILIENCE_METRICS.retries;
const SHED = RESILIENCE_METRICS.requestsShed;
const EJECTIONS = RESILIENCE_METRICS.endpointEjections;
export const STAT_METRICS: ReadonlySet<string> = new Set([REQ, BUCKET, RETRIES, SHED, EJECTIONS]);

/** Rows from counter increases (from two scrapes, or from Prometheus' increase()). */
export function aggregateIncreases(incs: readonly Increase[], opts: StatOptions): StatRow[] {
  const direction = opts.direction ?? (opts.by.includes('workload') ? 'inbound' : 'outbound');
  const quantiles = opts.quantiles ?? [0.5, 0.95, 0.99];
  interface Acc {
    keys: Partial<Record<Dimension, string>>;
    requests: number;
    rps: number;
    failed: number;
    buckets: Map<number, number>;
    retries: number;
    retryRate: number;
    shed: number;
    ejections: number;
  }
  const groups = new Map<string, Acc>();
  const groupOf = (l: Record<string, string>, outboundOnly = false): Acc | undefined => {
    // The resilience metrics are recorded by the caller and carry no direction.
    if (outboundOnly ? direction === 'inbound' : direction !== 'any' && (l.direction ?? '') !== direction) return undefined;
    const keys: Partial<Record<Dimension, string>> = {};
    for (const d of opts.by) {
      const v = dimValue(d, l);
      const want = opts.filter?.[d];
      if (want !== undefined && want !== v) return undefined;
      keys[d] = v;
    }
    const k = opts.by.map((d) => keys[d]).join('\u0000');
    let g = groups.get(k);
    if (!g) {
      g = { keys, requests: 0, rps: 0, failed: 0, buckets: new Map(), retries: 0, retryRate: 0, shed: 0, ejections: 0 };
      groups.set(k, g);
    }
    return g;
  };
  for (const s of incs) {
    if (s.name === REQ) {
      const g = groupOf(s.labels);
      if (!g) continue;
      g.requests += s.value;
      g.rps += s.value / s.seconds;
      if (isFailure(s.labels)) g.failed += s.value;
    } else if (s.name === BUCKET) {
      const g = groupOf(s.labels);
      if (!g) continue;
      const le = parseValue(s.labels.le ?? '');
      if (Number.isNaN(le)) continue;
      g.buckets.set(le, (g.buckets.get(le) ?? 0) + s.value);
    } else if (s.name === RETRIES || s.name === SHED || s.name === EJECTIONS) {
      const g = groupOf(s.labels, true);
      if (!g) continue;
      if (s.name === RETRIES) {
        g.retries += s.value;
        g.retryRate += s.value / s.seconds;
      } else if (s.name === SHED) g.shed += s.value;
      else g.ejections += s.value;
    }
  }
  const rows: StatRow[] = [];
  for (const g of groups.values()) {
    const buckets = [...g.buckets].map(([le, count]) => ({ le, count }));
    const latency: Record<string, number> = {};
    for (const q of quantiles) latency[quantileLabel(q)] = histogramQuantile(q, buckets);
    rows.push({
      keys: g.keys,
      requests: g.requests,
      rps: g.rps,
      successRate: g.requests > 0 ? (g.requests - g.failed) / g.requests : NaN,
      latency,
      share: NaN,
      retries: g.retries,
      retryRate: g.retryRate,
      shed: g.shed,
      ejections: g.ejections,
    });
  }
  // Share within the first dimension: with by = [service, backend] this is
  // the traffic split as it actually happened.
  const first = opts.by[0];
  if (first) {
    const totals = new Map<string, number>();
    for (const r of rows) totals.set(r.keys[first]!, (totals.get(r.keys[first]!) ?? 0) + r.rps);
    for (const r of rows) {
      const t = totals.get(r.keys[first]!) ?? 0;
      r.share = t > 0 ? r.rps / t : NaN;
    }
  }
  rows.sort((a, b) => {
    for (const d of opts.by) {
      const c = (a.keys[d] ?? '').localeCompare(b.keys[d] ?? '');
      if (c !== 0) return c;
    }
    return 0;
  });
  return rows;
}

/** Rows from two scrapes of the same targets. */
export function aggregate(prev: TargetScrape[], cur: TargetScrape[], opts: StatOptions): StatRow[] {
  return aggregateIncreases(increases(prev, cur, STAT_METRICS), opts);
}

// ---- rendering ---------------------------------------------------------------

export function formatLatency(s: number): string {
  if (!Number.isFinite(s)) return '-';
  const ms = s * 1000;
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 10) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

export function formatPercent(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return `${(x * 100).toFixed(2)}%`;
}

export function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '-';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

/** An aligned table: text columns left, numeric columns right. */
export function renderTable(header: string[], rows: string[][], align: Array<'l' | 'r'> = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export interface RenderOptions {
  by: Dimension[];
  quantiles?: number[];
  /** Add a SHARE column (the split within the first dimension). */
  share?: boolean;
  /** Add RETRIES (per second), SHED and EJECTIONS (in the window): outbound tables. */
  resilience?: boolean;
}

export function renderStat(rows: readonly StatRow[], opts: RenderOptions): string {
  const quantiles = opts.quantiles ?? [0.5, 0.95, 0.99];
  const qLabels = quantiles.map(quantileLabel);
  const header = [
    ...opts.by.map((d) => DIM_HEADER[d]),
    ...(opts.share ? ['SHARE'] : []),
    'RPS',
    'SUCCESS',
    ...qLabels.map((q) => q.toUpperCase()),
    ...(opts.resilience ? ['RETRIES', 'SHED', 'EJECTIONS'] : []),
  ];
  const align: Array<'l' | 'r'> = [...opts.by.map(() => 'l' as const), ...header.slice(opts.by.length).map(() => 'r' as const)];
  const body = rows.map((r) => [
    ...opts.by.map((d) => r.keys[d] ?? '-'),
    ...(opts.share ? [Number.isFinite(r.share) ? `${(r.share * 100).toFixed(1)}%` : '-'] : []),
    formatRate(r.rps),
    formatPercent(r.successRate),
    ...qLabels.map((q) => formatLatency(r.latency[q] ?? NaN)),
    ...(opts.resilience ? [formatRate(r.retryRate ?? 0), String(Math.round(r.shed ?? 0)), String(Math.round(r.ejections ?? 0))] : []),
  ]);
  if (body.length === 0) return `${renderTable(header, [], align)}\n(no traffic yet)`;
  return renderTable(header, body, align);
}

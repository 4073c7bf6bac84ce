// `weft stat`: traffic per service, route, backend or workload — RPS,
// success rate, p50/p95/p99 — like `linkerd viz stat`. Two sources, one
// table (cli/stat-table.ts):
//
//   - the sidecars' admin endpoints (local mode, or --admin URL,...): two
//     scrapes of /metrics a window apart, rates and quantiles computed here;
//     the sidecars are found in control's registry (GET /resources on its
//     admin port) unless --admin lists them;
//   - a Prometheus (--prometheus URL): increase() over the window, summed by
//     the labels the table groups on, then the same aggregation.
import http from 'node:http';
import https from 'node:https';
import { PORTS, REQUEST_LABELS, RESILIENCE_METRICS, SIDECAR_METRICS } from '../api/index.js';
import { bool, list, parseFlags, str, UsageError, waitForSignal } from './args.js';
import {
  aggregate,
  aggregateIncreases,
  parseExposition,
  renderStat,
  type Dimension,
  type Increase,
  type StatOptions,
  type StatRow,
  type TargetScrape,
} from './stat-table.js';

const HELP = `usage: weft stat [services|routes|backends|workloads] [SERVICE] [flags]

Live traffic like \`linkerd viz stat\`: requests per second, success rate and
p50/p95/p99 latency, per destination Service (default), per route and rule
(routes), per backend of each Service (backends: the traffic split as it
happened, with each backend's SHARE), or per workload as its sidecar served
it (workloads, inbound). SERVICE limits the table to one Service.
Outbound tables also show RETRIES (retries per second the callers made),
SHED (requests answered 503 overloaded) and EJECTIONS (endpoints failure
accrual took out of the balancer) over the window.

Sources (default: the local mesh of \`weft up\`):
  --control-admin H:P   control's admin address, whose /resources lists the
                        registered sidecars; each is scraped at podIP:${PORTS.admin}
                        (default 127.0.0.1:${PORTS.controlAdmin})
  --admin URL,...       scrape these sidecar admin endpoints instead
                        (http://10.0.0.7:${PORTS.admin}, or host:port)
  --prometheus URL      query this Prometheus instead (PromQL increase())

flags:
  -n, --namespace NS    only Services (workloads) in NS
  --window DURATION     the window rates are computed over: 10s, 1m, ...
                        (default 10s from admin endpoints — weft stat waits
                        that long —, 1m from Prometheus)
  -w, --watch           print a new table every window until Ctrl-C
  -o, --output FORMAT   table (default) or json
  --scrape-config       print a Prometheus config that scrapes the local
                        mesh's sidecars and control (for Grafana with weft up)
`;

export type StatKind = 'services' | 'routes' | 'backends' | 'workloads';

const KINDS: Record<string, StatKind> = {
  services: 'services',
  service: 'services',
  svc: 'services',
  routes: 'routes',
  route: 'routes',
  rt: 'routes',
  backends: 'backends',
  backend: 'backends',
  workloads: 'workloads',
  workload: 'workloads',
  wl: 'workloads',
};

/** The grouping of each kind, and the direction of the series it reads. */
export function dimensionsOf(kind: StatKind): { by: Dimension[]; direction: 'outbound' | 'inbound'; share: boolean } {
  switch (kind) {
    case 'services':
      return { by: ['service'], direction: 'outbound', share: false };
    case 'routes':
      return { by: ['service', 'route'], direction: 'outbound', share: true };
    case 'backends':
      return { by: ['service', 'backend'], direction: 'outbound', share: true };
    case 'workloads':
      return { by: ['workload'], direction: 'inbound', share: false };
  }
}

/** "30s", "1m", "1500ms", "2h" → seconds. */
export function parseWindow(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s.trim());
  if (!m) throw new UsageError(`--window: "${s}" is not a duration like 10s or 1m`);
  const n = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  if (!(n >= 1)) throw new UsageError(`--window: ${s} is shorter than 1s`);
  return n;
}

/** Which series to keep: the namespace and Service the user asked about. */
export interface SeriesFilter {
  namespace?: string;
  service?: string;
}

export function keepSeries(labels: Record<string, string>, f: SeriesFilter): boolean {
  if (f.namespace !== undefined && (labels.dst_namespace ?? '') !== f.namespace) return false;
  if (f.service !== undefined && (labels.dst_service ?? '') !== f.service) return false;
  return true;
}

function promString(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

// The labels the table can group on or classify by; summing away the rest
// keeps the answer small whatever the mesh's size.
const GROUP_LABELS = [
  'direction',
  'dst_namespace',
  'dst_service',
  'dst_workload',
  'src_namespace',
  'src_workload',
  'route_kind',
  'route_namespace',
  'route_name',
  'route_rule',
  'backend',
  'peer_identity',
  'status_code',
  'status_class',
  'grpc_status',
] as const satisfies ReadonlyArray<(typeof REQUEST_LABELS)[number]>;

/** The two PromQL queries behind a table: request increases and latency bucket increases over the window. */
/** The resilience counters of outbound tables: retries, shed requests, ejections, by the labels they carry. */
export function promResilienceQueries(windowS: number, f: SeriesFilter): Record<string, string> {
  const matchers: string[] = [];
  if (f.namespace !== undefined) matchers.push(`dst_namespace=${promString(f.namespace)}`);
  if (f.service !== undefined) matchers.push(`dst_service=${promString(f.service)}`);
  const sel = `{${matchers.join(',')}}[${Math.round(windowS)}s]`;
  return {
    [RESILIENCE_METRICS.retries]: `sum by (dst_namespace, dst_service, route_kind, route_namespace, route_name, route_rule, backend) (increase(${RESILIENCE_METRICS.retries}${sel}))`,
    [RESILIENCE_METRICS.requestsShed]: `sum by (dst_namespace, dst_service, backend) (increase(${RESILIENCE_METRICS.requestsShed}${sel}))`,
    [RESILIENCE_METRICS.endpointEjections]: `sum by (dst_namespace, dst_service, backend) (increase(${RESILIENCE_METRICS.endpointEjections}${sel}))`,
  };
}

export function promQueries(windowS: number, direction: 'outbound' | 'inbound', f: SeriesFilter): { requests: string; buckets: string } {
  const matchers = [`direction=${promString(direction)}`];
  if (f.namespace !== undefined) matchers.push(`dst_namespace=${promString(f.namespace)}`);
  if (f.service !== undefined) matchers.push(`dst_service=${promString(f.service)}`);
  const sel = `{${matchers.join(',')}}[${Math.round(windowS)}s]`;
  const by = GROUP_LABELS.join(', ');
  return {
    requests: `sum by (${by}) (increase(${SIDECAR_METRICS.requestsTotal}${sel}))`,
    buckets: `sum by (${by}, le) (increase(${SIDECAR_METRICS.requestDuration}_bucket${sel}))`,
  };
}

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** Prometheus vector results as counter increases over the window (what aggregateIncreases reads). */
export function increasesFromProm(name: string, result: readonly PromSample[], windowS: number): Increase[] {
  const out: Increase[] = [];
  for (const r of result) {
    const value = Number(r.value[1]);
    if (!Number.isFinite(value)) continue;
    out.push({ name, labels: r.metric, value, seconds: windowS });
  }
  return out;
}

// ---- edges -------------------------------------------------------------------

function get(url: string, timeoutMs: number, init?: { method: string; body: string; contentType: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.request(
      u,
      {
        method: init?.method ?? 'GET',
        timeout: timeoutMs,
        agent: false,
        headers: init ? { 'content-type': init.contentType, 'content-length': Buffer.byteLength(init.body) } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(init?.body);
  });
}

function adminUrl(s: string): string {
  const withScheme = /^https?:\/\//.test(s) ? s : `http://${s}`;
  const u = new URL(withScheme);
  if (!u.port && !/^https?:\/\/[^/]+:\d+/.test(withScheme)) u.port = String(PORTS.admin);
  return u.origin;
}

interface ResourcesBody {
  registered?: Array<{ workload?: { podIP?: string; meshed?: boolean; namespace?: string; workload?: string }; state?: string }>;
}

/** The admin endpoints of the sidecars control knows (connected ones; meshed pods only). */
export async function discoverSidecars(controlAdmin: string): Promise<string[]> {
  const base = /^https?:\/\//.test(controlAdmin) ? controlAdmin : `http://${controlAdmin}`;
  let res: { status: number; body: string };
  try {
    res = await get(`${base}/resources`, 3000);
  } catch (e) {
    throw new Error(`cannot reach control's admin endpoint at ${base}: ${(e as Error).message} (is \`weft up\` running? else use --admin or --prometheus)`);
  }
  if (res.status !== 200) throw new Error(`${base}/resources answered ${res.status}`);
  const body = JSON.parse(res.body) as ResourcesBody;
  const ips = new Set<string>();
  for (const r of body.registered ?? []) {
    const w = r.workload;
    if (!w?.podIP || w.meshed === false || r.state === 'provisional') continue;
    ips.add(w.podIP);
  }
  return [...ips].sort().map((ip) => `http://${ip.includes(':') ? `[${ip}]` : ip}:${PORTS.admin}`);
}

export async function scrapeAll(targets: readonly string[], warn: (s: string) => void): Promise<TargetScrape[]> {
  const scrapes = await Promise.all(
    targets.map(async (t): Promise<TargetScrape | undefined> => {
      try {
        const res = await get(`${t}/metrics`, 3000);
        if (res.status !== 200) {
          warn(`${t}/metrics answered ${res.status}`);
          return undefined;
        }
        return { target: t, at: Date.now(), samples: parseExposition(res.body) };
      } catch (e) {
        warn(`cannot scrape ${t}/metrics: ${(e as Error).message}`);
        return undefined;
      }
    }),
  );
  return scrapes.filter((s): s is TargetScrape => s !== undefined);
}

function filterScrapes(scrapes: TargetScrape[], f: SeriesFilter): TargetScrape[] {
  return scrapes.map((s) => ({ ...s, samples: s.samples.filter((x) => keepSeries(x.labels, f)) }));
}

export async function promQuery(base: string, expr: string): Promise<PromSample[]> {
  const url = `${base.replace(/\/$/, '')}/api/v1/query`;
  let res: { status: number; body: string };
  try {
    res = await get(url, 10_000, { method: 'POST', body: new URLSearchParams({ query: expr }).toString(), contentType: 'application/x-www-form-urlencoded' });
  } catch (e) {
    throw new Error(`cannot reach Prometheus at ${base}: ${(e as Error).message}`);
  }
  let body: { status?: string; error?: string; data?: { resultType?: string; result?: PromSample[] } };
  try {
    body = JSON.parse(res.body) as typeof body;
  } catch {
    throw new Error(`Prometheus at ${base} answered ${res.status} without JSON`);
  }
  if (body.status !== 'success') throw new Error(`Prometheus query failed: ${body.error ?? res.status}: ${expr}`);
  if (body.data?.resultType !== 'vector') return [];
  return body.data.result ?? [];
}

/**
 * A prometheus.yml that scrapes the given sidecars and control every 5 s:
 * point a local Prometheus at it and import deploy/grafana into Grafana.
 */
export function scrapeConfigYaml(sidecars: readonly string[], controlAdmin: string): string {
  const hostPort = (u: string) => u.replace(/^https?:\/\//, '').replace(/\/$/, '');
  return [
    '# Generated by `weft stat --scrape-config` for the local mesh of `weft up`.',
    '# Pods get new loopback IPs when workloads change: generate it again then.',
    'global:',
    '  scrape_interval: 5s',
    '  evaluation_interval: 5s',
    'scrape_configs:',
    '  - job_name: weft-sidecars',
    '    static_configs:',
    `      - targets: [${sidecars.map((s) => JSON.stringify(hostPort(s))).join(', ')}]`,
    '  - job_name: weft-control',
    '    static_configs:',
    `      - targets: [${JSON.stringify(hostPort(controlAdmin))}]`,
    '',
  ].join('\n');
}

/** One table's rows from Prometheus. */
export async function rowsFromPrometheus(base: string, kind: StatKind, windowS: number, f: SeriesFilter): Promise<StatRow[]> {
  const d = dimensionsOf(kind);
  const q = promQueries(windowS, d.direction, f);
  const [reqs, buckets] = await Promise.all([promQuery(base, q.requests), promQuery(base, q.buckets)]);
  const incs = [
    ...increasesFromProm(SIDECAR_METRICS.requestsTotal, reqs, windowS),
    ...increasesFromProm(`${SIDECAR_METRICS.requestDuration}_bucket`, buckets, windowS),
  ];
  if (d.direction === 'outbound') {
    const rq = Object.entries(promResilienceQueries(windowS, f));
    const results = await Promise.all(rq.map(([, expr]) => promQuery(base, expr)));
    rq.forEach(([name], i) => incs.push(...increasesFromProm(name, results[i]!, windowS)));
  }
  return aggregateIncreases(incs, statOptions(kind));
}

export function statOptions(kind: StatKind): StatOptions {
  const d = dimensionsOf(kind);
  return { by: d.by, direction: d.direction, quantiles: [0.5, 0.95, 0.99] };
}

function rowJson(r: StatRow): Record<string, unknown> {
  const num = (x: number) => (Number.isFinite(x) ? x : null);
  return {
    ...r.keys,
    requests: num(r.requests),
    rps: num(r.rps),
    successRate: num(r.successRate),
    share: num(r.share),
    latency: Object.fromEntries(Object.entries(r.latency).map(([k, v]) => [k, num(v)])),
    retries: num(r.retries),
    retryRate: num(r.retryRate),
    shed: num(r.shed),
    ejections: num(r.ejections),
  };
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    help: { type: 'boolean', short: 'h' },
    namespace: { type: 'string', short: 'n' },
    admin: { type: 'string', multiple: true },
    'control-admin': { type: 'string' },
    prometheus: { type: 'string' },
    window: { type: 'string' },
    watch: { type: 'boolean', short: 'w' },
    output: { type: 'string', short: 'o' },
    'scrape-config': { type: 'boolean' },
  });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const [kindArg, serviceArg, ...extra] = p.positionals;
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')} (see weft stat --help)`);
  const kind = KINDS[kindArg ?? 'services'];
  if (!kind) throw new UsageError(`"${kindArg}" is not one of services, routes, backends, workloads`);
  const output = str(p, 'output') ?? 'table';
  if (output !== 'table' && output !== 'json') throw new UsageError(`--output: "${output}" is not table or json`);
  const prometheus = str(p, 'prometheus');
  const admins = list(p, 'admin');
  if (prometheus && admins.length > 0) throw new UsageError('--prometheus and --admin are two sources: give one');
  const windowS = parseWindow(str(p, 'window') ?? (prometheus ? '1m' : '10s'));
  const watch = bool(p, 'watch');
  const filter: SeriesFilter = {};
  const ns = str(p, 'namespace');
  if (ns !== undefined) filter.namespace = ns;
  if (serviceArg !== undefined) {
    if (kind === 'workloads') throw new UsageError('workloads takes no SERVICE');
    const i = serviceArg.indexOf('/');
    if (i >= 0) {
      filter.namespace = serviceArg.slice(0, i);
      filter.service = serviceArg.slice(i + 1);
    } else {
      filter.service = serviceArg;
    }
  }
  const d = dimensionsOf(kind);
  const warn = (s: string) => process.stderr.write(`weft stat: ${s}\n`);
  const print = (rows: StatRow[], source: string) => {
    if (output === 'json') {
      process.stdout.write(JSON.stringify({ kind, windowSeconds: windowS, source, rows: rows.map(rowJson) }) + '\n');
    } else {
      const title = `${d.direction} traffic, last ${windowS}s, from ${source}`;
      process.stdout.write(`${title}\n${renderStat(rows, { by: d.by, share: d.share, resilience: d.direction === 'outbound' })}\n`);
    }
  };

  let stop = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  if (watch) {
    void waitForSignal().then(() => {
      stop = true;
      wake?.();
    });
  }

  if (prometheus) {
    for (;;) {
      print(await rowsFromPrometheus(prometheus, kind, windowS, filter), prometheus);
      if (!watch) return 0;
      await sleep(windowS * 1000);
      if (stop) return 0;
    }
  }

  const controlAdmin = str(p, 'control-admin') ?? `127.0.0.1:${PORTS.controlAdmin}`;
  const targets = async () => (admins.length > 0 ? admins.map(adminUrl) : await discoverSidecars(controlAdmin));
  let ts = await targets();
  if (bool(p, 'scrape-config')) {
    process.stdout.write(scrapeConfigYaml(ts, controlAdmin));
    return 0;
  }
  if (ts.length === 0) {
    warn(`no sidecars registered with control at ${controlAdmin}`);
    return 1;
  }
  const source = admins.length > 0 ? `${ts.length} sidecars` : `${ts.length} sidecars registered with control`;
  let prev = filterScrapes(await scrapeAll(ts, warn), filter);
  for (;;) {
    await sleep(windowS * 1000);
    if (stop) return 0;
    const cur = filterScrapes(await scrapeAll(ts, warn), filter);
    if (cur.length === 0) {
      warn('no sidecar answered');
      if (!watch) return 1;
    }
    print(aggregate(prev, cur, statOptions(kind)), source);
    if (!watch) return 0;
    prev = cur;
    // Pods come and go: look them up again (a new one shows from its second scrape).
    if (admins.length === 0) ts = await targets().catch(() => ts);
  }
}

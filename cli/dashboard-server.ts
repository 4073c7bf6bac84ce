// The dashboard's server: serves the page (web/, copied to dist/web/ by the
// build: no asset from outside the machine) and GET /api/state, the JSON the
// page fetches every second. Two sources, as for `weft stat`:
//
//   - control's admin address: its /resources gives the inventory (Services,
//     routes, policies, registered workloads) and the sidecars, whose
//     /metrics are scraped every second; rates over the last `window`
//     seconds come from the oldest and newest scrape kept;
//   - a Prometheus: increase() over the window (cmd-stat's queries), with
//     the inventory from control when its admin address is given too.
//
// Either way the rows come from the aggregation of cli/stat-table.ts.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_TRUST_DOMAIN, SIDECAR_METRICS } from '../api/index.js';
import { formatHostPort, type HostPort } from './args.js';
import { discoverSidecars, increasesFromProm, promQueries, promQuery, scrapeAll } from './cmd-stat.js';
import { dashboardState, type DashboardRows, type DashboardState, type InventoryLike } from './dashboard-data.js';
import { aggregate, aggregateIncreases, type Increase, type StatOptions, type TargetScrape } from './stat-table.js';

export interface DashboardOptions {
  listen: HostPort;
  /** control's admin address (inventory; sidecars to scrape unless `admins`). */
  controlAdmin?: string | undefined;
  /** Sidecar admin URLs to scrape instead of control's registry. */
  admins?: string[] | undefined;
  prometheus?: string | undefined;
  /** Refresh period (default 1000 ms). */
  intervalMs?: number;
  /** Rate window in seconds (default 10 from sidecars, 30 from Prometheus). */
  windowSeconds?: number;
  trustDomain?: string;
  log?: (line: string) => void;
}

export interface DashboardHandle {
  url: string;
  /** The state the page shows now. */
  state(): DashboardState;
  close(): Promise<void>;
}

const ASSETS: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/dashboard.js': 'dashboard.js',
  '/dashboard.css': 'dashboard.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

const GROUPINGS: Record<keyof DashboardRows, StatOptions> = {
  services: { by: ['service'], direction: 'outbound', quantiles: [0.5, 0.99] },
  routes: { by: ['service', 'route'], direction: 'outbound', quantiles: [0.5, 0.99] },
  backends: { by: ['service', 'backend'], direction: 'outbound', quantiles: [0.5, 0.99] },
  edges: { by: ['source', 'service'], direction: 'outbound', quantiles: [0.5, 0.99] },
  serves: { by: ['service', 'workload'], direction: 'outbound', quantiles: [0.5, 0.99] },
  workloads: { by: ['workload'], direction: 'inbound', quantiles: [0.5, 0.99] },
};

function rowsOf(f: (opts: StatOptions) => ReturnType<typeof aggregate>): DashboardRows {
  const out = {} as DashboardRows;
  for (const k of Object.keys(GROUPINGS) as Array<keyof DashboardRows>) out[k] = f(GROUPINGS[k]);
  return out;
}

async function getJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

function loadAsset(file: string): Buffer {
  return readFileSync(new URL(`../web/${file}`, import.meta.url));
}

export async function startDashboard(o: DashboardOptions): Promise<DashboardHandle> {
  const intervalMs = o.intervalMs ?? 1000;
  const windowS = o.windowSeconds ?? (o.prometheus ? 30 : 10);
  const trustDomain = o.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const controlBase = o.controlAdmin ? (/^https?:\/\//.test(o.controlAdmin) ? o.controlAdmin : `http://${o.controlAdmin}`) : undefined;
  const source = o.prometheus ? `Prometheus ${o.prometheus}` : o.admins?.length ? `${o.admins.length} sidecars` : `sidecars registered with control at ${o.controlAdmin}`;
  const assets = new Map<string, Buffer>();
  for (const f of new Set(Object.values(ASSETS))) assets.set(f, loadAsset(f));

  let inventory: InventoryLike = {};
  const history: TargetScrape[][] = [];
  const problems: string[] = [];
  let current: DashboardState = dashboardState(rowsOf(() => []), {}, { source, windowSeconds: windowS, trustDomain });

  const refreshInventory = async (): Promise<void> => {
    if (!controlBase) return;
    try {
      inventory = (await getJson(`${controlBase}/resources`, 2000)) as InventoryLike;
    } catch (e) {
      problems.push(`control at ${controlBase}: ${(e as Error).message}`);
    }
  };

  const fromSidecars = async (): Promise<DashboardRows> => {
    let targets = o.admins ?? [];
    if (!o.admins?.length && o.controlAdmin) {
      try {
        targets = await discoverSidecars(o.controlAdmin);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    const scrapes = await scrapeAll(targets, () => undefined);
    history.push(scrapes);
    // Keep the scrapes of the window: rates are over (oldest, newest).
    while (history.length > Math.max(2, Math.round((windowS * 1000) / intervalMs) + 1)) history.shift();
    // Per sidecar, its oldest scrape in the window (a new pod counts from its first scrape).
    const oldest = new Map<string, TargetScrape>();
    for (const round of history.slice(0, -1)) for (const s of round) if (!oldest.has(s.target)) oldest.set(s.target, s);
    const prev = [...oldest.values()];
    return rowsOf((opts) => aggregate(prev, scrapes, opts));
  };

  const fromPrometheus = async (base: string): Promise<DashboardRows> => {
    const incs: Record<'outbound' | 'inbound', Increase[]> = { outbound: [], inbound: [] };
    await Promise.all(
      (['outbound', 'inbound'] as const).map(async (dir) => {
        const q = promQueries(windowS, dir, {});
        const [reqs, buckets] = await Promise.all([promQuery(base, q.requests), promQuery(base, q.buckets)]);
        incs[dir] = [
          ...increasesFromProm(SIDECAR_METRICS.requestsTotal, reqs, windowS),
          ...increasesFromProm(`${SIDECAR_METRICS.requestDuration}_bucket`, buckets, windowS),
        ];
      }),
    );
    return rowsOf((opts) => aggregateIncreases(incs[opts.direction === 'inbound' ? 'inbound' : 'outbound'], opts));
  };

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const refresh = async (): Promise<void> => {
    problems.length = 0;
    const [rows] = await Promise.all([
      (o.prometheus ? fromPrometheus(o.prometheus) : fromSidecars()).catch((e: Error) => {
        problems.push(e.message);
        return undefined;
      }),
      refreshInventory(),
    ]);
    const next = dashboardState(rows ?? rowsOf(() => []), inventory, { source, windowSeconds: windowS, trustDomain });
    next.errors.push(...problems);
    if (rows || !current.services.length) current = next;
    else current = { ...current, errors: next.errors, time: next.time };
  };
  const loop = () => {
    if (stopped) return;
    running = refresh().finally(() => {
      if (!stopped) timer = setTimeout(loop, intervalMs);
    });
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('GET only\n');
      return;
    }
    if (path === '/api/state') {
      const body = JSON.stringify(current);
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const file = ASSETS[path];
    const data = file ? assets.get(file) : undefined;
    if (!file || !data) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    // No script, style or font from anywhere but this server.
    res.writeHead(200, {
      'content-type': TYPES[file.split('.').pop()!] ?? 'application/octet-stream',
      'content-length': data.length,
      'cache-control': 'no-cache',
      'content-security-policy': "default-src 'self'; img-src 'self' data:",
    });
    res.end(data);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: o.listen.host, port: o.listen.port, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  loop();
  const a = server.address() as AddressInfo;
  return {
    url: `http://${formatHostPort({ host: o.listen.host, port: a.port })}/`,
    state: () => current,
    async close() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running.catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

// What the dashboard page shows, as one JSON document: pure functions from
// the stat rows (cli/stat-table.ts, the same aggregation as `weft stat`)
// and control's inventory (GET /resources) to Services with their routes,
// backends and policies, a topology of who calls whom, and the workloads
// with their identities.
import type { StatRow } from './stat-table.js';

export interface Traffic {
  rps: number | null;
  successRate: number | null;
  p50: number | null;
  p99: number | null;
  requests: number | null;
}

export interface DashboardService extends Traffic {
  name: string;
  /** Ports and appProtocols from the Service. */
  ports: string[];
  /** Live traffic per route (rule), with each one's share of the Service's. */
  routes: Array<Traffic & { route: string; share: number | null }>;
  /** Live traffic per backend: the split as it happens. */
  backends: Array<Traffic & { backend: string; share: number | null }>;
  /** Routes whose parentRef is this Service (kind namespace/name). */
  attachedRoutes: string[];
  /** Policies whose targetRef is this Service (kind namespace/name). */
  policies: string[];
}

export interface DashboardWorkload extends Traffic {
  name: string;
  identity: string;
  pods: string[];
  meshed: boolean;
}

export interface DashboardEdge {
  /** A workload calling a Service (kind 'calls'), or a Service's traffic reaching a workload ('serves'). */
  kind: 'calls' | 'serves';
  from: string;
  to: string;
  rps: number | null;
  successRate: number | null;
}

export interface DashboardState {
  time: string;
  source: string;
  windowSeconds: number;
  services: DashboardService[];
  workloads: DashboardWorkload[];
  edges: DashboardEdge[];
  errors: string[];
}

/** The stat rows behind one refresh (each from aggregateIncreases with its own grouping). */
export interface DashboardRows {
  services: StatRow[]; // by service
  routes: StatRow[]; // by service, route
  backends: StatRow[]; // by service, backend
  edges: StatRow[]; // by source, service (outbound)
  serves: StatRow[]; // by service, workload (outbound: the endpoints' workloads)
  workloads: StatRow[]; // by workload (inbound)
}

interface Meta {
  name?: string;
  namespace?: string;
}
interface Ref {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}
interface Resource {
  kind?: string;
  metadata?: Meta;
  spec?: {
    parentRefs?: Ref[];
    targetRefs?: Ref[];
    targetRef?: Ref;
    ports?: Array<{ port?: number; name?: string; appProtocol?: string; protocol?: string }>;
  };
}

export interface InventoryLike {
  resources?: unknown[];
  registered?: unknown[];
  errors?: unknown[];
}

const num = (x: number): number | null => (Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : null);

function traffic(r: StatRow | undefined): Traffic {
  if (!r) return { rps: 0, successRate: null, p50: null, p99: null, requests: 0 };
  return { rps: num(r.rps), successRate: num(r.successRate), p50: num(r.latency.p50 ?? NaN), p99: num(r.latency.p99 ?? NaN), requests: num(r.requests) };
}

function isService(ref: Ref): boolean {
  return (ref.kind ?? '') === 'Service' && (ref.group ?? '') === '';
}

export function dashboardState(rows: DashboardRows, inv: InventoryLike, o: { source: string; windowSeconds: number; trustDomain: string; now?: Date }): DashboardState {
  const resources = (inv.resources ?? []) as Resource[];
  const services = new Map<string, DashboardService>();
  const svc = (name: string): DashboardService => {
    let s = services.get(name);
    if (!s) {
      s = { name, ports: [], ...traffic(undefined), routes: [], backends: [], attachedRoutes: [], policies: [] };
      services.set(name, s);
    }
    return s;
  };
  for (const r of resources) {
    if (r.kind !== 'Service') continue;
    const s = svc(`${r.metadata?.namespace ?? 'default'}/${r.metadata?.name ?? ''}`);
    s.ports = (r.spec?.ports ?? []).map((p) => `${p.port ?? '?'}${p.appProtocol ? `/${p.appProtocol}` : ''}`);
  }
  for (const r of resources) {
    const ns = r.metadata?.namespace ?? 'default';
    const self = `${r.kind ?? '?'} ${ns}/${r.metadata?.name ?? ''}`;
    for (const ref of r.spec?.parentRefs ?? []) {
      if (!isService(ref)) continue;
      const s = services.get(`${ref.namespace ?? ns}/${ref.name ?? ''}`);
      if (s && !s.attachedRoutes.includes(self)) s.attachedRoutes.push(self);
    }
    const targets = [...(r.spec?.targetRefs ?? []), ...(r.spec?.targetRef ? [r.spec.targetRef] : [])];
    for (const ref of targets) {
      if (!isService(ref)) continue;
      const s = services.get(`${ref.namespace ?? ns}/${ref.name ?? ''}`);
      if (s && !s.policies.includes(self)) s.policies.push(self);
    }
  }
  const live = (name: string | undefined) => name !== undefined && name !== '-' && name !== '';
  for (const r of rows.services) if (live(r.keys.service)) Object.assign(svc(r.keys.service!), traffic(r));
  for (const r of rows.routes) {
    if (!live(r.keys.service)) continue;
    svc(r.keys.service!).routes.push({ route: r.keys.route ?? '', share: num(r.share), ...traffic(r) });
  }
  for (const r of rows.backends) {
    if (!live(r.keys.service)) continue;
    svc(r.keys.service!).backends.push({ backend: r.keys.backend ?? '', share: num(r.share), ...traffic(r) });
  }

  const workloads = new Map<string, DashboardWorkload>();
  for (const e of (inv.registered ?? []) as Array<Record<string, unknown>>) {
    const w = ((e.workload && typeof e.workload === 'object' ? e.workload : e) as Record<string, unknown>);
    const ns = String(w.namespace ?? '');
    const name = `${ns}/${String(w.workload ?? '')}`;
    let d = workloads.get(name);
    if (!d) {
      d = { name, identity: `spiffe://${o.trustDomain}/ns/${ns}/sa/${String(w.serviceAccount ?? 'default')}`, pods: [], meshed: w.meshed !== false, ...traffic(undefined) };
      workloads.set(name, d);
    }
    if (w.podIP) d.pods.push(`${String(w.podName || w.podIP)} ${String(w.podIP)}`);
  }
  for (const r of rows.workloads) {
    const d = r.keys.workload && workloads.get(r.keys.workload);
    if (d) Object.assign(d, traffic(r));
  }
  for (const d of workloads.values()) d.pods.sort();

  const edges: DashboardEdge[] = [
    ...rows.edges
      .filter((r) => live(r.keys.source) && live(r.keys.service) && r.rps > 0)
      .map((r): DashboardEdge => ({ kind: 'calls', from: r.keys.source!, to: r.keys.service!, rps: num(r.rps), successRate: num(r.successRate) })),
    ...rows.serves
      .filter((r) => live(r.keys.service) && live(r.keys.workload) && r.rps > 0)
      .map((r): DashboardEdge => ({ kind: 'serves', from: r.keys.service!, to: r.keys.workload!, rps: num(r.rps), successRate: num(r.successRate) })),
  ];

  const errors = ((inv.errors ?? []) as Array<Record<string, unknown>>).map((e) =>
    [e.resource, e.field, e.message].filter((x) => typeof x === 'string' && x !== '').join(': ') || JSON.stringify(e),
  );
  return {
    time: (o.now ?? new Date()).toISOString(),
    source: o.source,
    windowSeconds: o.windowSeconds,
    services: [...services.values()].sort((a, b) => a.name.localeCompare(b.name)),
    workloads: [...workloads.values()].sort((a, b) => a.name.localeCompare(b.name)),
    edges,
    errors,
  };
}

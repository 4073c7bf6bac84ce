// From control's messages to what the hot path reads: validate, build every
// matcher, picker, filter list and label cache ONCE, then swap atomically (one
// Map.set per Service; JS is single-threaded so a request sees the old or the
// new config, never a mix). A message that fails validation or building is
// NACKed by the caller and the previous config stays.
import type { RetryPolicy } from '../../api/index.js';
import type { BackendConfig, CompiledRule, DirectoryEntry, Endpoint, PortConfig, RouteRef, ServiceConfig, SessionConfig, AppProtocol } from '../../api/index.js';
import type { DirectoryMsg, ServiceUpdateMsg } from '../../api/index.js';
import { spiffeId } from '../../certs/index.js';
import { buildRouteMatcher, MatchBuildError, type RouteMatcher } from '../route/route-matcher.js';
import { compileFilters, type CompiledFilters, type CompiledHeaderEdits } from '../route/filters.js';
import { P2cEwma, newBalanced, type Balanced } from '../balance/balancer-p2c-ewma.js';
import { validateServiceConfig } from './config-validate.js';
import { newAccrualState, type AccrualState } from '../balance/failure-accrual.js';
import { peerLabels, SeriesCache, type PeerLabels, type SidecarMetrics } from '../admin/metrics.js';
import { buildBackendTls, type BackendTlsOrigin } from '../hop/backend-tls.js';

export interface SelfInfo {
  namespace: string;
  workload: string;
  serviceAccount: string;
  trustDomain: string;
}

/** One endpoint as the data path uses it; the same object survives config swaps while the endpoint is unchanged. */
export interface EndpointRt extends Balanced {
  key: string;
  ip: string;
  port: number;
  identity: { namespace: string; serviceAccount: string } | undefined;
  /** SPIFFE ID the peer must present (meshed endpoints). */
  spiffe: string | undefined;
  workload: string;
  pod: string;
  peer: PeerLabels;
  /** Dispatcher of this endpoint, attached on first use by endpoint-pool. */
  dispatcher: unknown;
  /** Failure accrual (failure-accrual.ts): carried over with the endpoint across config swaps. */
  accrual: AccrualState;
}

export interface BuiltBackend {
  key: string;
  /** "namespace/name" for labels. */
  name: string;
  config: BackendConfig;
  balancer: P2cEwma<EndpointRt>;
  /**
   * BackendTLSPolicy present: paths that cannot originate TLS (opaque TCP)
   * refuse with this (503), never plaintext; HTTP/1, HTTP/2 and mirrors use
   * `tlsOrigin` when the policy is valid (then this only says why not TCP).
   */
  tlsRefusal: string | undefined;
  /** TLS origination built from a valid BackendTLSPolicy (backend-tls.ts). */
  tlsOrigin: BackendTlsOrigin | undefined;
  session: SessionConfig | undefined;
}

export interface BuiltRouteBackend {
  backend: BuiltBackend | undefined;
  invalid: { status: number; reason: string } | undefined;
  filters: CompiledFilters;
  /** Rule-level then backend-level ResponseHeaderModifiers; undefined when none. */
  responseEdits: CompiledHeaderEdits[] | undefined;
  series: SeriesCache;
}

export class Weighted<T> {
  private readonly cum: number[] = [];
  readonly total: number;
  constructor(readonly items: T[], weights: number[]) {
    let t = 0;
    for (const w of weights) this.cum.push((t += Math.max(0, w)));
    this.total = t;
  }
  pick(rand: () => number = Math.random): T | undefined {
    const n = this.items.length;
    if (n === 1) return this.total > 0 ? this.items[0] : undefined;
    if (this.total <= 0) return undefined;
    const r = rand() * this.total;
    for (let i = 0; i < n; i++) if (r < this.cum[i]!) return this.items[i];
    return this.items[n - 1];
  }
}

export interface BuiltRule {
  index: number;
  route: RouteRef | undefined;
  filters: CompiledFilters;
  backends: Weighted<BuiltRouteBackend>;
  /** Series for responses produced before a backend is chosen (fixed, redirect, 404...). */
  series: SeriesCache;
  fixed: { status: number; reason: string } | undefined;
  requestMs: number;
  backendRequestMs: number;
  /** The rule's retry policy (CompiledRule.retry); absent: safe retries only. */
  retry: RetryPolicy | undefined;
  /** Hook for session persistence (session-cookie.ts / session-header.ts). */
  session: SessionConfig | undefined;
  /** "namespace/name" of the Service and its session-token secret (base64), for the session hook. */
  serviceKey: string;
  sessionSecret: string;
  mirrors: BuiltBackend[];
}

export interface BuiltPort {
  port: number;
  appProtocol: AppProtocol;
  routeKind: PortConfig['routeKind'];
  matcher: RouteMatcher | undefined;
  rules: BuiltRule[];
  /** routeKind 'none': everything goes to the Service's own endpoints. */
  defaultRule: BuiltRule | undefined;
  /** Series for 404 (no rule matched). */
  noRoute: SeriesCache;
}

export interface BuiltService {
  key: string;
  version: string;
  config: ServiceConfig;
  ports: Map<number, BuiltPort>;
  backends: Map<string, BuiltBackend>;
  endpoints: Map<string, EndpointRt>;
}

export interface BuiltDirectory {
  version: string;
  entries: DirectoryEntry[];
  byName: Map<string, DirectoryEntry>;
  /** "clusterIP:port" → entry. */
  byAddr: Map<string, DirectoryEntry>;
  trustBundle: string;
}

function endpointKey(e: Endpoint): string {
  return `${e.ip}:${e.port}|${e.identity ? `${e.identity.namespace}/${e.identity.serviceAccount}` : ''}`;
}

export interface BuildContext {
  self: SelfInfo;
  metrics: SidecarMetrics;
}

function baseLabels(ctx: BuildContext, cfg: ServiceConfig, port: number, route: RouteRef | undefined, backend: string) {
  return {
    direction: 'outbound',
    src_namespace: ctx.self.namespace,
    src_workload: ctx.self.workload,
    src_service_account: ctx.self.serviceAccount,
    dst_namespace: cfg.namespace,
    dst_workload: '',
    dst_service_account: '',
    dst_service: cfg.name,
    dst_port: String(port),
    route_kind: route?.kind ?? '',
    route_namespace: route?.namespace ?? '',
    route_name: route?.name ?? '',
    route_rule: route?.ruleName ?? '',
    backend,
    grpc_status: '',
    tls: 'false',
    peer_identity: '',
  };
}

export function buildEndpoint(e: Endpoint, trustDomain: string): EndpointRt {
  const spiffe = e.identity ? spiffeId(e.identity.namespace, e.identity.serviceAccount, trustDomain) : undefined;
  return {
    ...newBalanced(e.ready),
    key: endpointKey(e),
    ip: e.ip,
    port: e.port,
    identity: e.identity ? { namespace: e.identity.namespace, serviceAccount: e.identity.serviceAccount } : undefined,
    spiffe,
    workload: e.workload ?? '',
    pod: e.pod ?? '',
    peer: peerLabels({
      namespace: e.identity?.namespace ?? '',
      workload: e.workload ?? '',
      serviceAccount: e.identity?.serviceAccount ?? '',
      identity: spiffe ?? '',
      tls: !!spiffe,
    }),
    dispatcher: undefined,
    accrual: newAccrualState(),
  };
}

/** Builds everything the hot path needs for one Service. Throws MatchBuildError on a bad pattern. */
export function buildService(cfg: ServiceConfig, version: string, prev: BuiltService | undefined, ctx: BuildContext): BuiltService {
  const endpoints = new Map<string, EndpointRt>();
  const backends = new Map<string, BuiltBackend>();
  for (const [key, b] of Object.entries(cfg.backends)) {
    const eps: EndpointRt[] = [];
    for (const e of b.endpoints) {
      const k = endpointKey(e);
      let rt = endpoints.get(k) ?? prev?.endpoints.get(k);
      if (rt) rt.ready = e.ready;
      else rt = buildEndpoint(e, ctx.self.trustDomain);
      endpoints.set(k, rt);
      eps.push(rt);
    }
    const prevOrigin = prev?.backends.get(key)?.tlsOrigin;
    const tls = b.tls ? buildBackendTls(b.tls, prevOrigin, (socket, peer, on) => ctx.metrics.connection(socket, 'outbound', peer, on)) : undefined;
    if (prevOrigin && prevOrigin !== tls?.origin) prevOrigin.close();
    backends.set(key, {
      key,
      name: `${b.namespace}/${b.name}`,
      config: b,
      balancer: new P2cEwma(eps),
      tlsRefusal: tls ? (tls.refusal ?? `BackendTLSPolicy ${b.tls!.policy}: TLS origination covers HTTP only; opaque TCP to this backend is refused`) : undefined,
      tlsOrigin: tls?.origin,
      session: b.session,
    });
  }

  const buildRule = (r: CompiledRule | undefined, index: number, portCfg: PortConfig): BuiltRule => {
    const route = r?.route;
    const wbs = r ? r.backends : [{ backend: portCfg.defaultBackend, weight: 1, filters: [] }];
    const items: BuiltRouteBackend[] = [];
    const weights: number[] = [];
    const filters = compileFilters(r?.filters);
    for (const wb of wbs) {
      const backend = wb.invalid ? undefined : backends.get(wb.backend);
      const bf = compileFilters(wb.filters);
      const responseEdits = [...filters.response, ...bf.response];
      items.push({
        backend,
        invalid: wb.invalid ?? (backend ? undefined : { status: 500, reason: `backend ${wb.backend || '(unresolved)'} not found` }),
        filters: bf,
        responseEdits: responseEdits.length ? responseEdits : undefined,
        series: new SeriesCache(ctx.metrics, baseLabels(ctx, cfg, portCfg.port, route, backend?.name ?? wb.backend), 'dst'),
      });
      weights.push(wb.weight);
    }
    let fixed = r?.fixed;
    if (!fixed && !filters.redirect) {
      if (items.length === 0) fixed = filters.empty ? { status: 404, reason: 'rule has no backendRefs' } : { status: 500, reason: 'rule has no backendRefs' };
    }
    const mirrors: BuiltBackend[] = [];
    for (const m of filters.mirrors) {
      const b = backends.get(m);
      if (b) mirrors.push(b);
    }
    return {
      index,
      route,
      filters,
      backends: new Weighted(items, weights),
      series: new SeriesCache(ctx.metrics, baseLabels(ctx, cfg, portCfg.port, route, ''), 'dst'),
      fixed,
      retry: r?.retry,
      requestMs: r?.timeouts?.requestMs ?? 0,
      backendRequestMs: r?.timeouts?.backendRequestMs ?? 0,
      session: r?.session,
      serviceKey: cfg.service,
      sessionSecret: cfg.sessionSecret ?? '',
      mirrors,
    };
  };

  const ports = new Map<number, BuiltPort>();
  cfg.ports.forEach((p, pi) => {
    let matcher: RouteMatcher | undefined;
    if (p.routeKind !== 'none') {
      try {
        matcher = buildRouteMatcher(p.matches);
      } catch (e) {
        if (e instanceof MatchBuildError) throw new MatchBuildError(`ports[${pi}].${e.message}`);
        throw e;
      }
    }
    ports.set(p.port, {
      port: p.port,
      appProtocol: p.appProtocol,
      routeKind: p.routeKind,
      matcher,
      rules: p.rules.map((r, i) => buildRule(r, i, p)),
      defaultRule: p.routeKind === 'none' ? buildRule(undefined, -1, p) : undefined,
      noRoute: new SeriesCache(ctx.metrics, baseLabels(ctx, cfg, p.port, undefined, ''), 'dst'),
    });
  });
  return { key: cfg.service, version, config: cfg, ports, backends, endpoints };
}

export function buildDirectory(msg: DirectoryMsg): BuiltDirectory {
  const entries: DirectoryEntry[] = [];
  const byName = new Map<string, DirectoryEntry>();
  const byAddr = new Map<string, DirectoryEntry>();
  for (const s of msg.services ?? []) {
    const entry: DirectoryEntry = {
      namespace: s.namespace,
      name: s.name,
      clusterIP: s.cluster_ip,
      ports: (s.ports ?? []).map((p) => ({ name: p.name, port: p.port, targetPort: p.target_port, appProtocol: (p.app_protocol || '') as AppProtocol })),
      meshed: s.meshed,
    };
    entries.push(entry);
    byName.set(`${s.namespace}/${s.name}`, entry);
    if (s.cluster_ip && s.cluster_ip !== 'None') for (const p of entry.ports) byAddr.set(`${s.cluster_ip}:${p.port}`, entry);
  }
  return { version: msg.version, entries, byName, byAddr, trustBundle: msg.trust_bundle };
}

/** What the sidecar knows of the mesh; every field is swapped whole. */
export class MeshState {
  directory: BuiltDirectory | undefined;
  readonly services = new Map<string, BuiltService>();
  /** Pod IP → identity of meshed endpoints seen in any subscribed Service. */
  podIdentities = new Map<string, EndpointRt>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private directoryWaiters: Array<() => void> = [];

  constructor(private readonly ctx: BuildContext) {}

  applyDirectory(msg: DirectoryMsg): string | undefined {
    if (!Array.isArray(msg.services)) return 'directory.services: must be an array';
    this.directory = buildDirectory(msg);
    this.ctx.metrics.setConfigVersion('directory', msg.version);
    this.ctx.metrics.applied.inc({ resource_type: 'directory' });
    const w = this.directoryWaiters;
    this.directoryWaiters = [];
    for (const f of w) f();
    return undefined;
  }

  /** Applies one ServiceUpdate; returns an error message to NACK with, or undefined. */
  applyUpdate(msg: ServiceUpdateMsg): string | undefined {
    const key = msg.service;
    if (msg.removed) {
      this.services.delete(key);
      this.reindexPods();
      this.ctx.metrics.setConfigVersion(`service:${key}`, msg.version);
      this.wake(key);
      return undefined;
    }
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(msg.config_json).toString('utf8'));
    } catch (e) {
      return this.nack(`service ${key} version ${msg.version}: config_json is not JSON: ${(e as Error).message}`);
    }
    const v = validateServiceConfig(raw, key);
    if (!v.ok) return this.nack(`service ${key} version ${msg.version}: ${v.error.field}: ${v.error.message}`);
    let built: BuiltService;
    try {
      built = buildService(v.config, msg.version, this.services.get(key), this.ctx);
    } catch (e) {
      return this.nack(`service ${key} version ${msg.version}: ${(e as Error).message}`);
    }
    this.services.set(key, built);
    this.reindexPods();
    this.ctx.metrics.setConfigVersion(`service:${key}`, msg.version);
    this.ctx.metrics.applied.inc({ resource_type: 'service' });
    this.wake(key);
    return undefined;
  }

  private nack(err: string): string {
    this.ctx.metrics.nacked.inc({ resource_type: 'service' });
    return err;
  }

  private reindexPods(): void {
    const m = new Map<string, EndpointRt>();
    for (const s of this.services.values()) for (const e of s.endpoints.values()) if (e.identity) m.set(e.ip, e);
    this.podIdentities = m;
  }

  private wake(key: string): void {
    const w = this.waiters.get(key);
    if (!w) return;
    this.waiters.delete(key);
    for (const f of w) f();
  }

  /** Waits (bounded) until the Service's first config arrives. */
  waitFor(key: string, ms: number): Promise<BuiltService | undefined> {
    const have = this.services.get(key);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => {
      let list = this.waiters.get(key);
      if (!list) this.waiters.set(key, (list = []));
      const timer = setTimeout(() => {
        const l = this.waiters.get(key);
        if (l) {
          const i = l.indexOf(done);
          if (i >= 0) l.splice(i, 1);
        }
        resolve(this.services.get(key));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(this.services.get(key));
      };
      list.push(done);
    });
  }

  waitForDirectory(ms: number): Promise<boolean> {
    if (this.directory) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(!!this.directory), ms);
      this.directoryWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

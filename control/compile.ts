// compile(snapshot): the pure heart of control. Typed, validated resources in;
// the service directory, a view function (Service × consumer namespace →
// ServiceConfig), route/policy status and semantic errors out.
import type { DefaultInboundPolicy, DirectoryEntry, InboundAuthzConfig, Service, ServiceConfig } from '../api/index.js';
import { DEFAULT_TRUST_DOMAIN } from '../api/index.js';
import { compileAuthz, type PodRef } from './compile-authz.js';
import { EndpointIndex, directoryEntry } from './compile-endpoints.js';
import { compilePolicies, sessionConfig } from './compile-policies.js';
import { analyzeRoute, attachments, type Attachment, type RouteInfo } from './compile-routes.js';
import { routeStatuses } from './compile-status.js';
import { compileTrafficPolicies } from './compile-traffic-policy.js';
import type { CompileResult, ConfigError, ResourceStatus, StoreSnapshot } from './types.js';
import { buildView, type ViewContext } from './view.js';

/** Attachments by Service port, then by the route's namespace (its producer/consumer group). */
export type PortGroups = Map<string, Map<string, Attachment[]>>;

export interface CompileOptions {
  /** SPIFFE trust domain of the mesh (AuthorizationPolicy ServiceAccount sources). */
  trustDomain?: string;
  /** Mesh-wide default inbound policy (default all-unauthenticated). */
  defaultInboundPolicy?: DefaultInboundPolicy;
}

export function compile(snap: StoreSnapshot, opts: CompileOptions = {}): CompileResult {
  const services = new Map<string, Service>();
  for (const s of snap.services) services.set(`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`, s);
  const idx = new EndpointIndex(snap);

  const directory: DirectoryEntry[] = [...services.values()]
    .map((s) => directoryEntry(s, idx))
    .sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
  const meshed = new Map(directory.map((d) => [`${d.namespace}/${d.name}`, d.meshed]));

  const configMaps = new Map<string, Record<string, string>>();
  for (const c of snap.configMaps) configMaps.set(`${c.metadata.namespace ?? 'default'}/${c.metadata.name}`, c.data ?? {});
  const policies = compilePolicies(snap.backendLBPolicies, snap.backendTLSPolicies, services, configMaps, (k) => meshed.get(k) ?? false);

  const traffic = compileTrafficPolicies(snap.xBackendTrafficPolicies, services);

  const res = { services };
  const infos: RouteInfo[] = [
    ...snap.httpRoutes.map((r) => analyzeRoute('HTTPRoute', r, res)),
    ...snap.grpcRoutes.map((r) => analyzeRoute('GRPCRoute', r, res)),
  ];
  const allAtts = infos.flatMap((i) => attachments(i, services));

  // A route takes part in routing when its parent resolved and at least one of
  // its rules survived (or it has no rules at all: it then rejects everything).
  const live = (a: Attachment) => !a.noMatch && (a.info.rules.length === 0 || a.info.rules.some((r) => !r.dropped));
  const groups: PortGroups = new Map();
  const seen = new Set<string>();
  // "svc:port|route namespace" where a GRPCRoute takes part: HTTPRoutes there lose (GEP-1426).
  const grpcHeld = new Set<string>();
  for (const a of allAtts) {
    if (!live(a)) continue;
    for (const port of a.ports) {
      const pk = `${a.svcKey}:${port}`;
      // One entry per route per port, even if two parentRefs select the same port.
      const once = `${pk}|${a.info.kind}/${a.info.key}`;
      if (seen.has(once)) continue;
      seen.add(once);
      let byNs = groups.get(pk);
      if (!byNs) groups.set(pk, (byNs = new Map()));
      const list = byNs.get(a.info.namespace) ?? [];
      list.push(a);
      byNs.set(a.info.namespace, list);
      if (a.info.kind === 'GRPCRoute') grpcHeld.add(`${pk}|${a.info.namespace}`);
    }
  }

  const authz = compileAuthz(
    { authorizationPolicies: snap.authorizationPolicies ?? [], namespaces: snap.namespaces, workloads: snap.workloads, registered: snap.registered },
    { trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN, defaultInboundPolicy: opts.defaultInboundPolicy ?? 'all-unauthenticated' },
  );
  const errors: ConfigError[] = [...policies.errors, ...authz.errors];
  const routeStatus = routeStatuses(infos, allAtts, grpcHeld, errors);
  const statuses: ResourceStatus[] = [...routeStatus, ...policies.statuses, ...authz.statuses, ...traffic.statuses].sort((a, b) =>
    a.kind !== b.kind ? (a.kind < b.kind ? -1 : 1) : a.namespace !== b.namespace ? (a.namespace < b.namespace ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );

  const ctx: ViewContext = {
    services,
    idx,
    groups,
    policies,
    traffic,
    sessionKey: snap.sessionKey,
    ruleCtx: { res, lbSession: (k) => policies.lbSession(k), sessionConfig },
  };
  const cache = new Map<string, ServiceConfig | undefined>();
  const inboundCache = new Map<string, InboundAuthzConfig>();
  return {
    directory,
    statuses,
    errors,
    authz,
    inbound(pod: PodRef): InboundAuthzConfig {
      const ck = JSON.stringify([pod.namespace, pod.name, pod.workload, pod.podIP, pod.labels]);
      let v = inboundCache.get(ck);
      if (!v) inboundCache.set(ck, (v = authz.forPod(pod)));
      return v;
    },
    view(service: string, consumerNamespace: string): ServiceConfig | undefined {
      const ck = `${service}\u0000${consumerNamespace}`;
      if (cache.has(ck)) return cache.get(ck);
      const v = buildView(ctx, service, consumerNamespace);
      cache.set(ck, v);
      return v;
    },
  };
}

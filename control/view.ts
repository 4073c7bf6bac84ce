// view(service, consumer namespace) → ServiceConfig: which routes govern
// each Service port for callers in that namespace, compiled rules sorted by
// precedence, and every backend they name with its endpoints and policies.
import { createHmac } from 'node:crypto';
import type { BackendConfig, CompiledRule, PortConfig, Service, ServiceConfig } from '../api/index.js';
import { backendKey } from '../api/index.js';
import { EndpointIndex, clusterIPOf, normalizeAppProtocol, numericTargetPort } from './compile-endpoints.js';
import type { PolicyIndex } from './compile-policies.js';
import type { TrafficPolicyIndex } from './compile-traffic-policy.js';
import { compileRule, sortMatches, type Attachment, type PendingMatch, type RouteKind, type RuleContext } from './compile-routes.js';

export interface ViewContext {
  services: Map<string, Service>;
  idx: EndpointIndex;
  /** "ns/name:port" → route namespace → attachments. */
  groups: Map<string, Map<string, Attachment[]>>;
  policies: PolicyIndex;
  /** XBackendTrafficPolicy retry budgets (absent in older callers: defaults apply). */
  traffic?: TrafficPolicyIndex;
  sessionKey: string;
  ruleCtx: RuleContext;
}

/** HMAC-SHA256(mesh session key, "ns/name"), base64: the Service's session-token secret. */
export function sessionSecret(sessionKey: string, service: string): string {
  return createHmac('sha256', Buffer.from(sessionKey, 'base64')).update(service).digest('base64');
}

/**
 * The routes that govern (service port, consumer namespace): the consumer
 * namespace's own routes for this port if it has any (GEP-1426: requests from
 * a namespace with consumer routes use those), else the producer routes; and
 * of those only one route type, GRPCRoute over HTTPRoute (GEP-1426 §Route types).
 */
export function governing(
  groups: ViewContext['groups'],
  svcNs: string,
  svcKey: string,
  port: number,
  consumerNs: string,
): { kind: RouteKind | 'none'; atts: Attachment[]; group: string } {
  const byNs = groups.get(`${svcKey}:${port}`);
  const consumer = consumerNs !== svcNs ? byNs?.get(consumerNs) : undefined;
  const group = consumer && consumer.length > 0 ? consumerNs : svcNs;
  const atts = byNs?.get(group) ?? [];
  if (atts.length === 0) return { kind: 'none', atts: [], group };
  const kind: RouteKind = atts.some((a) => a.info.kind === 'GRPCRoute') ? 'GRPCRoute' : 'HTTPRoute';
  return { kind, atts: atts.filter((a) => a.info.kind === kind), group };
}

export function buildView(ctx: ViewContext, service: string, consumerNamespace: string): ServiceConfig | undefined {
  const svc = ctx.services.get(service);
  if (!svc) return undefined;
  const ns = svc.metadata.namespace ?? 'default';
  const name = svc.metadata.name;
  const ports: PortConfig[] = [];
  const wanted = new Set<string>();
  for (const sp of svc.spec.ports ?? []) {
    if (sp.protocol && sp.protocol !== 'TCP') continue;
    const def = backendKey(ns, name, sp.port);
    wanted.add(def);
    const g = governing(ctx.groups, ns, service, sp.port, consumerNamespace);
    const rules: CompiledRule[] = [];
    const pending: Array<PendingMatch & { rule: number }> = [];
    for (const a of g.atts) {
      for (const ri of a.info.rules) {
        if (ri.dropped) continue;
        const id = rules.length;
        const rule = compileRule(a.info, ri.index, sp.port, ctx.ruleCtx);
        rules.push(rule);
        for (const m of ri.matches) pending.push({ ...m, rule: id });
        for (const b of rule.backends) if (b.backend) wanted.add(b.backend);
        for (const f of [...rule.filters, ...rule.backends.flatMap((b) => b.filters)]) {
          if (f.type === 'RequestMirror') wanted.add(f.backend);
        }
      }
    }
    const pc: PortConfig = {
      port: sp.port,
      targetPort: numericTargetPort(sp) ?? sp.port,
      appProtocol: normalizeAppProtocol(sp),
      routeKind: g.kind,
      defaultBackend: def,
      rules,
      matches: g.kind === 'none' ? [] : sortMatches(g.kind, pending),
    };
    if (sp.name) pc.name = sp.name;
    ports.push(pc);
  }
  const backends: Record<string, BackendConfig> = {};
  for (const key of [...wanted].sort()) {
    const b = backendConfig(ctx, key);
    if (b) backends[key] = b;
  }
  return {
    service,
    namespace: ns,
    name,
    consumerNamespace,
    clusterIP: clusterIPOf(svc),
    ports,
    backends,
    sessionSecret: sessionSecret(ctx.sessionKey, service),
  };
}

function backendConfig(ctx: ViewContext, key: string): BackendConfig | undefined {
  const colon = key.lastIndexOf(':');
  const svcKey = key.slice(0, colon);
  const port = Number(key.slice(colon + 1));
  const svc = ctx.services.get(svcKey);
  const sp = svc?.spec.ports?.find((p) => p.port === port);
  if (!svc || !sp) return undefined;
  const [namespace, name] = svcKey.split('/') as [string, string];
  const b: BackendConfig = { key, namespace, name, port, endpoints: ctx.idx.endpoints(svc, sp) };
  const tls = ctx.policies.tls(svcKey, port);
  if (tls) b.tls = tls;
  const lb = ctx.policies.lbSession(svcKey);
  if (lb) b.session = ctx.ruleCtx.sessionConfig(lb.policy, `BackendLBPolicy/${lb.name}/${key}`, 'BackendLBPolicy');
  const budget = ctx.traffic?.retryBudget(svcKey);
  if (budget) b.retryBudget = budget;
  return b;
}

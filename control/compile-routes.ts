// HTTPRoute / GRPCRoute → attachments to Service ports, match entries with
// their precedence keys, compiled rules, and what status must say about them.
import { RE2JS } from 're2js';
import type {
  BackendObjectReference,
  CompiledRule,
  Filter,
  GRPCRoute,
  GRPCRouteFilter,
  GRPCRouteMatch,
  GRPCRouteRule,
  HTTPPathModifier,
  HTTPRoute,
  HTTPRouteFilter,
  HTTPRouteRule,
  HeaderEdits,
  HTTPHeaderFilter,
  MatchEntry,
  ParentReference,
  PathModifier,
  Service,
  ValueMatch,
  WeightedBackend,
} from '../api/index.js';
import { backendKey } from '../api/index.js';
import { parseDuration } from './duration.js';
import { retryPolicyOf } from './compile-retry.js';
import { compareGRPCMatch, compareHTTPMatch, createdMs, prefixLength, type GRPCMatchKey, type HTTPMatchKey } from './precedence.js';
import { RouteReason } from './status.js';

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';
type AnyRule = HTTPRouteRule | GRPCRouteRule;
type AnyFilter = HTTPRouteFilter | GRPCRouteFilter;

/** A match entry before it is given its rule id for one port. */
export interface PendingMatch {
  entry: Omit<MatchEntry, 'rule'>;
  http?: HTTPMatchKey;
  grpc?: GRPCMatchKey;
}

export interface RuleInfo {
  index: number;
  name?: string;
  /** Why the rule was dropped (UnsupportedValue), or undefined. */
  dropped?: string;
  matches: PendingMatch[];
}

export interface RefProblem {
  reason: string;
  message: string;
}

export interface RouteInfo {
  kind: RouteKind;
  route: HTTPRoute | GRPCRoute;
  namespace: string;
  name: string;
  key: string; // "ns/name"
  created: number;
  rules: RuleInfo[];
  refProblems: RefProblem[];
  /** Rules that answer 500 because of an unsupported filter. */
  filterProblems: string[];
}

export interface Resolver {
  services: Map<string, Service>;
}

/** Resolve a backendRef (or mirror backendRef) to a backend key, or say why not. */
export function resolveBackend(
  ref: BackendObjectReference,
  routeNs: string,
  r: Resolver,
): { key: string } | RefProblem {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  const ns = ref.namespace ?? routeNs;
  if (!((group === '' || group === 'core') && kind === 'Service')) {
    return { reason: RouteReason.InvalidKind, message: `backendRef ${group || 'core'}/${kind} ${ns}/${ref.name}: only Services are supported` };
  }
  const svc = r.services.get(`${ns}/${ref.name}`);
  if (!svc) return { reason: RouteReason.BackendNotFound, message: `Service ${ns}/${ref.name} not found` };
  if (svc.spec.type === 'ExternalName') {
    // GEP-1426 / BackendObjectReference: implementations SHOULD NOT support ExternalName.
    return { reason: RouteReason.UnsupportedValue, message: `Service ${ns}/${ref.name} is of type ExternalName, which mesh routes do not support` };
  }
  if (ref.port === undefined) return { reason: RouteReason.UnsupportedValue, message: `backendRef to Service ${ns}/${ref.name} has no port` };
  if (!(svc.spec.ports ?? []).some((p) => p.port === ref.port)) {
    return { reason: RouteReason.BackendNotFound, message: `Service ${ns}/${ref.name} has no port ${ref.port}` };
  }
  // Cross-namespace backendRefs need no ReferenceGrant in a mesh (GEP-1426 §Namespace boundaries).
  return { key: backendKey(ns, ref.name, ref.port) };
}

function isProblem(x: { key: string } | RefProblem): x is RefProblem {
  return (x as RefProblem).reason !== undefined;
}

/** RE2 syntax check (the sidecar matches with re2js, which runs in linear time). */
export function regexError(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Header matches: names lower-cased; of equivalent names only the first counts (spec). */
function headerMatches(list: Array<{ type?: string; name: string; value: string }> | undefined): ValueMatch[] {
  const out: ValueMatch[] = [];
  const seen = new Set<string>();
  for (const h of list ?? []) {
    const name = h.name.toLowerCase();
    if (seen.has(name)) continue;
    seen.add(name);
    out.push({ type: h.type === 'RegularExpression' ? 'RegularExpression' : 'Exact', name, value: h.value });
  }
  return out;
}

/** Query param names are matched exactly (case-sensitive); the first duplicate wins. */
function queryMatches(list: Array<{ type?: string; name: string; value: string }> | undefined): ValueMatch[] {
  const out: ValueMatch[] = [];
  const seen = new Set<string>();
  for (const q of list ?? []) {
    if (seen.has(q.name)) continue;
    seen.add(q.name);
    out.push({ type: q.type === 'RegularExpression' ? 'RegularExpression' : 'Exact', name: q.name, value: q.value });
  }
  return out;
}

function checkValueRegexes(ms: ValueMatch[], what: string): string | undefined {
  for (const m of ms) {
    if (m.type !== 'RegularExpression') continue;
    const e = regexError(m.value);
    if (e) return `${what} ${m.name}: regular expression ${JSON.stringify(m.value)} is not valid RE2: ${e}`;
  }
  return undefined;
}

/** Escape a literal for use inside an RE2 pattern. */
function quote(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/**
 * GRPCRoute method match → the equivalent :path match (GEP-1016 §Matcher
 * types). Regular expressions are full matches of the path; service names
 * never hold '/', so "any service" is `[^/]+`.
 */
export function grpcPathMatch(m: GRPCRouteMatch): MatchEntry['path'] {
  const mm = m.method;
  if (!mm || (!mm.service && !mm.method)) return { type: 'PathPrefix', value: '/' };
  const regex = mm.type === 'RegularExpression';
  if (!regex) {
    if (mm.service && mm.method) return { type: 'Exact', value: `/${mm.service}/${mm.method}` };
    if (mm.service) return { type: 'PathPrefix', value: `/${mm.service}` };
    return { type: 'RegularExpression', value: `/[^/]+/${quote(mm.method!)}` };
  }
  const svc = mm.service ? `(?:${mm.service})` : '[^/]+';
  const meth = mm.method ? `(?:${mm.method})` : '[^/]+';
  return { type: 'RegularExpression', value: `/${svc}/${meth}` };
}

export function analyzeRoute(kind: RouteKind, route: HTTPRoute | GRPCRoute, res: Resolver): RouteInfo {
  const namespace = route.metadata.namespace ?? 'default';
  const name = route.metadata.name;
  const info: RouteInfo = {
    kind,
    route,
    namespace,
    name,
    key: `${namespace}/${name}`,
    created: createdMs(route.metadata.creationTimestamp),
    rules: [],
    refProblems: [],
    filterProblems: [],
  };
  const rules = (route.spec.rules ?? []) as AnyRule[];
  rules.forEach((rule, ri) => {
    const ruleInfo: RuleInfo = { index: ri, name: rule.name, matches: [] };
    const order = { created: info.created, key: info.key, ruleIndex: ri };
    if (kind === 'HTTPRoute') {
      // No matches (absent or empty) match every request: the CRD default is PathPrefix "/".
      const given = (rule as HTTPRouteRule).matches;
      const matches = given && given.length > 0 ? given : [{ path: { type: 'PathPrefix' as const, value: '/' } }];
      matches.forEach((m, mi) => {
        const type = m.path?.type ?? 'PathPrefix';
        let value = m.path?.value ?? '/';
        if (type === 'RegularExpression') {
          const e = regexError(value);
          if (e && !ruleInfo.dropped) ruleInfo.dropped = `matches[${mi}].path: regular expression ${JSON.stringify(value)} is not valid RE2: ${e}`;
        }
        if (type === 'PathPrefix' && value.length > 1 && value.endsWith('/')) value = value.slice(0, -1); // trailing '/' is ignored (spec)
        const headers = headerMatches(m.headers);
        const queryParams = queryMatches(m.queryParams);
        const bad = checkValueRegexes(headers, `matches[${mi}].headers`) ?? checkValueRegexes(queryParams, `matches[${mi}].queryParams`);
        if (bad && !ruleInfo.dropped) ruleInfo.dropped = bad;
        const entry: Omit<MatchEntry, 'rule'> = { path: { type, value }, headers, queryParams };
        if (m.method) entry.method = m.method;
        ruleInfo.matches.push({
          entry,
          http: {
            ...order,
            matchIndex: mi,
            pathType: type,
            pathLength: type === 'PathPrefix' ? prefixLength(value) : value.length,
            hasMethod: !!m.method,
            headers: headers.length,
            queryParams: queryParams.length,
          },
        });
      });
    } else {
      const matches = (rule as GRPCRouteRule).matches;
      const list = matches && matches.length > 0 ? matches : [{}];
      list.forEach((m, mi) => {
        const path = grpcPathMatch(m);
        if (path.type === 'RegularExpression') {
          const e = regexError(path.value);
          if (e && !ruleInfo.dropped) ruleInfo.dropped = `matches[${mi}].method: regular expression is not valid RE2: ${e}`;
        }
        const headers = headerMatches(m.headers);
        const bad = checkValueRegexes(headers, `matches[${mi}].headers`);
        if (bad && !ruleInfo.dropped) ruleInfo.dropped = bad;
        ruleInfo.matches.push({
          entry: { path, headers, queryParams: [] },
          grpc: {
            ...order,
            matchIndex: mi,
            serviceLength: m.method?.service?.length ?? 0,
            methodLength: m.method?.method?.length ?? 0,
            headers: headers.length,
          },
        });
      });
    }
    // References (for ResolvedRefs), independent of the parent port.
    const refs: Array<[BackendObjectReference, string]> = [];
    (rule.backendRefs ?? []).forEach((b, bi) => {
      refs.push([b, `rules[${ri}].backendRefs[${bi}]`]);
      (b.filters ?? []).forEach((f, fi) => {
        if (f.type === 'RequestMirror' && f.requestMirror) refs.push([f.requestMirror.backendRef, `rules[${ri}].backendRefs[${bi}].filters[${fi}].requestMirror`]);
        if (f.type === 'ExtensionRef') info.filterProblems.push(`rules[${ri}].backendRefs[${bi}].filters[${fi}]: ExtensionRef ${extName(f)} is not supported; requests for this backend get 500`);
      });
    });
    (rule.filters ?? []).forEach((f, fi) => {
      if (f.type === 'RequestMirror' && f.requestMirror) refs.push([f.requestMirror.backendRef, `rules[${ri}].filters[${fi}].requestMirror`]);
      if (f.type === 'ExtensionRef') info.filterProblems.push(`rules[${ri}].filters[${fi}]: ExtensionRef ${extName(f)} is not supported; the rule answers 500`);
    });
    for (const [ref, where] of refs) {
      const r = resolveBackend(ref, namespace, res);
      if (isProblem(r)) info.refProblems.push({ reason: r.reason, message: `${where}: ${r.message}` });
    }
    info.rules.push(ruleInfo);
  });
  return info;
}

function extName(f: AnyFilter): string {
  const e = f.extensionRef;
  return e ? `${e.group || 'core'}/${e.kind} ${e.name}` : '';
}

// ---- parentRefs ----------------------------------------------------------------

export interface Attachment {
  info: RouteInfo;
  parentIndex: number;
  parentRef: ParentReference;
  svcKey: string;
  /** Service ports this parentRef selects (empty when it selects none). */
  ports: number[];
  /** Why the parent does not accept the route (NoMatchingParent), if it does not. */
  noMatch?: string;
}

export function isServiceParent(p: ParentReference): boolean {
  const group = p.group ?? 'gateway.networking.k8s.io';
  // The field doc says Service parents use group ""; the mesh docs' examples
  // write "core", so weft accepts it as an alias.
  return (group === '' || group === 'core') && p.kind === 'Service';
}

export function attachments(info: RouteInfo, services: Map<string, Service>): Attachment[] {
  const out: Attachment[] = [];
  (info.route.spec.parentRefs ?? []).forEach((p, i) => {
    if (!isServiceParent(p)) return; // a Gateway parent is another controller's business
    const ns = p.namespace ?? info.namespace;
    const svcKey = `${ns}/${p.name}`;
    const a: Attachment = { info, parentIndex: i, parentRef: p, svcKey, ports: [] };
    const svc = services.get(svcKey);
    if (!svc) a.noMatch = `Service ${svcKey} not found`;
    else if (svc.spec.type === 'ExternalName') a.noMatch = `Service ${svcKey} is of type ExternalName; it has no frontend to route (GEP-1426)`;
    else if (svc.spec.clusterIP === 'None') a.noMatch = `Service ${svcKey} is headless; it has no frontend to route (GEP-1426)`;
    else {
      a.ports = (svc.spec.ports ?? [])
        .filter((sp) => (p.port === undefined || p.port === sp.port) && (!p.sectionName || p.sectionName === sp.name))
        .map((sp) => sp.port);
      if (a.ports.length === 0) {
        const want = [p.port !== undefined ? `port ${p.port}` : '', p.sectionName ? `port name ${p.sectionName}` : ''].filter(Boolean).join(' and ');
        a.noMatch = want ? `Service ${svcKey} has no ${want}` : `Service ${svcKey} has no ports`;
      }
    }
    out.push(a);
  });
  return out;
}

// ---- rules ---------------------------------------------------------------------

function headerEdits(h: HTTPHeaderFilter | undefined): HeaderEdits {
  const set: Array<[string, string]> = [];
  const add: Array<[string, string]> = [];
  const seen = new Set<string>();
  // "Only one action for a given header name is permitted"; equivalent names: first wins.
  for (const x of h?.set ?? []) {
    const n = x.name.toLowerCase();
    if (seen.has(n)) continue;
    seen.add(n);
    set.push([n, x.value]);
  }
  for (const x of h?.add ?? []) {
    const n = x.name.toLowerCase();
    if (seen.has(`add:${n}`)) continue;
    seen.add(`add:${n}`);
    add.push([n, x.value]);
  }
  const remove = [...new Set((h?.remove ?? []).map((n) => n.toLowerCase()))];
  return { set, add, remove };
}

function pathModifier(p: HTTPPathModifier | undefined): PathModifier | undefined {
  if (!p) return undefined;
  if (p.type === 'ReplaceFullPath') return { type: 'ReplaceFullPath', value: p.replaceFullPath ?? '/' };
  return { type: 'ReplacePrefixMatch', value: p.replacePrefixMatch ?? '' };
}

interface FilterOutcome {
  filters: Filter[];
  /** An ExtensionRef was present: answer 500. */
  unsupported?: string;
}

function compileFilters(list: AnyFilter[] | undefined, servicePort: number, routeNs: string, res: Resolver): FilterOutcome {
  const out: FilterOutcome = { filters: [] };
  for (const f of list ?? []) {
    switch (f.type) {
      case 'RequestHeaderModifier':
        out.filters.push({ type: 'RequestHeaderModifier', ...headerEdits(f.requestHeaderModifier) });
        break;
      case 'ResponseHeaderModifier':
        out.filters.push({ type: 'ResponseHeaderModifier', ...headerEdits(f.responseHeaderModifier) });
        break;
      case 'RequestRedirect': {
        const rr = (f as HTTPRouteFilter).requestRedirect ?? {};
        // Port defaults (HTTPRequestRedirectFilter.Port): the scheme's well-known
        // port when a scheme is set, else the port the request came in on — for
        // mesh, the Service port. The sidecar omits :80/:443 from Location.
        const port = rr.port ?? (rr.scheme === 'https' ? 443 : rr.scheme === 'http' ? 80 : servicePort);
        const flt: Filter = { type: 'RequestRedirect', statusCode: rr.statusCode ?? 302, port };
        if (rr.scheme) flt.scheme = rr.scheme;
        if (rr.hostname) flt.hostname = rr.hostname;
        const pm = pathModifier(rr.path);
        if (pm) flt.path = pm;
        out.filters.push(flt);
        break;
      }
      case 'URLRewrite': {
        const rw = (f as HTTPRouteFilter).urlRewrite ?? {};
        const flt: Filter = { type: 'URLRewrite' };
        if (rw.hostname) flt.hostname = rw.hostname;
        const pm = pathModifier(rw.path);
        if (pm) flt.path = pm;
        out.filters.push(flt);
        break;
      }
      case 'RequestMirror': {
        if (!f.requestMirror) break;
        const r = resolveBackend(f.requestMirror.backendRef, routeNs, res);
        // An unresolved mirror is not configured (ResolvedRefs=False says so).
        if (!isProblem(r)) out.filters.push({ type: 'RequestMirror', backend: r.key });
        break;
      }
      case 'ExtensionRef':
        out.unsupported ??= `ExtensionRef filter ${extName(f)} is not supported`;
        break;
    }
  }
  return out;
}

/** Longest common path of several paths, by whole segments ("/a/b" + "/a/c" → "/a"). */
function commonPath(paths: string[]): string {
  if (paths.length === 0) return '/';
  const split = paths.map((p) => p.split('/').filter(Boolean));
  const first = split[0]!;
  let n = 0;
  while (n < first.length && split.every((s) => s[n] === first[n])) n++;
  return '/' + first.slice(0, n).join('/');
}

/** GEP-1619 cookie Path: the matched path; a regex's longest literal prefix; '/' for everything. */
export function cookiePath(matches: PendingMatch[]): string {
  const paths = matches.map(({ entry: { path } }) => {
    if (path.type !== 'RegularExpression') return path.value;
    const meta = path.value.search(/[\\^$.|?*+()[\]{}]/);
    const lit = meta < 0 ? path.value : path.value.slice(0, meta);
    const cut = lit.lastIndexOf('/');
    return cut <= 0 ? '/' : lit.slice(0, cut);
  });
  return commonPath(paths);
}

export interface RuleContext {
  res: Resolver;
  /** Session persistence from a BackendLBPolicy on a backend Service ("ns/name"). */
  lbSession(svcKey: string): { policy: import('../api/index.js').SessionPersistence } | undefined;
  sessionConfig: typeof import('./compile-policies.js').sessionConfig;
}

export function compileRule(info: RouteInfo, ri: number, servicePort: number, ctx: RuleContext): CompiledRule {
  const rule = (info.route.spec.rules ?? [])[ri] as AnyRule;
  const ruleInfo = info.rules[ri]!;
  const scope = `${info.kind}/${info.key}/rules/${ri}`;
  const compiled: CompiledRule = {
    route: { kind: info.kind, namespace: info.namespace, name: info.name, ruleIndex: ri },
    filters: [],
    backends: [],
  };
  if (rule.name) compiled.route.ruleName = rule.name;
  const rf = compileFilters(rule.filters, servicePort, info.namespace, ctx.res);
  compiled.filters = rf.filters;
  const timeouts = (rule as HTTPRouteRule).timeouts;
  if (timeouts) {
    const t: NonNullable<CompiledRule['timeouts']> = {};
    // "0s" disables the timeout (GEP-1742): emitted as 0, which the sidecar reads as "none".
    if (timeouts.request !== undefined) t.requestMs = parseDuration(timeouts.request) ?? undefined;
    if (timeouts.backendRequest !== undefined) t.backendRequestMs = parseDuration(timeouts.backendRequest) ?? undefined;
    compiled.timeouts = t;
  }
  const retry = retryPolicyOf(info.kind, info.route, ri);
  if (retry) compiled.retry = retry;
  const backendSvcs: string[] = [];
  for (const b of rule.backendRefs ?? []) {
    const weight = b.weight ?? 1;
    const r = resolveBackend(b, info.namespace, ctx.res);
    const bf = compileFilters(b.filters, servicePort, info.namespace, ctx.res);
    if (isProblem(r)) {
      compiled.backends.push({ backend: '', weight, filters: [], invalid: { status: 500, reason: r.message } });
      continue;
    }
    const wb: WeightedBackend = { backend: r.key, weight, filters: bf.filters };
    if (bf.unsupported) wb.invalid = { status: 500, reason: bf.unsupported };
    compiled.backends.push(wb);
    backendSvcs.push(r.key.slice(0, r.key.lastIndexOf(':')));
  }
  const hasRedirect = compiled.filters.some((f) => f.type === 'RequestRedirect');
  if (rf.unsupported) {
    compiled.fixed = { status: 500, reason: rf.unsupported };
  } else if (!hasRedirect) {
    if (compiled.backends.length === 0) {
      // "If unspecified and no filters are specified that would result in a
      // response being sent, a 404 error code is returned."
      compiled.fixed = { status: 404, reason: 'rule has no backendRefs' };
    } else if (compiled.backends.every((b) => b.invalid)) {
      compiled.fixed = { status: 500, reason: 'no backendRef of this rule is valid' };
    } else if (compiled.backends.every((b) => b.weight === 0)) {
      compiled.fixed = { status: 500, reason: 'every backendRef of this rule has weight 0' };
    }
  }
  // Session persistence: the rule's own setting wins over a BackendLBPolicy
  // on its backends (GEP-1619); with a policy the cookie Path stays unset.
  if (rule.sessionPersistence) {
    compiled.session = ctx.sessionConfig(rule.sessionPersistence, scope, 'route', cookiePath(ruleInfo.matches));
  } else {
    for (const s of backendSvcs) {
      const p = ctx.lbSession(s);
      if (p) {
        compiled.session = ctx.sessionConfig(p.policy, scope, 'BackendLBPolicy');
        break;
      }
    }
  }
  return compiled;
}

/** Sort a port's pending matches by the precedence of their route type. */
export function sortMatches(kind: RouteKind, list: Array<PendingMatch & { rule: number }>): MatchEntry[] {
  const sorted = [...list].sort((a, b) => (kind === 'HTTPRoute' ? compareHTTPMatch(a.http!, b.http!) : compareGRPCMatch(a.grpc!, b.grpc!)));
  return sorted.map((m) => ({ rule: m.rule, ...m.entry }));
}

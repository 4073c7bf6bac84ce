// Data and text for `weft get` and `weft describe` (the CLI renders; control
// only serves data): pure functions over what control's admin `GET /resources` returns (or what a config directory
// holds), recompiled here so describe can show the effective rules per
// Service port and consumer namespace exactly as sidecars receive them.
import type {
  AnyResource,
  BackendLBPolicy,
  BackendTLSPolicy,
  CompiledRule,
  Condition,
  Filter,
  GRPCRoute,
  HTTPRoute,
  MatchEntry,
  PolicyStatus,
  RouteStatus,
  Service,
  SessionConfig,
} from '../api/index.js';
import { compile, isServiceParent, formatDuration, formatConfigError, snapshotOf } from '../control/index.js';
import type { CompileResult, ConfigError, RegisteredWorkload, ResourceStatus } from '../control/index.js';

/** What `GET /resources` serves (registered entries may be wrapped as {workload}). */
export interface Inventory {
  resources: AnyResource[];
  statuses: ResourceStatus[];
  errors: ConfigError[];
  registered: RegisteredWorkload[];
}

export function inventoryFrom(body: unknown): Inventory {
  const b = (body ?? {}) as Record<string, unknown>;
  const arr = (k: string): unknown[] => (Array.isArray(b[k]) ? (b[k] as unknown[]) : []);
  const registered = arr('registered').map((e) => {
    const w = (e as { workload?: unknown }).workload;
    return (w && typeof w === 'object' ? w : e) as RegisteredWorkload;
  });
  return { resources: arr('resources') as AnyResource[], statuses: arr('statuses') as ResourceStatus[], errors: arr('errors') as ConfigError[], registered };
}

export { snapshotOf };

// ---- label selectors -------------------------------------------------------------

export type Requirement =
  | { op: '='; key: string; value: string }
  | { op: '!='; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | '!exists'; key: string };

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Parse a kubectl-style label selector: `k=v,k==v,k!=v,k in (a,b),k notin (a),k,!k`. */
export function parseSelector(s: string): Requirement[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw new Error(`label selector "${s}": unbalanced ")"`);
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth !== 0) throw new Error(`label selector "${s}": unbalanced "("`);
  parts.push(cur);
  const reqs: Requirement[] = [];
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) {
      if (s.trim() === '') continue;
      throw new Error(`label selector "${s}": empty requirement`);
    }
    let m: RegExpExecArray | null;
    let r: Requirement;
    if ((m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p))) {
      const values = m[3]!.split(',').map((x) => x.trim()).filter((x) => x !== '');
      if (values.length === 0) throw new Error(`label selector "${s}": "${p}" needs at least one value`);
      r = { op: m[2] as 'in' | 'notin', key: m[1]!, values };
    } else if ((m = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(p))) r = { op: '!=', key: m[1]!, value: m[2]! };
    else if ((m = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(p))) r = { op: '=', key: m[1]!, value: m[2]! };
    else if ((m = /^!\s*(\S+)$/.exec(p))) r = { op: '!exists', key: m[1]! };
    else if (/^\S+$/.test(p)) r = { op: 'exists', key: p };
    else throw new Error(`label selector "${s}": cannot parse "${p}"`);
    if (!LABEL_KEY.test(r.key)) throw new Error(`label selector "${s}": "${r.key}" is not a valid label key`);
    const vals = r.op === 'in' || r.op === 'notin' ? r.values : r.op === '=' || r.op === '!=' ? [r.value] : [];
    for (const v of vals) if (v.length > 63 || !LABEL_VALUE.test(v)) throw new Error(`label selector "${s}": "${v}" is not a valid label value`);
    reqs.push(r);
  }
  return reqs;
}

export function selectorMatches(reqs: Requirement[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case '=':
        return has && l[r.key] === r.value;
      case '!=':
        return !has || l[r.key] !== r.value;
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

// ---- get -------------------------------------------------------------------------

export type GetKind = 'routes' | 'services' | 'policies';

export interface GetOptions {
  /** undefined with allNamespaces false means "default". */
  namespace?: string;
  allNamespaces?: boolean;
  selector?: Requirement[];
  /** For AGE; ISO string or ms. */
  now?: number;
}

export const GET_KINDS: Record<string, GetKind> = {
  routes: 'routes',
  route: 'routes',
  httproutes: 'routes',
  httproute: 'routes',
  grpcroutes: 'routes',
  grpcroute: 'routes',
  services: 'services',
  service: 'services',
  svc: 'services',
  policies: 'policies',
  policy: 'policies',
  backendlbpolicies: 'policies',
  backendtlspolicies: 'policies',
  blbpolicy: 'policies',
  btlspolicy: 'policies',
};

const KINDS_OF: Record<GetKind, string[]> = {
  routes: ['HTTPRoute', 'GRPCRoute'],
  services: ['Service'],
  policies: ['BackendLBPolicy', 'BackendTLSPolicy'],
};

export function nsOf(r: AnyResource): string {
  return r.metadata.namespace ?? 'default';
}

/** The resources `weft get KIND` lists, sorted by namespace, kind, name. */
export function selectResources(inv: Inventory, kind: GetKind, o: GetOptions): AnyResource[] {
  const ns = o.allNamespaces ? undefined : (o.namespace ?? 'default');
  return inv.resources
    .filter((r) => KINDS_OF[kind].includes(r.kind))
    .filter((r) => ns === undefined || nsOf(r) === ns)
    .filter((r) => !o.selector || selectorMatches(o.selector, r.metadata.labels))
    .sort((a, b) => cmp(nsOf(a), nsOf(b)) || cmp(a.kind, b.kind) || cmp(a.metadata.name, b.metadata.name));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function statusOf(inv: { statuses: ResourceStatus[] }, r: AnyResource): ResourceStatus | undefined {
  return inv.statuses.find((s) => s.kind === r.kind && s.namespace === nsOf(r) && s.name === r.metadata.name);
}

/** A resource with weft's status filled in, for -o yaml / json. */
export function withStatus(inv: Inventory, r: AnyResource): AnyResource {
  const s = statusOf(inv, r);
  return s ? ({ ...r, status: s.status } as AnyResource) : r;
}

export function age(created: string | undefined, now: number): string {
  if (!created) return '<unknown>';
  const t = Date.parse(created);
  if (Number.isNaN(t)) return '<unknown>';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function parentLabel(p: { namespace?: string; name: string; port?: number; sectionName?: string; kind?: string }, routeNs: string): string {
  const ns = p.namespace ?? routeNs;
  const where = p.port !== undefined ? `:${p.port}` : p.sectionName ? `:${p.sectionName}` : '';
  return `${ns === routeNs ? '' : `${ns}/`}${p.name}${where}`;
}

/** "True" when every entry says so, else "False(reason)" for the first that does not. */
function summarize(conds: Array<Condition | undefined>): string {
  const present = conds.filter((c): c is Condition => !!c);
  if (present.length === 0) return '-';
  const bad = present.find((c) => c.status !== 'True');
  return bad ? `${bad.status}(${bad.reason})` : 'True';
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/**
 * Load errors (not compile's: those are in status) of resources of this kind in
 * scope: a file-mode user sees why a resource is missing or stuck at its last
 * good version.
 */
export function loadErrors(inv: Inventory, kind: GetKind, o: GetOptions): string {
  if (o.selector && o.selector.length > 0) return ''; // an invalid resource's labels are unknown
  const ns = o.allNamespaces ? undefined : (o.namespace ?? 'default');
  const errs = inv.errors.filter((e) => {
    if (e.source === 'compile') return false;
    const m = /^(\S+) (?:([^/\s]+)\/)?(\S+)$/.exec(e.resource);
    if (!m || !KINDS_OF[kind].includes(m[1]!)) return false;
    return ns === undefined || m[2] === ns;
  });
  if (errs.length === 0) return '';
  return `\nErrors (invalid input; a resource that was valid before keeps its last good version):\n${errs.map((e) => `  ${formatConfigError(e)}`).join('\n')}\n`;
}

export function getTable(inv: Inventory, kind: GetKind, o: GetOptions, c?: CompileResult): string {
  return getRows(inv, kind, o, c) + loadErrors(inv, kind, o);
}

function getRows(inv: Inventory, kind: GetKind, o: GetOptions, c?: CompileResult): string {
  const now = o.now ?? Date.now();
  const items = selectResources(inv, kind, o);
  const showNs = !!o.allNamespaces;
  if (items.length === 0) {
    return o.allNamespaces ? `No ${kind} found.\n` : `No ${kind} found in namespace ${o.namespace ?? 'default'}.\n`;
  }
  const lead = (r: AnyResource) => (showNs ? [nsOf(r)] : []);
  const leadH = showNs ? ['NAMESPACE'] : [];
  if (kind === 'routes') {
    const rows = items.map((r) => {
      const route = r as HTTPRoute | GRPCRoute;
      const st = statusOf(inv, r)?.status as RouteStatus | undefined;
      const parents = (route.spec.parentRefs ?? []).map((p) => `${isServiceParent(p) ? '' : `${p.kind ?? 'Gateway'}/`}${parentLabel(p, nsOf(r))}`);
      const acc = summarize(st?.parents.map((p) => p.conditions.find((x) => x.type === 'Accepted')) ?? []);
      const res = summarize(st?.parents.map((p) => p.conditions.find((x) => x.type === 'ResolvedRefs')) ?? []);
      return [...lead(r), r.metadata.name, r.kind, parents.join(',') || '-', String(route.spec.rules?.length ?? 0), acc, res, age(r.metadata.creationTimestamp, now)];
    });
    return table([...leadH, 'NAME', 'KIND', 'PARENTS', 'RULES', 'ACCEPTED', 'RESOLVED', 'AGE'], rows);
  }
  if (kind === 'services') {
    const cc = c ?? compile(snapshotOf(inv.resources, inv.registered));
    const attached = attachedRoutes(inv.resources);
    const rows = items.map((r) => {
      const s = r as Service;
      const key = `${nsOf(r)}/${s.metadata.name}`;
      const d = cc.directory.find((x) => x.namespace === nsOf(r) && x.name === s.metadata.name);
      const ports = (s.spec.ports ?? []).map((p) => `${p.port}${p.targetPort !== undefined && p.targetPort !== p.port ? `:${p.targetPort}` : ''}/${d?.ports.find((x) => x.port === p.port)?.appProtocol || 'auto'}`);
      const view = cc.view(key, nsOf(r));
      const eps = new Set<string>();
      for (const p of view?.ports ?? []) for (const e of view!.backends[p.defaultBackend]?.endpoints ?? []) eps.add(e.ip);
      return [...lead(r), s.metadata.name, d?.clusterIP || (s.spec.clusterIP === 'None' ? 'None' : '-'), ports.join(',') || '-', d?.meshed ? 'yes' : 'no', String(eps.size), String(attached.get(key)?.length ?? 0), age(r.metadata.creationTimestamp, now)];
    });
    return table([...leadH, 'NAME', 'CLUSTER-IP', 'PORTS', 'MESHED', 'ENDPOINTS', 'ROUTES', 'AGE'], rows);
  }
  const rows = items.map((r) => {
    const p = r as BackendLBPolicy | BackendTLSPolicy;
    const st = statusOf(inv, r)?.status as PolicyStatus | undefined;
    const targets = p.spec.targetRefs.map((t) => `${t.kind}/${t.name}${'sectionName' in t && t.sectionName ? `:${t.sectionName}` : ''}`);
    const acc = summarize(st?.ancestors.map((a) => a.conditions.find((x) => x.type === 'Accepted')) ?? []);
    return [...lead(r), r.metadata.name, r.kind, targets.join(','), acc, age(r.metadata.creationTimestamp, now)];
  });
  return table([...leadH, 'NAME', 'KIND', 'TARGETS', 'ACCEPTED', 'AGE'], rows);
}

/** Service key → the routes whose parentRefs name it. */
export function attachedRoutes(resources: AnyResource[]): Map<string, Array<HTTPRoute | GRPCRoute>> {
  const out = new Map<string, Array<HTTPRoute | GRPCRoute>>();
  for (const r of resources) {
    if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
    const seen = new Set<string>();
    for (const p of r.spec.parentRefs ?? []) {
      if (!isServiceParent(p)) continue;
      const key = `${p.namespace ?? nsOf(r)}/${p.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.set(key, [...(out.get(key) ?? []), r]);
    }
  }
  return out;
}

// ---- describe ----------------------------------------------------------------------

export type DescribeKind = 'route' | 'service' | 'policy';

export const DESCRIBE_KINDS: Record<string, DescribeKind> = {
  route: 'route',
  routes: 'route',
  httproute: 'route',
  grpcroute: 'route',
  service: 'service',
  services: 'service',
  svc: 'service',
  policy: 'policy',
  policies: 'policy',
  backendlbpolicy: 'policy',
  backendtlspolicy: 'policy',
  blbpolicy: 'policy',
  btlspolicy: 'policy',
};

function conditionLines(conds: Condition[], indent: string): string[] {
  const w = Math.max(...conds.map((c) => c.type.length));
  return conds.map((c) => `${indent}${c.type.padEnd(w)}  ${c.status.padEnd(5)}  ${c.reason}: ${c.message}`);
}

export function describeMatch(m: MatchEntry): string {
  const parts = [`${m.path.type} ${m.path.value}`];
  if (m.method) parts.push(`method ${m.method}`);
  for (const h of m.headers) parts.push(`header ${h.name}${h.type === 'Exact' ? '=' : '~'}${h.value}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${q.type === 'Exact' ? '=' : '~'}${q.value}`);
  return parts.join(', ');
}

export function describeFilter(f: Filter): string {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const e = [
        ...f.set.map(([n, v]) => `set ${n}: ${v}`),
        ...f.add.map(([n, v]) => `add ${n}: ${v}`),
        ...f.remove.map((n) => `remove ${n}`),
      ];
      return `${f.type} (${e.join('; ') || 'no edits'})`;
    }
    case 'RequestRedirect': {
      const e = [`${f.statusCode}`, f.scheme ? `scheme ${f.scheme}` : '', f.hostname ? `host ${f.hostname}` : '', `port ${f.port}`, f.path ? `${f.path.type} ${JSON.stringify(f.path.value)}` : ''];
      return `RequestRedirect (${e.filter(Boolean).join(', ')})`;
    }
    case 'URLRewrite': {
      const e = [f.hostname ? `host ${f.hostname}` : '', f.path ? `${f.path.type} ${JSON.stringify(f.path.value)}` : ''];
      return `URLRewrite (${e.filter(Boolean).join(', ')})`;
    }
    case 'RequestMirror':
      return `RequestMirror (to ${f.backend})`;
  }
}

export function describeSession(s: SessionConfig): string {
  const e = [`${s.type} ${s.name}`, s.path ? `path ${s.path}` : '', s.permanent ? 'permanent' : '', s.absoluteTimeoutMs ? `absolute ${formatDuration(s.absoluteTimeoutMs)}` : '', s.idleTimeoutMs ? `idle ${formatDuration(s.idleTimeoutMs)}` : '', `from ${s.source}`];
  return e.filter(Boolean).join(', ');
}

function ruleLines(rule: CompiledRule, c: CompileResult, svcKey: string, consumerNs: string, indent: string): string[] {
  const out: string[] = [];
  const view = c.view(svcKey, consumerNs);
  if (rule.fixed) out.push(`${indent}answers ${rule.fixed.status}: ${rule.fixed.reason}`);
  for (const f of rule.filters) out.push(`${indent}filter ${describeFilter(f)}`);
  const total = rule.backends.reduce((s, b) => s + b.weight, 0);
  for (const b of rule.backends) {
    const share = total > 0 ? `${Math.round((b.weight / total) * 1000) / 10}%` : '0%';
    if (b.invalid) {
      out.push(`${indent}backend <invalid> weight ${b.weight} (${share}): answers ${b.invalid.status}: ${b.invalid.reason}`);
      continue;
    }
    const bc = view?.backends[b.backend];
    const eps = bc?.endpoints ?? [];
    const ready = eps.filter((e) => e.ready).length;
    let extra = `${ready}/${eps.length} endpoints ready`;
    if (bc?.tls) extra += bc.tls.invalid ? `, TLS INVALID (fails closed)` : `, TLS to ${bc.tls.hostname}`;
    out.push(`${indent}backend ${b.backend} weight ${b.weight} (${share}), ${extra}`);
    for (const f of b.filters) out.push(`${indent}  filter ${describeFilter(f)}`);
  }
  if (rule.timeouts) {
    const t = [rule.timeouts.requestMs !== undefined ? `request ${rule.timeouts.requestMs === 0 ? 'none' : formatDuration(rule.timeouts.requestMs)}` : '', rule.timeouts.backendRequestMs !== undefined ? `backendRequest ${rule.timeouts.backendRequestMs === 0 ? 'none' : formatDuration(rule.timeouts.backendRequestMs)}` : ''];
    out.push(`${indent}timeouts ${t.filter(Boolean).join(', ')}`);
  }
  if (rule.session) out.push(`${indent}session ${describeSession(rule.session)}`);
  return out;
}

function header(r: AnyResource, now: number): string[] {
  return [
    `Name:         ${r.metadata.name}`,
    ...(r.kind === 'Namespace' ? [] : [`Namespace:    ${nsOf(r)}`]),
    `Kind:         ${r.kind} (${r.apiVersion})`,
    ...(r.metadata.labels && Object.keys(r.metadata.labels).length > 0 ? [`Labels:       ${Object.entries(r.metadata.labels).map(([k, v]) => `${k}=${v}`).join(',')}`] : []),
    ...(r.metadata.creationTimestamp ? [`Created:      ${r.metadata.creationTimestamp} (${age(r.metadata.creationTimestamp, now)} ago)`] : []),
    ...(r.metadata.generation !== undefined ? [`Generation:   ${r.metadata.generation}`] : []),
  ];
}

function errorLines(inv: Inventory, c: CompileResult, label: string): string[] {
  const errs = [...inv.errors, ...c.errors].filter((e) => e.resource === label);
  const uniq = [...new Set(errs.map((e) => `  ${formatConfigError(e)}`))];
  return uniq.length > 0 ? ['Errors:', ...uniq] : [];
}

export interface DescribeOptions {
  now?: number;
  /** A precompiled result (tests); else compiled from the inventory. */
  compiled?: CompileResult;
}

/** Find the resources of `kind` named `name` in `namespace`; kinds with two types may yield two. */
export function findForDescribe(inv: Inventory, kind: DescribeKind, namespace: string, name: string): AnyResource[] {
  const kinds = kind === 'route' ? ['HTTPRoute', 'GRPCRoute'] : kind === 'service' ? ['Service'] : ['BackendLBPolicy', 'BackendTLSPolicy'];
  return inv.resources.filter((r) => kinds.includes(r.kind) && nsOf(r) === namespace && r.metadata.name === name);
}

export function describe(inv: Inventory, kind: DescribeKind, namespace: string, name: string, o: DescribeOptions = {}): string | undefined {
  const found = findForDescribe(inv, kind, namespace, name);
  if (found.length === 0) {
    // Still show load errors for a resource that did not validate.
    const labels = kind === 'route' ? ['HTTPRoute', 'GRPCRoute'] : kind === 'service' ? ['Service'] : ['BackendLBPolicy', 'BackendTLSPolicy'];
    const errs = inv.errors.filter((e) => labels.some((k) => e.resource === `${k} ${namespace}/${name}`));
    if (errs.length === 0) return undefined;
    return [`${kind} ${namespace}/${name} was not loaded: it is invalid`, 'Errors:', ...errs.map((e) => `  ${formatConfigError(e)}`)].join('\n') + '\n';
  }
  const c = o.compiled ?? compile(snapshotOf(inv.resources, inv.registered));
  const now = o.now ?? Date.now();
  const text = found.map((r) => {
    if (r.kind === 'Service') return describeService(inv, c, r, now);
    if (r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute') return describeRoute(inv, c, r, now);
    return describePolicy(inv, c, r as BackendLBPolicy | BackendTLSPolicy, now);
  });
  return text.join('\n---\n\n');
}

function describeRoute(inv: Inventory, c: CompileResult, r: HTTPRoute | GRPCRoute, now: number): string {
  const ns = nsOf(r);
  const out = header(r, now);
  if (r.spec.hostnames?.length) out.push(`Hostnames:    ${r.spec.hostnames.join(', ')} (ignored for Service parents, GEP-1426)`);
  const st = (statusOf(c, r) ?? statusOf(inv, r))?.status as RouteStatus | undefined;
  out.push('Parents:');
  for (const p of r.spec.parentRefs ?? []) {
    if (!isServiceParent(p)) {
      out.push(`  ${p.kind ?? 'Gateway'} ${parentLabel(p, ns)}: not a Service; left to its own controller`);
      continue;
    }
    const pns = p.namespace ?? ns;
    const role = pns === ns ? 'producer route' : `consumer route for callers in ${ns}`;
    out.push(`  Service ${pns}/${p.name}${p.port !== undefined ? ` port ${p.port}` : ''}${p.sectionName ? ` section ${p.sectionName}` : ''} (${role})`);
    const ps = st?.parents.find((x) => JSON.stringify(x.parentRef) === JSON.stringify(p));
    if (ps) out.push(...conditionLines(ps.conditions, '    '));
  }
  out.push('Rules:');
  (r.spec.rules ?? []).forEach((rule, i) => {
    out.push(`  [${i}]${rule.name ? ` ${rule.name}` : ''}`);
    // Find this rule compiled on one of its live parents to show the effective form.
    let shown = false;
    for (const p of r.spec.parentRefs ?? []) {
      if (!isServiceParent(p) || shown) continue;
      const svcKey = `${p.namespace ?? ns}/${p.name}`;
      const view = c.view(svcKey, ns);
      for (const port of view?.ports ?? []) {
        const id = port.rules.findIndex((x) => x.route.kind === r.kind && x.route.namespace === ns && x.route.name === r.metadata.name && x.route.ruleIndex === i);
        if (id < 0) continue;
        const ms = port.matches.filter((m) => m.rule === id);
        for (const m of ms) out.push(`      match ${describeMatch(m)}`);
        out.push(...ruleLines(port.rules[id]!, c, svcKey, ns, '      '));
        shown = true;
        break;
      }
    }
    if (!shown) out.push('      (not in effect on any Service port; see status)');
  });
  out.push(...errorLines(inv, c, `${r.kind} ${ns}/${r.metadata.name}`));
  return out.join('\n') + '\n';
}

function describeService(inv: Inventory, c: CompileResult, s: Service, now: number): string {
  const ns = nsOf(s);
  const key = `${ns}/${s.metadata.name}`;
  const out = header(s, now);
  const d = c.directory.find((x) => x.namespace === ns && x.name === s.metadata.name);
  out.push(`ClusterIP:    ${d?.clusterIP || '(none: routed by name)'}`);
  out.push(`Meshed:       ${d?.meshed ? 'yes (endpoints run a weft sidecar: mTLS)' : 'no'}`);
  if (s.spec.selector) out.push(`Selector:     ${Object.entries(s.spec.selector).map(([k, v]) => `${k}=${v}`).join(',')}`);
  const producerView = c.view(key, ns);
  out.push('Ports:');
  for (const p of d?.ports ?? []) {
    const eps = producerView?.backends[`${key}:${p.port}`]?.endpoints ?? [];
    out.push(`  ${p.name || '(unnamed)'} ${p.port} → ${p.targetPort} ${p.appProtocol || 'auto-detect'}: ${eps.length === 0 ? 'no endpoints' : eps.map((e) => `${e.ip}:${e.port}${e.pod ? ` (${e.pod})` : ''}${e.ready ? '' : ' not-ready'}${e.identity ? '' : ' no-sidecar'}`).join(', ')}`);
  }
  // Routes attached and policies targeting this Service.
  const routes = [...(attachedRoutes(inv.resources).get(key) ?? [])].sort(
    (a, b) => Number(nsOf(a) !== ns) - Number(nsOf(b) !== ns) || cmp(nsOf(a), nsOf(b)) || cmp(a.kind, b.kind) || cmp(a.metadata.name, b.metadata.name),
  );
  out.push(routes.length === 0 ? 'Routes:       none (all traffic goes to the Service as plain Kubernetes would)' : 'Routes:');
  for (const r of routes) {
    const st = (statusOf(c, r) ?? statusOf(inv, r))?.status as RouteStatus | undefined;
    const entries = st?.parents.filter((p) => `${p.parentRef.namespace ?? nsOf(r)}/${p.parentRef.name}` === key) ?? [];
    const acc = summarize(entries.map((e) => e.conditions.find((x) => x.type === 'Accepted')));
    const role = nsOf(r) === ns ? 'producer' : `consumer (${nsOf(r)})`;
    out.push(`  ${r.kind} ${nsOf(r)}/${r.metadata.name}  ${role}  Accepted=${acc}`);
  }
  const policies = inv.resources.filter(
    (r): r is BackendLBPolicy | BackendTLSPolicy =>
      (r.kind === 'BackendLBPolicy' || r.kind === 'BackendTLSPolicy') && nsOf(r) === ns && r.spec.targetRefs.some((t) => t.kind === 'Service' && t.name === s.metadata.name),
  );
  if (policies.length > 0) {
    out.push('Policies:');
    for (const p of policies) {
      const st = (statusOf(c, p) ?? statusOf(inv, p))?.status as PolicyStatus | undefined;
      const a = st?.ancestors.find((x) => x.ancestorRef.name === s.metadata.name);
      const cond = a?.conditions.find((x) => x.type === 'Accepted');
      out.push(`  ${p.kind} ${ns}/${p.metadata.name}: ${cond ? `${cond.status} ${cond.reason}: ${cond.message}` : 'no status'}`);
    }
  }
  // Effective rules: the producer view (callers in every namespace without consumer
  // routes) and one view per namespace that has consumer routes for this Service.
  const consumers = [...new Set(routes.map((r) => nsOf(r)).filter((x) => x !== ns))].sort();
  out.push('Effective routing:');
  for (const consumer of [ns, ...consumers]) {
    const view = c.view(key, consumer);
    if (!view) continue;
    for (const port of view.ports) {
      const who = consumer === ns ? 'callers in every namespace without consumer routes' : `callers in namespace ${consumer}`;
      if (consumer !== ns && port.rules.every((r) => r.route.namespace !== consumer)) continue; // same as producer view
      out.push(`  port ${port.port}${port.name ? ` (${port.name})` : ''}, ${who}: ${port.routeKind === 'none' ? 'no routes → the Service itself' : `${port.routeKind}s, first match wins`}`);
      port.matches.forEach((m, i) => {
        const rule = port.rules[m.rule]!;
        out.push(`    ${i + 1}. ${describeMatch(m)} → ${rule.route.kind} ${rule.route.namespace}/${rule.route.name} rules[${rule.route.ruleIndex}]${rule.route.ruleName ? ` (${rule.route.ruleName})` : ''}`);
        out.push(...ruleLines(rule, c, key, consumer, '         '));
      });
      if (port.routeKind !== 'none') out.push(`    otherwise: ${port.routeKind === 'GRPCRoute' ? 'UNIMPLEMENTED (404)' : '404'}`);
      const def = view.backends[port.defaultBackend];
      if (port.routeKind === 'none' && def?.tls) out.push(`    TLS origination: ${def.tls.invalid ? `INVALID, fails closed: ${def.tls.invalid}` : `SNI ${def.tls.hostname} (${def.tls.policy})`}`);
      if (port.routeKind === 'none' && def?.session) out.push(`    session ${describeSession(def.session)}`);
    }
  }
  out.push(...errorLines(inv, c, `Service ${key}`));
  return out.join('\n') + '\n';
}

function describePolicy(inv: Inventory, c: CompileResult, p: BackendLBPolicy | BackendTLSPolicy, now: number): string {
  const ns = nsOf(p);
  const out = header(p, now);
  out.push('Targets:');
  for (const t of p.spec.targetRefs) out.push(`  ${t.group || 'core'}/${t.kind} ${ns}/${t.name}${'sectionName' in t && t.sectionName ? ` port ${t.sectionName}` : ''}`);
  if (p.kind === 'BackendLBPolicy') {
    const sp = p.spec.sessionPersistence;
    out.push(`Session persistence: ${sp ? `${sp.type ?? 'Cookie'}${sp.sessionName ? ` ${sp.sessionName}` : ' (generated name per route rule)'}${sp.absoluteTimeout ? `, absolute ${sp.absoluteTimeout}` : ''}${sp.idleTimeout ? `, idle ${sp.idleTimeout}` : ''}${sp.cookieConfig?.lifetimeType ? `, ${sp.cookieConfig.lifetimeType}` : ''}` : 'none'}`);
  } else {
    const v = p.spec.validation;
    out.push(`Validation:   hostname ${v.hostname}; CA ${v.wellKnownCACertificates ? `well-known ${v.wellKnownCACertificates}` : ''}${v.caCertificateRefs?.length ? (v.caCertificateRefs ?? []).map((r) => `${r.kind} ${r.name}`).join(', ') : ''}`);
  }
  const st = (statusOf(c, p) ?? statusOf(inv, p))?.status as PolicyStatus | undefined;
  out.push('Status:');
  for (const a of st?.ancestors ?? []) {
    out.push(`  Service ${a.ancestorRef.namespace ?? ns}/${a.ancestorRef.name}`);
    out.push(...conditionLines(a.conditions, '    '));
  }
  out.push(...errorLines(inv, c, `${p.kind} ${ns}/${p.metadata.name}`));
  return out.join('\n') + '\n';
}

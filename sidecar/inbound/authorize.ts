// Inbound authorization: the pod's InboundAuthzConfig (AuthorizationPolicies
// that select it, GEP-3779, and its default inbound policy) → one checker,
// built once per config. Per request it is a probe-path lookup and a Map
// lookup by (port, caller identity); the answer for each pair is computed on
// first use and kept until the next config, so a pod with ten policies and
// fifty rules costs the same per request as one with none.
//
// Pure: no sockets, no clock, no metrics (sidecar/inbound/authz-state.ts counts).
import type { AuthzRuleConfig, DefaultInboundPolicy, InboundAuthzConfig } from '../../api/index.js';
import { DEFAULT_INBOUND_POLICIES } from '../../api/index.js';

export type AuthzOutcome = 'allow' | 'deny' | 'audit';

export interface AuthzDecision {
  /** Let the request (or connection) through: allow and audit. */
  readonly allowed: boolean;
  readonly decision: AuthzOutcome;
  /** "ns/name" of the deciding policy (several joined by ","), "default:<mode>", or "probe". */
  readonly policy: string;
  /** Why, in words (the `weft-proxy-error` of a denied request; the log line of an audit). */
  readonly reason: string;
  /** The caller as given ('' unauthenticated). */
  readonly peer: string;
  /** Set by the caller's bookkeeping (metrics), once per decision object. */
  counted?: unknown;
}

export interface Authorizer {
  readonly config: InboundAuthzConfig;
  /**
   * The decision for a caller (`peer`: SPIFFE ID, '' for a plaintext caller)
   * on app port `port`; `path` (HTTP only, query excluded) lets probe paths
   * through. Returns the same object for the same (port, peer) until the
   * next config.
   */
  check(port: number, peer: string, path?: string): AuthzDecision;
}

interface BuiltRule {
  any: boolean;
  ids: Set<string>;
  prefixes: string[];
  ports: Set<number> | undefined;
}

interface BuiltPolicy {
  name: string;
  rules: BuiltRule[];
}

/** The most (port, peer) pairs remembered; past it the cache starts over (a caller flood cannot grow memory). */
const MAX_CACHED = 4096;

function buildRule(r: AuthzRuleConfig): BuiltRule {
  return {
    any: r.sources === undefined,
    ids: new Set(r.sources?.identities ?? []),
    prefixes: r.sources?.prefixes ?? [],
    ports: r.ports === undefined ? undefined : new Set(r.ports),
  };
}

function ruleMatches(r: BuiltRule, port: number, peer: string): boolean {
  if (r.ports && !r.ports.has(port)) return false;
  if (r.any) return true;
  if (!peer) return false;
  if (r.ids.has(peer)) return true;
  for (const p of r.prefixes) {
    // "spiffe://td/ns/x/sa/" + a non-empty service account without further path.
    if (peer.length > p.length && peer.startsWith(p) && peer.indexOf('/', p.length) < 0) return true;
  }
  return false;
}

function who(peer: string): string {
  return peer ? peer : 'an unauthenticated (plaintext) caller';
}

/** Everything allowed, nothing counted: before the first config, or from a control that sends none. */
export const ALLOW_ALL_CONFIG: InboundAuthzConfig = {
  pod: '',
  defaultPolicy: 'all-unauthenticated',
  defaultFrom: 'mesh',
  probes: [],
  policies: [],
};

export function buildAuthorizer(config: InboundAuthzConfig): Authorizer {
  const policies: BuiltPolicy[] = config.policies.map((p) => ({ name: p.name, rules: p.rules.map(buildRule) }));
  const mode: DefaultInboundPolicy = config.defaultPolicy;
  const audit = mode === 'audit';
  const probeAny = new Set<string>();
  const probeByPort = new Map<number, Set<string>>();
  for (const pr of config.probes) {
    if (pr.port === 0) probeAny.add(pr.path);
    else {
      let s = probeByPort.get(pr.port);
      if (!s) probeByPort.set(pr.port, (s = new Set()));
      s.add(pr.path);
    }
  }
  const hasProbes = config.probes.length > 0;
  const policyNames = policies.map((p) => p.name).join(',');
  const probeDecisions = new Map<string, AuthzDecision>();
  // port → caller → decision. Two levels, so a request costs two Map lookups
  // and never builds a key string (the caller's identity string is the same
  // object for every request of a connection: its hash is computed once).
  let cache = new Map<number, Map<string, AuthzDecision>>();
  let cached = 0;

  const decide = (port: number, peer: string): AuthzDecision => {
    if (policies.length > 0) {
      for (const p of policies) {
        for (const r of p.rules) {
          if (ruleMatches(r, port, peer)) return { allowed: true, decision: 'allow', policy: p.name, reason: `allowed by AuthorizationPolicy ${p.name}`, peer };
        }
      }
      const names = policies.length === 1 ? `AuthorizationPolicy ${policyNames}` : `no AuthorizationPolicy of ${policyNames.split(',').join(', ')}`;
      const reason = `${policies.length === 1 ? `${names} does not allow` : `${names} allows`} ${who(peer)} on port ${port}`;
      if (audit) return { allowed: true, decision: 'audit', policy: policyNames, reason: `audit: would deny: ${reason}`, peer };
      return { allowed: false, decision: 'deny', policy: policyNames, reason: `forbidden: ${reason}`, peer };
    }
    const policy = `default:${mode}`;
    switch (mode) {
      case 'all-unauthenticated':
        return { allowed: true, decision: 'allow', policy, reason: 'allowed by the default inbound policy all-unauthenticated', peer };
      case 'all-authenticated':
        if (peer) return { allowed: true, decision: 'allow', policy, reason: 'allowed by the default inbound policy all-authenticated', peer };
        return { allowed: false, decision: 'deny', policy, reason: `forbidden: the default inbound policy all-authenticated refuses ${who(peer)} on port ${port}`, peer };
      case 'audit':
        // Linkerd's audit: nothing authorizes the caller, so a deny would refuse it; let it through and say so.
        return { allowed: true, decision: 'audit', policy, reason: `audit: would deny: no AuthorizationPolicy allows ${who(peer)} on port ${port}`, peer };
      case 'deny':
      default:
        return { allowed: false, decision: 'deny', policy, reason: `forbidden: the default inbound policy deny refuses ${who(peer)} on port ${port}`, peer };
    }
  };

  return {
    config,
    check(port: number, peer: string, path?: string): AuthzDecision {
      if (hasProbes && path !== undefined && (probeAny.has(path) || probeByPort.get(port)?.has(path) === true)) {
        // Kubelet probes stay allowed under every mode and policy.
        let d = probeDecisions.get(peer);
        if (!d) {
          d = { allowed: true, decision: 'allow', policy: 'probe', reason: 'probe path', peer };
          if (probeDecisions.size < MAX_CACHED) probeDecisions.set(peer, d);
        }
        return d;
      }
      let byPeer = cache.get(port);
      const hit = byPeer?.get(peer);
      if (hit) return hit;
      const d = decide(port, peer);
      if (cached >= MAX_CACHED) {
        cache = new Map();
        cached = 0;
        byPeer = undefined;
      }
      if (!byPeer) cache.set(port, (byPeer = new Map()));
      byPeer.set(peer, d);
      cached++;
      return d;
    },
  };
}

/** Checks a received InboundAuthzConfig's shape; the error names the field. */
export function validateInboundAuthz(raw: unknown): { ok: true; config: InboundAuthzConfig } | { ok: false; field: string; message: string } {
  const bad = (field: string, message: string) => ({ ok: false as const, field, message });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('', 'must be an object');
  const o = raw as Record<string, unknown>;
  if (typeof o.pod !== 'string') return bad('pod', 'must be a string');
  if (!(DEFAULT_INBOUND_POLICIES as readonly unknown[]).includes(o.defaultPolicy)) return bad('defaultPolicy', `must be one of ${DEFAULT_INBOUND_POLICIES.join(', ')}`);
  if (!Array.isArray(o.probes)) return bad('probes', 'must be an array');
  for (const [i, p] of o.probes.entries()) {
    const pr = p as { port?: unknown; path?: unknown };
    if (typeof pr !== 'object' || pr === null || typeof pr.path !== 'string' || typeof pr.port !== 'number' || !Number.isInteger(pr.port) || pr.port < 0 || pr.port > 65535) {
      return bad(`probes[${i}]`, 'must be {port: 0..65535, path: string}');
    }
  }
  if (!Array.isArray(o.policies)) return bad('policies', 'must be an array');
  for (const [i, p] of o.policies.entries()) {
    const pol = p as { name?: unknown; rules?: unknown };
    if (typeof pol !== 'object' || pol === null || typeof pol.name !== 'string') return bad(`policies[${i}].name`, 'must be a string');
    if (!Array.isArray(pol.rules)) return bad(`policies[${i}].rules`, 'must be an array');
    for (const [j, r] of pol.rules.entries()) {
      const f = `policies[${i}].rules[${j}]`;
      if (typeof r !== 'object' || r === null) return bad(f, 'must be an object');
      const rule = r as { sources?: unknown; ports?: unknown };
      if (rule.ports !== undefined && (!Array.isArray(rule.ports) || rule.ports.some((x) => typeof x !== 'number'))) return bad(`${f}.ports`, 'must be a list of ports');
      if (rule.sources !== undefined) {
        const s = rule.sources as { identities?: unknown; prefixes?: unknown };
        const strs = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
        if (typeof s !== 'object' || s === null || !strs(s.identities) || !strs(s.prefixes)) return bad(`${f}.sources`, 'must be {identities: string[], prefixes: string[]}');
      }
    }
  }
  if (!['mesh', 'namespace', 'pod', 'workload'].includes(o.defaultFrom as string)) return bad('defaultFrom', 'must be mesh, namespace, pod or workload');
  return { ok: true, config: raw as InboundAuthzConfig };
}

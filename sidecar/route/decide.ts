// THE decision: one pure function of (a Service's compiled config, the port
// the request was addressed to, the request value) that says what happens to
// a request, whatever protocol carried it. HTTP/1.1, HTTP/2, gRPC and
// Upgrade adapters only carry the answer out; none has a decision of its own.
//
//   respond: 404 no rule matches, 500 invalid / zero-weight backend or a
//            rule's fixed status, 502 no such port, 503 no endpoint or a
//            BackendTLSPolicy that cannot be honoured, a RequestRedirect with
//            its Location (filters.ts).
//   forward: rule, route backend, backend, endpoint (session persistence,
//            else P2C), request header edits, URL rewrite (path, authority),
//            response header edits (the session cookie/header included, one
//            way for both protocols), mirrors (BackendTLSPolicy backends
//            included), timeouts, and the retry policy slot.
//
// "Pure": no I/O and no clock of its own (`now` is an argument); the only
// state it reads besides the config is the balancer's (in-flight counts and
// EWMA latency live on the endpoints, as the issue asks of endpoint choice).
import { normalizePath } from './path-normalize.js';
import type { BuiltBackend, BuiltRouteBackend, BuiltRule, BuiltService, EndpointRt } from '../config/config-apply.js';
import { chooseBackend, chooseEndpoint } from '../balance/backend.js';
import { isRewrite, redirectLocation, rewritePath, type CompiledFilters, type CompiledHeaderEdits } from './filters.js';
import type { SeriesCache } from '../admin/metrics.js';
import type { MeshRequest } from './request.js';
import { sessionResponseHeader } from '../session/session-token.js';

/** Retry policy of the rule (api/mesh.ts `CompiledRule.retry`; retry-policy.ts says what it retries). */
export type { RetryPolicy } from '../../api/index.js';
import type { RetryPolicy } from '../../api/index.js';

export interface Timeouts {
  /** HTTPRoute timeouts.request: from when the request arrived; 0 = none. */
  requestMs: number;
  /** timeouts.backendRequest: one upstream attempt; 0 = none. */
  backendRequestMs: number;
}

export interface Mirror {
  backend: BuiltBackend;
  endpoint: EndpointRt;
  /** Upstream target (path?query) and authority, with the rule's rewrites applied. */
  path: string;
  authority: string;
  /** The rule's request header edits (a mirror gets what the rule sends, not a backendRef's edits). */
  requestEdits: CompiledHeaderEdits[];
}

export interface Respond {
  kind: 'respond';
  status: number;
  reason: string;
  /** Set for a RequestRedirect: the answer is a redirect, not a failure. */
  location?: string;
  /** Where the answer is counted (undefined: the listener's own series for requests without a route). */
  series: SeriesCache | undefined;
  rule?: BuiltRule;
}

export interface Forward {
  kind: 'forward';
  rule: BuiltRule;
  routeBackend: BuiltRouteBackend;
  backend: BuiltBackend;
  endpoint: EndpointRt;
  /** Upstream request target (path?query), rewritten by URLRewrite when configured. */
  path: string;
  /** Upstream authority (Host / :authority), rewritten by URLRewrite hostname when configured. */
  authority: string;
  /** RequestHeaderModifiers, rule then backendRef, in spec order; apply with filters.ts editRequestHeaders. */
  requestEdits: CompiledHeaderEdits[];
  /** ResponseHeaderModifiers (rule then backendRef), then the session header; undefined when none. */
  responseEdits: CompiledHeaderEdits[] | undefined;
  mirrors: Mirror[];
  timeouts: Timeouts;
  retry?: RetryPolicy;
  series: SeriesCache;
}

export type Decision = Respond | Forward;

const NO_EDITS: CompiledHeaderEdits[] = [];
const NO_MIRRORS: Mirror[] = [];


function respond(status: number, reason: string, series: SeriesCache | undefined, rule?: BuiltRule): Respond {
  return { kind: 'respond', status, reason, series, rule };
}

/** Applies one filter list's request side: header edits collected, rewrites applied to path/authority. */
function requestSide(f: CompiledFilters, path: string, query: string, prefix: string, out: { path: string; authority: string; edits: CompiledHeaderEdits[] }): void {
  for (let i = 0; i < f.request.length; i++) {
    const x = f.request[i]!;
    if (isRewrite(x)) {
      if (x.hostname) out.authority = x.hostname;
      if (x.path) out.path = rewritePath(x.path, path, prefix) + (query ? `?${query}` : '');
    } else {
      if (out.edits === NO_EDITS) out.edits = [];
      out.edits.push(x);
    }
  }
}

/**
 * What to do with `req`, addressed to `service` port `port`. `now` (ms since
 * the epoch) is for session tokens; `rand` for the weighted backendRef pick;
 * `mergeSlashes` the workload's path-normalisation option.
 */
export function decide(service: BuiltService, port: number, req: MeshRequest, now: number = Date.now(), rand?: () => number, mergeSlashes = false): Decision {
  const bp = service.ports.get(port);
  if (!bp) return respond(502, `service ${service.key} has no port ${port}`, undefined);

  // Match what the app will see (issue 16): dot segments removed, unreserved
  // characters decoded, %2F/%5C kept; a path that cannot be normalised is 400.
  const norm = normalizePath(req.path, { mergeSlashes });
  if (!norm.ok) return respond(400, `request path rejected: ${norm.reason}`, bp.noRoute);
  const path = norm.path;
  const query = req.query;

  let rule: BuiltRule;
  let prefix = '';
  if (bp.defaultRule) rule = bp.defaultRule;
  else {
    const m = bp.matcher!.match({ method: req.method, path, query, headers: req.headers });
    if (!m) return respond(404, `no route of service ${service.key} port ${port} matches`, bp.noRoute);
    rule = bp.rules[m.rule]!;
    prefix = m.prefix;
  }
  if (rule.fixed) return respond(rule.fixed.status, rule.fixed.reason, rule.series, rule);

  const target = query ? `${path}?${query}` : path;
  const up = { path: target, authority: req.authority, edits: NO_EDITS };
  if (!rule.filters.empty) {
    const f = rule.filters;
    if (f.redirect) {
      const loc = redirectLocation(f.redirect, { scheme: 'http', host: req.authority, port, path, query }, prefix);
      return { kind: 'respond', status: f.redirect.statusCode, reason: 'redirect', location: loc, series: rule.series, rule };
    }
    requestSide(f, path, query, prefix, up);
  }

  // Mirrors see the rule's request (spec: RequestMirror is a rule filter); a
  // BackendTLSPolicy backend is mirrored over TLS like any request to it.
  let mirrors = NO_MIRRORS;
  if (rule.mirrors.length) {
    for (const b of rule.mirrors) {
      if (b.tlsRefusal && !b.tlsOrigin) continue;
      const ep = b.balancer.pick();
      if (!ep) continue;
      if (mirrors === NO_MIRRORS) mirrors = [];
      mirrors.push({ backend: b, endpoint: ep, path: up.path, authority: up.authority, requestEdits: up.edits });
    }
  }

  const rb = chooseBackend(rule, req.headers, now, rand);
  if (!rb) return respond(500, 'no backend with weight > 0', rule.series, rule);
  if (rb.invalid || !rb.backend) {
    const inv = rb.invalid ?? { status: 500, reason: 'backend not found' };
    return respond(inv.status, inv.reason, rb.series, rule);
  }
  if (!rb.filters.empty) {
    const f = rb.filters;
    if (f.redirect) {
      const loc = redirectLocation(f.redirect, { scheme: 'http', host: up.authority, port, path, query }, prefix);
      return { kind: 'respond', status: f.redirect.statusCode, reason: 'redirect', location: loc, series: rb.series, rule };
    }
    if (up.edits !== NO_EDITS) up.edits = up.edits.slice();
    requestSide(f, path, query, prefix, up);
  }
  const backend = rb.backend;
  if (backend.tlsRefusal && !backend.tlsOrigin) return respond(503, backend.tlsRefusal, rb.series, rule);
  const ep = chooseEndpoint(rule, backend, req.headers, now);
  if (!ep) return respond(503, `no endpoints for ${backend.key}`, rb.series, rule);

  const responseEdits = responseEditsFor(rule, rb, backend, ep, req.headers, now);
  const retry: RetryPolicy | undefined = rule.retry;
  return {
    kind: 'forward',
    rule,
    routeBackend: rb,
    backend,
    endpoint: ep,
    path: up.path,
    authority: up.authority,
    requestEdits: up.edits,
    responseEdits,
    mirrors,
    timeouts: { requestMs: rule.requestMs, backendRequestMs: rule.backendRequestMs },
    ...(retry ? { retry } : {}),
    series: rb.series,
  };
}

/**
 * The response header edits of a forward to `ep`: the backendRef's
 * ResponseHeaderModifiers, then the session cookie/header that pins `ep`
 * (a retry on another endpoint recomputes them: session failover).
 */
export function responseEditsFor(rule: BuiltRule, rb: BuiltRouteBackend, backend: BuiltBackend, ep: EndpointRt, headers: MeshRequest['headers'], now: number): CompiledHeaderEdits[] | undefined {
  let responseEdits = rb.responseEdits;
  if (rule.session || backend.session) {
    const h = sessionResponseHeader(rule, backend, ep, headers, now);
    if (h) {
      // set-cookie is added as its own field line; the session header replaces any the app sent.
      const edit: CompiledHeaderEdits = h[0] === 'set-cookie' ? { set: [], add: [h], remove: [] } : { set: [h], add: [], remove: [] };
      responseEdits = responseEdits ? [...responseEdits, edit] : [edit];
    }
  }
  return responseEdits;
}

/**
 * The deadline of one upstream attempt: timeouts.request counts from when the
 * request arrived (`elapsedMs`, a wait for the Service's first config
 * included), backendRequest from the dispatch, a gRPC caller's grpc-timeout
 * from its arrival; the shortest wins. 0 = none.
 */
export function attemptTimeout(t: Timeouts, elapsedMs: number, grpcTimeoutMs = 0): { ms: number; kind: 'request' | 'backendRequest' } {
  const requestLeft = t.requestMs ? Math.max(1, t.requestMs - elapsedMs) : 0;
  const grpcLeft = grpcTimeoutMs ? Math.max(1, grpcTimeoutMs - elapsedMs) : 0;
  let ms = minTimeout(requestLeft, t.backendRequestMs);
  const kind = t.backendRequestMs && (!requestLeft || t.backendRequestMs <= requestLeft) ? 'backendRequest' : 'request';
  ms = minTimeout(ms, grpcLeft);
  return { ms, kind };
}

function minTimeout(a: number, b: number): number {
  if (!a) return b;
  if (!b) return a;
  return Math.min(a, b);
}

// Gateway API match precedence, computed once per config so the sidecar can
// take the first entry that matches.
//
// HTTPRoute (HTTPRouteRule.Matches doc, v1.1): across all rules of all
// applicable routes, precedence goes to the match having
//   1. an Exact path match,
//   2. a PathPrefix match with the largest number of characters,
//   3. a method match,
//   4. the largest number of header matches,
//   5. the largest number of query param matches;
// then the oldest route (creationTimestamp), then "{namespace}/{name}"
// alphabetically; within a route the first rule in list order (and, within a
// rule, the first match). RegularExpression paths are implementation-specific:
// weft ranks them after Exact and before PathPrefix, longer patterns first
// (the order linkerd2 uses), so a catch-all prefix never shadows a regex.
// A PathPrefix's length is counted without its ignored trailing slash.
//
// GRPCRoute (GRPCRouteRule.Matches doc): hostnames are ignored for mesh
// (GEP-1426), so the largest number of characters in a matching service,
// then in a matching method, then the most header matches; the same route
// and rule tie-breakers.

export interface RouteOrder {
  /** creationTimestamp in ms since the epoch; Infinity when unknown (newest). */
  created: number;
  /** "{namespace}/{name}" */
  key: string;
  ruleIndex: number;
  matchIndex: number;
}

export interface HTTPMatchKey extends RouteOrder {
  pathType: 'Exact' | 'PathPrefix' | 'RegularExpression';
  pathLength: number;
  hasMethod: boolean;
  headers: number;
  queryParams: number;
}

export interface GRPCMatchKey extends RouteOrder {
  serviceLength: number;
  methodLength: number;
  headers: number;
}

const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

export function compareRouteOrder(a: RouteOrder, b: RouteOrder): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  return a.matchIndex - b.matchIndex;
}

/** Negative when `a` takes precedence over `b`. */
export function compareHTTPMatch(a: HTTPMatchKey, b: HTTPMatchKey): number {
  const ra = PATH_RANK[a.pathType];
  const rb = PATH_RANK[b.pathType];
  if (ra !== rb) return ra - rb;
  if (a.pathType !== 'Exact' && a.pathLength !== b.pathLength) return b.pathLength - a.pathLength;
  if (a.hasMethod !== b.hasMethod) return a.hasMethod ? -1 : 1;
  if (a.headers !== b.headers) return b.headers - a.headers;
  if (a.queryParams !== b.queryParams) return b.queryParams - a.queryParams;
  return compareRouteOrder(a, b);
}

export function compareGRPCMatch(a: GRPCMatchKey, b: GRPCMatchKey): number {
  if (a.serviceLength !== b.serviceLength) return b.serviceLength - a.serviceLength;
  if (a.methodLength !== b.methodLength) return b.methodLength - a.methodLength;
  if (a.headers !== b.headers) return b.headers - a.headers;
  return compareRouteOrder(a, b);
}

/** creationTimestamp → ms; unknown or unparsable sorts as newest. */
export function createdMs(ts: string | undefined): number {
  if (!ts) return Number.POSITIVE_INFINITY;
  const t = Date.parse(ts);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** The path length precedence counts: a PathPrefix ignores a trailing '/'. */
export function prefixLength(value: string): number {
  return value.length > 1 && value.endsWith('/') ? value.length - 1 : value.length;
}

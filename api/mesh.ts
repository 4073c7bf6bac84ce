// The compiled configuration that control sends and sidecars enforce.
//
// control/compile turns the typed resources into these plain objects; the
// sidecar builds its matchers, balancers and TLS contexts from them once per
// update and never looks at a Gateway API resource. Everything here is plain
// JSON (no Maps, no Dates, no RegExps) because it travels in
// ServiceUpdate.config_json.
//
// Keys used throughout:
//   service key  "namespace/name"
//   backend key  "namespace/name:port"   (port = the Service port)

export type AppProtocol = 'http' | 'http2' | 'grpc' | 'tcp' | '';

/** One compiled view: Service `service` as seen by callers in `consumerNamespace`. */
export interface ServiceConfig {
  service: string;
  namespace: string;
  name: string;
  consumerNamespace: string;
  clusterIP: string;
  ports: PortConfig[];
  /** Every backend that a rule, mirror or default of this Service names. */
  backends: Record<string, BackendConfig>;
  /**
   * Secret (base64) the sidecar uses to sign session-persistence tokens for
   * this Service; derived by control from the mesh's session key so every
   * sidecar (and a restarted one) accepts the same tokens.
   */
  sessionSecret: string;
}

export interface PortConfig {
  port: number;
  name?: string;
  targetPort: number;
  appProtocol: AppProtocol;
  /**
   * Which route type governs this port: GEP-1426 lets one type win per
   * Service port (GRPCRoute over HTTPRoute). 'none': no route attached, all
   * traffic goes to `defaultBackend` as plain Kubernetes would.
   */
  routeKind: 'none' | 'HTTPRoute' | 'GRPCRoute';
  /** Backend key of this Service's own endpoints on this port. */
  defaultBackend: string;
  /** Rules by id (index in this array == id). */
  rules: CompiledRule[];
  /**
   * Every (match, rule) pair of every route on this port, already sorted by
   * Gateway API precedence (first entry that matches wins). GRPCRoute method
   * matches are expressed as the equivalent :path matches of GEP-1016.
   */
  matches: MatchEntry[];
}

export interface RouteRef {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
  name: string;
  /** Index of the rule in spec.rules. */
  ruleIndex: number;
  /** spec.rules[].name when set. */
  ruleName?: string;
}

export interface MatchEntry {
  rule: number; // index into PortConfig.rules
  path: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string };
  /** Header names lower-cased. */
  headers: ValueMatch[];
  queryParams: ValueMatch[];
  method?: string;
}

export interface ValueMatch {
  type: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface CompiledRule {
  route: RouteRef;
  /** Rule-level filters, in spec order. */
  filters: Filter[];
  backends: WeightedBackend[];
  timeouts?: { requestMs?: number; backendRequestMs?: number };
  session?: SessionConfig;
  /**
   * When set, the rule answers with this status and calls no backend
   * (e.g. 500 for an unsupported ExtensionRef filter, 500 when every
   * backendRef is invalid or all weights are zero).
   */
  fixed?: { status: number; reason: string };
  /**
   * Retries configured on the rule (HTTPRoute `rules[].retry`, GEP-1731, or a
   * GRPCRoute's `retry.weft.io/*` annotations). Absent: only safe retries
   * (attempts that never reached the app) are made, see SAFE_RETRIES.
   */
  retry?: RetryPolicy;
}

/** A rule's retry policy, as the sidecar's forward step applies it. */
export interface RetryPolicy {
  /** HTTP response codes to retry (GEP-1731 `codes`, 400–599). */
  codes: number[];
  /** gRPC status codes (numbers 1–16) to retry (`retry.weft.io/grpc`). */
  grpcCodes: number[];
  /** The most retries of one request: at most 1 + attempts tries reach the app. */
  attempts: number;
  /** Minimum wait before a retry (GEP-1731 `backoff`); jitter and doubling add to it. */
  backoffMs: number;
  /** Per-try timeout (`retry.weft.io/timeout`); the rule's backendRequest timeout otherwise. */
  perTryTimeoutMs?: number;
  /** Where it came from, for describe and /config. */
  source: 'HTTPRoute' | 'annotations';
}

/**
 * Attempts that failed before any byte reached the destination app (connect
 * refused or timed out, TLS handshake failure, REFUSED_STREAM, ...) are tried
 * again on another endpoint this many more times, for every method, with or
 * without a RetryPolicy.
 */
export const SAFE_RETRIES = 2;

/** GEP-1731 leaves unset `attempts` / `backoff` to the implementation: weft's choice. */
export const DEFAULT_RETRY_ATTEMPTS = 2;
export const DEFAULT_RETRY_BACKOFF_MS = 25;

/**
 * A retry budget (XBackendTrafficPolicy `retryConstraint`, GEP-3388): retries
 * to a backend may be at most `percent`% of its requests over `intervalMs`,
 * plus `minRetryCount` per `minRetryIntervalMs` whatever the traffic.
 */
export interface RetryBudget {
  percent: number;
  intervalMs: number;
  minRetryCount: number;
  minRetryIntervalMs: number;
  /** "namespace/name" of the XBackendTrafficPolicy, absent for the defaults. */
  policy?: string;
}

/** The CRD's defaults: budget {percent: 20, interval: 10s}, minRetryRate {count: 10, interval: 1s}. */
export const DEFAULT_RETRY_BUDGET: RetryBudget = { percent: 20, intervalMs: 10_000, minRetryCount: 10, minRetryIntervalMs: 1000 };

export interface WeightedBackend {
  /** Backend key; '' when the backendRef did not resolve. */
  backend: string;
  weight: number;
  filters: Filter[];
  /** A backendRef that did not resolve answers 500 for its share (spec). */
  invalid?: { status: number; reason: string };
}

export interface HeaderEdits {
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
}

export interface PathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  value: string;
}

export type Filter =
  | ({ type: 'RequestHeaderModifier' } & HeaderEdits)
  | ({ type: 'ResponseHeaderModifier' } & HeaderEdits)
  | {
      type: 'RequestRedirect';
      scheme?: 'http' | 'https';
      hostname?: string;
      port?: number;
      path?: PathModifier;
      statusCode: number;
    }
  | { type: 'URLRewrite'; hostname?: string; path?: PathModifier }
  | { type: 'RequestMirror'; backend: string };

export interface SessionConfig {
  type: 'Cookie' | 'Header';
  /** Cookie or header name. */
  name: string;
  absoluteTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Cookie lifetimeType Permanent: Max-Age = absoluteTimeout. */
  permanent: boolean;
  /** Cookie Path attribute (unset when the config came from a BackendLBPolicy). */
  path?: string;
  /** Distinct per route rule, so two rules never share a session (GEP-1619). */
  scope: string;
  /** Where the setting came from, for /config and describe. */
  source: 'route' | 'BackendLBPolicy';
}

export interface BackendConfig {
  key: string;
  namespace: string;
  name: string;
  port: number;
  endpoints: Endpoint[];
  /** TLS origination from a BackendTLSPolicy (only for non-meshed backends). */
  tls?: BackendTLS;
  /** Session persistence from a BackendLBPolicy targeting this Service. */
  session?: SessionConfig;
  /** Retry budget from an XBackendTrafficPolicy targeting this Service; absent: DEFAULT_RETRY_BUDGET. */
  retryBudget?: RetryBudget;
}

export interface Endpoint {
  ip: string;
  /** The app's port (the Service port's targetPort resolved for this endpoint). */
  port: number;
  /** Present when the endpoint runs a weft sidecar: dial ip:7002 over mTLS. */
  identity?: { namespace: string; serviceAccount: string };
  pod?: string;
  workload?: string;
  /** false while terminating: used only if nothing is ready. */
  ready: boolean;
}

export interface BackendTLS {
  /** SNI and the name the server certificate must carry. */
  hostname: string;
  /** PEM bundle from caCertificateRefs. */
  caPem?: string;
  /** wellKnownCACertificates: System. */
  system?: boolean;
  /** The policy is invalid: fail closed with 503, never plaintext. */
  invalid?: string;
  policy: string; // "namespace/name"
}

/** A service directory entry as the sidecar keeps it (from the proto). */
export interface DirectoryEntry {
  namespace: string;
  name: string;
  clusterIP: string;
  ports: Array<{ name: string; port: number; targetPort: number; appProtocol: AppProtocol }>;
  meshed: boolean;
}

export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function backendKey(namespace: string, name: string, port: number): string {
  return `${namespace}/${name}:${port}`;
}

/** TLS server name of the mesh hop: `<port>.<sa>.<ns>.weft` (DESIGN.md). */
export function hopServerName(port: number, serviceAccount: string, namespace: string): string {
  return `${port}.${serviceAccount}.${namespace}.weft`;
}

export function parseHopServerName(
  sni: string,
): { port: number; serviceAccount: string; namespace: string } | null {
  // Namespaces are DNS labels (no dots); service accounts may hold dots.
  const m = /^(\d{1,5})\.([a-z0-9][-a-z0-9.]*)\.([a-z0-9][-a-z0-9]*)\.weft$/.exec(sni);
  if (!m) return null;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return null;
  return { port, serviceAccount: m[2]!, namespace: m[3]! };
}

// ---- Inbound authorization (AuthorizationPolicy, GEP-3779) -------------------
//
// One view per pod (its namespace and labels from Hello): the policies that
// select it, compiled, and its default inbound policy. It travels in
// InboundUpdate.config_json; the sidecar builds its checker from it once.

/** Linkerd's default inbound policies; `all-unauthenticated` is today's behaviour. */
export type DefaultInboundPolicy = 'all-unauthenticated' | 'all-authenticated' | 'deny' | 'audit';
export const DEFAULT_INBOUND_POLICIES: readonly DefaultInboundPolicy[] = ['all-unauthenticated', 'all-authenticated', 'deny', 'audit'];
export const DEFAULT_INBOUND_POLICY_ANNOTATION = 'weft.io/default-inbound-policy';
/** Hello.features value of a sidecar that enforces InboundUpdate. */
export const FEATURE_INBOUND_AUTHZ = 'inbound-authz';
/** Ack.resource of InboundUpdate. */
export const INBOUND_RESOURCE = 'inbound';

export interface InboundAuthzConfig {
  /** "namespace/pod" (or workload) this view was compiled for, for /config. */
  pod: string;
  defaultPolicy: DefaultInboundPolicy;
  /** Where the default came from. */
  defaultFrom: 'mesh' | 'namespace' | 'pod' | 'workload';
  /** Probe paths (exact, query excluded); port 0 = any port. Allowed under every mode and policy. */
  probes: Array<{ port: number; path: string }>;
  /** Every ALLOW policy that targets this pod, by name. */
  policies: AuthzPolicyConfig[];
}

export interface AuthzPolicyConfig {
  /** "namespace/name" */
  name: string;
  rules: AuthzRuleConfig[];
}

export interface AuthzRuleConfig {
  /** Absent: any caller (sources omitted). Present and both lists empty: nobody (`sources: []`). */
  sources?: {
    /** Exact SPIFFE IDs. */
    identities: string[];
    /** SPIFFE ID prefixes "spiffe://<td>/ns/<ns>/sa/" (serviceAccount name "*"). */
    prefixes: string[];
  };
  /** Destination (app) ports; absent = every port. */
  ports?: number[];
}

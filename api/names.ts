// Names every part agrees on (shared/DESIGN.md, "Names every part agrees on").
export const WEFT_VERSION = '0.1.0';

export const INJECT_NAMESPACE_LABEL = 'weft.io/inject';
export const INJECT_ANNOTATION = 'weft.io/inject';
export const INJECTED_ANNOTATION = 'weft.io/injected';

export const PORTS = {
  outbound: 7001,
  inbound: 7002,
  admin: 7090,
  controlGrpc: 7443,
  controlAdmin: 7091,
  injector: 8443,
} as const;

export const PROXY_UID = 2102;
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const LEAF_LIFETIME_MS = 24 * 3600 * 1000;
export const RENEW_FRACTION = 0.7;

/** ALPN protocols of the mesh hop. */
export const ALPN_HTTP = ['h2', 'http/1.1'];
export const ALPN_OPAQUE = 'weft-opaque';

/** Local-mode STATE directory layout (control writes, local sidecars read). */
export const STATE_FILES = {
  trustBundle: 'trust-bundle.pem', // PEM anchors (several during rotation)
  bootstrapToken: 'bootstrap-token', // mode 0600
  anchorCert: 'ca/anchor.pem',
  anchorKey: 'ca/anchor.key', // mode 0600
  issuerCert: 'ca/issuer.pem',
  issuerKey: 'ca/issuer.key', // mode 0600
  sessionKey: 'session-key', // mode 0600
  controlAddress: 'control-address', // "127.0.0.1:7443"
} as const;

/**
 * GRPCRoute retries, configured the way Linkerd's `retry.linkerd.io/*` are:
 * annotations on the route that apply to each of its rules.
 */
export const RETRY_ANNOTATIONS = {
  /** Comma-separated gRPC status names to retry: `unavailable,resource-exhausted`. */
  grpc: 'retry.weft.io/grpc',
  /** The most retries of one call (default 2). */
  limit: 'retry.weft.io/limit',
  /** Timeout of each try, a Gateway API duration (`500ms`). */
  timeout: 'retry.weft.io/timeout',
  /** Minimum wait between tries, a Gateway API duration (default 25ms). */
  backoff: 'retry.weft.io/backoff',
} as const;

/** gRPC status names (lower-case, dashes) → codes, as `retry.weft.io/grpc` spells them. */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  cancelled: 1,
  unknown: 2,
  'invalid-argument': 3,
  'deadline-exceeded': 4,
  'not-found': 5,
  'already-exists': 6,
  'permission-denied': 7,
  'resource-exhausted': 8,
  'failed-precondition': 9,
  aborted: 10,
  'out-of-range': 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  'data-loss': 15,
  unauthenticated: 16,
};

/**
 * Per-workload resilience settings: pod (or local Workload) annotations the
 * sidecar reads as its `--failure-accrual` / `--max-in-flight` flags.
 */
export const RESILIENCE_ANNOTATIONS = {
  /** Consecutive failed attempts that take an endpoint out of the balancer (default 7; 0 turns it off). */
  failureAccrual: 'config.weft.io/failure-accrual',
  /** In-flight requests per backend past which the sidecar sheds with 503 (default 10000; 0: no bound). */
  maxInFlight: 'config.weft.io/max-in-flight',
} as const;

export const DEFAULT_FAILURE_ACCRUAL = 7;
export const DEFAULT_MAX_IN_FLIGHT = 10_000;

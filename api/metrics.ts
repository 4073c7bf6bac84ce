// Metric and label names shared by the sidecar and control (which export
// them), the Grafana dashboards and `weft stat` (which query them). Every
// name a dashboard uses must be listed here; the dashboard lint checks it.
//
// Label values are bounded: mesh identities, Service and route names, status
// codes. Never paths, query strings or hostnames from outside the mesh
// (those become service="external").

export const METRIC_PREFIX = 'weft_';

/** Sidecar metrics, recorded at both ends of a hop. */
export const SIDECAR_METRICS = {
  requestsTotal: 'weft_requests_total', // counter
  requestDuration: 'weft_request_duration_seconds', // histogram
  tcpOpenTotal: 'weft_tcp_connections_opened_total', // counter
  tcpCloseTotal: 'weft_tcp_connections_closed_total', // counter
  tcpOpen: 'weft_tcp_connections_open', // gauge
  tcpReadBytes: 'weft_tcp_read_bytes_total', // counter
  tcpWriteBytes: 'weft_tcp_write_bytes_total', // counter
  configVersion: 'weft_config_version_info', // gauge =1 with label version
  configAppliedTimestamp: 'weft_config_last_applied_timestamp_seconds', // gauge
  snapshotsApplied: 'weft_config_updates_applied_total', // counter
  snapshotsNacked: 'weft_config_updates_nacked_total', // counter
  certExpiry: 'weft_certificate_expiry_timestamp_seconds', // gauge
  detectTotal: 'weft_protocol_detections_total', // counter, label protocol
  controlConnected: 'weft_control_connected', // gauge 0/1
  authzDecisions: 'weft_authz_decisions_total', // counter: inbound authorization outcomes

  limitRejections: 'weft_limit_rejections_total', // counter, labels direction, limit (sidecar/listen/limits.ts)

  observeDropped: 'weft_observe_dropped_total', // counter, label sink (tap | access-log | trace)
} as const;

/**
 * Labels of weft_authz_decisions_total: `policy` "ns/name" of the
 * AuthorizationPolicy that decided, `default:<mode>` for the default inbound
 * policy, `probe` for a probe path; `source_identity` the caller's SPIFFE ID
 * ('' unauthenticated; capped per sidecar, then "other"); `decision`
 * allow | deny | audit (allowed, but a policy would have denied it).
 */
export const AUTHZ_LABELS = ['policy', 'source_identity', 'decision'] as const;

/** Labels of weft_requests_total / weft_request_duration_seconds. */
export const REQUEST_LABELS = [
  'direction', // outbound | inbound
  'src_namespace',
  'src_workload',
  'src_service_account',
  'dst_namespace',
  'dst_workload',
  'dst_service_account',
  'dst_service', // "name" of the Service addressed ('' for pod-IP traffic, 'external' outside the mesh)
  'dst_port',
  'route_kind', // HTTPRoute | GRPCRoute | '' (no route: default)
  'route_namespace',
  'route_name',
  'route_rule', // rule name when set, else ''
  'backend', // backend Service name chosen by the rule ("ns/name")
  'status_code', // "200"
  'status_class', // "2xx"
  'grpc_status', // "0".."16" for gRPC, else ''
  'tls', // "true" | "false"
  'peer_identity', // inbound: caller's SPIFFE ID ('' without mTLS); outbound: the server's
] as const;

/**
 * Labels of the tcp_* metrics; `peer` is the other end (its SPIFFE ID on
 * inbound mTLS). Dashboards select one workload's connections by joining on
 * `instance` with that workload's request series.
 */
export const TCP_LABELS = ['direction', 'peer', 'tls'] as const;

/** Buckets from 0.25 ms to 30 s: sub-millisecond resolution for mesh hops. */
export const LATENCY_BUCKETS = [
  0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/**
 * Resilience (issue 14), outbound only: retries made and not made, endpoints
 * out of the balancer, requests shed. Recorded by the caller's sidecar.
 */
export const RESILIENCE_METRICS = {
  retries: 'weft_retries_total', // counter, RETRY_LABELS
  retriesSkipped: 'weft_retries_skipped_total', // counter, RETRY_LABELS; reason budget|body_too_large|attempts|deadline|no_endpoint
  endpointEjected: 'weft_endpoint_ejected', // gauge 0/1 per endpoint, ENDPOINT_LABELS
  endpointEjections: 'weft_endpoint_ejections_total', // counter, ENDPOINT_LABELS
  requestsShed: 'weft_requests_shed_total', // counter, ['dst_namespace', 'dst_service', 'backend']
} as const;

/**
 * Labels of weft_retries_total / weft_retries_skipped_total. `reason` (retried):
 * connect_refused, connect_timeout, unreachable, tls_handshake,
 * reset_before_request, refused_stream, goaway, app_refused (safe), reset,
 * timeout, status, grpc_status (by policy).
 */
export const RETRY_LABELS = ['dst_namespace', 'dst_service', 'route_kind', 'route_namespace', 'route_name', 'route_rule', 'backend', 'reason'] as const;

/** Labels of the endpoint metrics: endpoint is "ip:port" of a mesh pod (bounded). */
export const ENDPOINT_LABELS = ['dst_namespace', 'dst_service', 'backend', 'endpoint'] as const;

/** Control-plane metrics. */
export const CONTROL_METRICS = {
  connectedSidecars: 'weft_control_connected_sidecars', // gauge
  compileDuration: 'weft_control_compile_duration_seconds', // histogram
  pushDuration: 'weft_control_push_duration_seconds', // histogram: change → last ACK
  nacks: 'weft_control_nacks_total', // counter, label reason
  certsSigned: 'weft_control_certificates_signed_total', // counter
  sourceSynced: 'weft_control_source_synced', // gauge, label source
  configErrors: 'weft_control_config_errors', // gauge, current invalid resources
  configVersion: 'weft_control_config_version_info',
  anchorExpiry: 'weft_control_trust_anchor_expiry_timestamp_seconds', // gauge
  issuerExpiry: 'weft_control_issuer_expiry_timestamp_seconds', // gauge
  limitRejections: 'weft_control_limit_rejections_total', // counter, label limit (streams_per_peer)
} as const;

/**
 * The labels each exported metric carries (histograms: their _bucket series
 * add `le`). Prometheus adds the target labels `instance` and `job` (and, in
 * Kubernetes, whatever the scrape config relabels in); dashboards use only
 * these plus `instance`/`job`, so they work in local mode and in a cluster.
 * The dashboard lint (e2e/dashboards-lint.test.ts) checks every query here.
 */
export const METRIC_LABELS: Readonly<Record<string, readonly string[]>> = {
  [SIDECAR_METRICS.requestsTotal]: REQUEST_LABELS,
  [SIDECAR_METRICS.requestDuration]: REQUEST_LABELS,
  [SIDECAR_METRICS.tcpOpenTotal]: TCP_LABELS,
  [SIDECAR_METRICS.tcpCloseTotal]: TCP_LABELS,
  [SIDECAR_METRICS.tcpOpen]: TCP_LABELS,
  [SIDECAR_METRICS.tcpReadBytes]: TCP_LABELS,
  [SIDECAR_METRICS.tcpWriteBytes]: TCP_LABELS,
  [SIDECAR_METRICS.configVersion]: ['resource', 'version'],
  [SIDECAR_METRICS.configAppliedTimestamp]: [],
  [SIDECAR_METRICS.snapshotsApplied]: ['resource_type'],
  [SIDECAR_METRICS.snapshotsNacked]: ['resource_type'],
  [SIDECAR_METRICS.certExpiry]: ['kind', 'identity'], // kind: leaf | anchor
  [SIDECAR_METRICS.detectTotal]: ['direction', 'protocol'],
  [SIDECAR_METRICS.controlConnected]: [],
  [RESILIENCE_METRICS.retries]: RETRY_LABELS,
  [RESILIENCE_METRICS.retriesSkipped]: RETRY_LABELS,
  [RESILIENCE_METRICS.endpointEjected]: ENDPOINT_LABELS,
  [RESILIENCE_METRICS.endpointEjections]: ENDPOINT_LABELS,
  [RESILIENCE_METRICS.requestsShed]: ['dst_namespace', 'dst_service', 'backend'],
  [SIDECAR_METRICS.authzDecisions]: AUTHZ_LABELS,

  [SIDECAR_METRICS.limitRejections]: ['direction', 'limit'],
  [CONTROL_METRICS.connectedSidecars]: [],
  [CONTROL_METRICS.compileDuration]: [],
  [CONTROL_METRICS.pushDuration]: [],
  [CONTROL_METRICS.nacks]: ['reason'],
  [CONTROL_METRICS.certsSigned]: [],
  [CONTROL_METRICS.sourceSynced]: ['source'],
  [CONTROL_METRICS.configErrors]: [],
  [CONTROL_METRICS.configVersion]: ['version'],
  [CONTROL_METRICS.anchorExpiry]: [],
  [CONTROL_METRICS.issuerExpiry]: [],
  [CONTROL_METRICS.limitRejections]: ['limit'],
};

/** Metrics that are histograms (exported as _bucket, _sum and _count). */
export const HISTOGRAM_METRICS: readonly string[] = [
  SIDECAR_METRICS.requestDuration,
  CONTROL_METRICS.compileDuration,
  CONTROL_METRICS.pushDuration,
];

// What the inbound's HTTP/2 path is built with (listen-inbound.ts passes it
// to inbound-h2.ts when a hop negotiates ALPN h2; nothing registers at import).
import type { SelfInfo } from '../config/config-apply.js';
import type { EndpointPools } from '../hop/endpoint-pool.js';
import type { SidecarMetrics } from '../admin/metrics.js';
import type { InboundAuthz } from './authz-state.js';

export interface InboundContext {
  podIP: string;
  metrics: SidecarMetrics;
  pools: EndpointPools;
  self: SelfInfo;
  log: (line: string) => void;
  /** True once the sidecar drains: the caller's session gets a GOAWAY. */
  draining?: (() => boolean) | undefined;
  /** Inbound authorization (AuthorizationPolicy, default inbound policy); absent: every caller allowed. */
  authz?: InboundAuthz | undefined;
}

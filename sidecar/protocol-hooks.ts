// Where the HTTP/2 and gRPC path plugs into the listeners without editing
// them: a module registers handlers here at import time (e.g.
// `http2-outbound.ts` calls setProtocolHooks({ outboundH2c })), and the
// listeners hand matching connections to them. Unset hooks keep today's
// behaviour (h2c outbound goes to the opaque path; the hop offers
// http/1.1 only).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { IdentityHolder } from './bootstrap.js';
import type { MeshState, SelfInfo } from './config-apply.js';
import type { ConfigStream } from './config-stream.js';
import type { EndpointPools } from './endpoint-pool.js';
import type { SidecarMetrics } from './metrics.js';
import type { OriginalDst } from './original-dst.js';

/** What the outbound side knows; the same objects the HTTP/1 path uses. */
export interface OutboundContext {
  state: MeshState;
  stream: ConfigStream;
  pools: EndpointPools;
  metrics: SidecarMetrics;
  identity: IdentityHolder;
  self: SelfInfo;
  log: (line: string) => void;
}

export interface InboundContext {
  podIP: string;
  metrics: SidecarMetrics;
  pools: EndpointPools;
  self: SelfInfo;
  log: (line: string) => void;
}

export interface ProtocolHooks {
  /** An outbound connection detected as h2c prior knowledge (gRPC); the bytes read are still in the socket. */
  outboundH2c?: (socket: Socket, dst: OriginalDst | undefined, ctx: OutboundContext) => void;
  /** A mesh hop that negotiated ALPN `h2`; `port` is the app port from the server name, `peer` the caller's SPIFFE ID. */
  inboundH2?: (socket: TLSSocket, port: number, peer: string, ctx: InboundContext) => void;
  /** ALPN protocols the inbound offers before `http/1.1` (e.g. ['h2']). */
  inboundAlpn?: string[];
}

let hooks: ProtocolHooks = {};

export function setProtocolHooks(h: ProtocolHooks): void {
  hooks = { ...hooks, ...h };
}

export function protocolHooks(): ProtocolHooks {
  return hooks;
}

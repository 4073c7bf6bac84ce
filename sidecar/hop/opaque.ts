// Opaque TCP through the mesh: bytes in, bytes out, no parsing.
//
// Outbound, to a meshed endpoint: mutual TLS to <pod IP>:7002 with ALPN
// `weft-opaque` and the server name `<port>.<sa>.<ns>.weft` (DESIGN.md, "The
// hop between two sidecars"), so identity and encryption hold for any TCP
// protocol (Redis, Postgres, the app's own TLS). To anything else: plain TCP
// to where the app was going. Inbound, a hop that negotiated `weft-opaque`:
// plain TCP to <pod IP>:<port>.
//
// Both directions are spliced with half-close kept (a client that shuts down
// its sending side still gets the whole answer) and an error on either side
// closes both. Sockets handed in should come from servers created with
// `allowHalfOpen: true`; splice() turns it on for the sockets it touches.
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { ALPN_OPAQUE, DEFAULT_TRUST_DOMAIN, hopServerName, PORTS } from '../../api/index.js';
import { spiffeId, spiffeIdOfSubjectAltName } from '../../certs/index.js';

/**
 * Where tcp_* metrics go. SidecarMetrics.connection() has this shape: it
 * counts one connection (opened now, closed, bytes read/written from the
 * socket's own counters on 'close').
 */
export interface TcpMetricsSink {
  connection(
    socket: { bytesRead: number; bytesWritten: number; once(ev: 'close', f: () => void): unknown },
    direction: string,
    peer: string,
    tls: boolean,
  ): void;
}

/** A meshed endpoint: the app's port and the workload identity behind it. */
export interface MeshEndpoint {
  ip: string;
  /** The app's port (target port); it rides in the TLS server name. */
  port: number;
  identity: { namespace: string; serviceAccount: string };
}

export interface OpaqueOutboundOptions {
  /** The sidecar's leaf and trust bundle (a getter follows certificate rotation). */
  secureContext: tls.SecureContext | (() => tls.SecureContext);
  trustDomain?: string;
  /** The peer's inbound port (default 7002). */
  inboundPort?: number;
  metrics?: TcpMetricsSink;
  /** tcp_* `peer` label; default: the server's SPIFFE ID (mesh) or '' (direct). */
  peer?: string;
  /** Give up connecting after this long (default 10 s); the app's socket is reset. */
  connectTimeoutMs?: number;
}

export interface OpaqueResult {
  /** Resolves when both sockets are closed. */
  closed: Promise<void>;
  /** The upstream socket (for tests and admin). */
  upstream: net.Socket;
}

/** Grace for the other side to finish once one socket has closed. */
const LINGER_MS = 10_000;

function destroyHard(s: net.Socket | Duplex): void {
  const rd = (s as net.Socket).resetAndDestroy;
  if (typeof rd === 'function' && s instanceof net.Socket && !s.destroyed && !(s instanceof tls.TLSSocket)) rd.call(s);
  else s.destroy();
}

/**
 * Pipes a ↔ b. FIN from one side ends the other's writing side only; an
 * error on either destroys both (the app then sees a reset, not a clean
 * end). Resolves once both have closed.
 */
export function splice(a: net.Socket, b: net.Socket): Promise<void> {
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  a.pipe(b);
  b.pipe(a);
  let failed = false;
  const fail = () => {
    if (failed) return;
    failed = true;
    destroyHard(a);
    destroyHard(b);
  };
  a.on('error', fail);
  b.on('error', fail);
  const closedOne = (other: net.Socket) => () => {
    if (other.destroyed) return;
    // Nothing more can flow into `other`; let it flush, then make sure it goes.
    if (!other.writableEnded) other.end();
    setTimeout(() => other.destroy(), LINGER_MS).unref();
  };
  const aClosed = new Promise<void>((r) => a.once('close', () => r()));
  const bClosed = new Promise<void>((r) => b.once('close', () => r()));
  a.once('close', closedOne(b));
  b.once('close', closedOne(a));
  return Promise.all([aClosed, bClosed]).then(() => undefined);
}

/**
 * Accepts a server certificate only if it carries exactly the SPIFFE ID of
 * the endpoint's workload (the chain itself is checked by TLS against the
 * trust bundle in the secure context).
 */
export function checkPeerIdentity(expected: string): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const got = spiffeIdOfSubjectAltName(cert.subjectaltname);
    if (got === expected) return undefined;
    return new Error(`server identity ${got ?? '(none)'} is not the expected ${expected}`);
  };
}

/**
 * Outbound opaque to a meshed endpoint: mTLS to ep.ip:7002 (ALPN
 * weft-opaque, SNI hopServerName(ep.port, sa, ns)), then splice. Call after
 * detect() answered 'opaque' or 'tls' (or appProtocol said tcp); the bytes
 * detect() read are still in `client`. Never throws; on a failed connect the
 * app's socket is reset.
 */
export function opaqueToMesh(client: net.Socket, ep: MeshEndpoint, opts: OpaqueOutboundOptions): OpaqueResult {
  const td = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const expected = spiffeId(ep.identity.namespace, ep.identity.serviceAccount, td);
  const secureContext = typeof opts.secureContext === 'function' ? opts.secureContext() : opts.secureContext;
  const upstream = tls.connect({
    host: ep.ip,
    port: opts.inboundPort ?? PORTS.inbound,
    servername: hopServerName(ep.port, ep.identity.serviceAccount, ep.identity.namespace),
    ALPNProtocols: [ALPN_OPAQUE],
    secureContext,
    rejectUnauthorized: true,
    checkServerIdentity: checkPeerIdentity(expected),
  });
  upstream.setNoDelay(true);
  return connectAndSplice(client, upstream, 'secureConnect', opts.metrics, opts.peer ?? expected, true, opts.connectTimeoutMs, () => {
    if (upstream.alpnProtocol !== ALPN_OPAQUE) return `peer did not agree to ${ALPN_OPAQUE} (ALPN ${String(upstream.alpnProtocol)})`;
    return undefined;
  });
}

/**
 * Outbound opaque to a destination outside the mesh (or not a Service):
 * plain TCP to where the app was going, untouched.
 */
export function opaqueDirect(
  client: net.Socket,
  dst: { address: string; port: number },
  opts: { metrics?: TcpMetricsSink; peer?: string; connectTimeoutMs?: number; direction?: 'outbound' | 'inbound' } = {},
): OpaqueResult {
  const upstream = net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true });
  return connectAndSplice(client, upstream, 'connect', opts.metrics, opts.peer ?? '', false, opts.connectTimeoutMs, undefined, opts.direction);
}

export interface OpaqueInboundOptions {
  /** This pod's IP: the app is reached at podIp:port (never the caller's choice of address). */
  podIp: string;
  /** The app's port, from the TLS server name (parseHopServerName). */
  port: number;
  metrics?: TcpMetricsSink;
  /** tcp_* `peer` label: the caller's SPIFFE ID. */
  peer?: string;
  connectTimeoutMs?: number;
}

/**
 * Inbound half of opaque TCP: a TLS socket from a peer sidecar that
 * negotiated ALPN weft-opaque (client certificate already verified by the TLS
 * server) is spliced to plain TCP at podIp:port. Counted tls="true".
 */
export function opaqueInbound(socket: tls.TLSSocket, opts: OpaqueInboundOptions): OpaqueResult {
  const upstream = net.connect({ host: opts.podIp, port: opts.port, allowHalfOpen: true, noDelay: true });
  return connectAndSplice(socket, upstream, 'connect', opts.metrics, opts.peer ?? '', true, opts.connectTimeoutMs, undefined, 'inbound');
}

function connectAndSplice(
  client: net.Socket,
  upstream: net.Socket,
  readyEvent: 'connect' | 'secureConnect',
  metrics: TcpMetricsSink | undefined,
  peer: string,
  isTls: boolean,
  connectTimeoutMs = 10_000,
  verify?: () => string | undefined,
  direction: 'outbound' | 'inbound' = 'outbound',
): OpaqueResult {
  metrics?.connection(client, direction, peer, isTls);
  // Hold the app's bytes until upstream is ready (detect() left the socket paused).
  client.pause();
  let settled = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));
  const abort = () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    destroyHard(client);
    upstream.destroy();
    Promise.all([onceClosed(client), onceClosed(upstream)]).then(() => resolveClosed());
  };
  const timer = setTimeout(abort, connectTimeoutMs);
  timer.unref();
  upstream.once('error', abort);
  client.once('error', abort);
  client.once('close', abort);
  upstream.once(readyEvent, () => {
    if (settled) return;
    const bad = verify?.();
    if (bad) {
      upstream.emit('error', new Error(bad));
      return;
    }
    settled = true;
    clearTimeout(timer);
    upstream.removeListener('error', abort);
    client.removeListener('error', abort);
    client.removeListener('close', abort);
    splice(client, upstream).then(() => resolveClosed());
    client.resume();
  });
  return { closed, upstream };
}

function onceClosed(s: net.Socket): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((r) => s.once('close', () => r()));
}

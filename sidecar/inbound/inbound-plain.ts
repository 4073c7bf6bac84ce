// Plaintext inbound: callers outside the mesh reach a meshed pod's app port
// directly; iptables redirects them to the inbound listener (7002), and the
// original destination (SO_ORIGINAL_DST) says which app port they wanted.
//
// Permissive (the default): detect the protocol; HTTP goes to the sidecar's
// inbound HTTP handling (so requests are counted and routed like any other,
// tls="false", no peer identity), anything else is spliced to
// <pod IP>:<port> as opaque TCP, counted tls="false". Strict: the connection
// is reset at once (mTLS required).
//
// How the inbound listener tells the two kinds apart: a mesh hop dials 7002
// itself, so it has no original destination; a redirected caller has one.
import net from 'node:net';
import type { AppProtocol } from '../../api/index.js';
import { detect, DEFAULT_DETECT_TIMEOUT_MS, type DetectedProtocol, type DetectReason } from '../detect/detect.js';
import { opaqueDirect, type OpaqueResult, type TcpMetricsSink } from '../hop/opaque.js';
import { originalDst, type OriginalDst } from '../detect/original-dst.js';

export interface PlainInboundOptions {
  /** This pod's IP: the app is reached at podIp:<original port>. */
  podIp: string;
  /** Refuse plaintext callers (strict mTLS). May change with config: read per connection. */
  strict: boolean;
  metrics?: TcpMetricsSink;
  detectTimeoutMs?: number;
  /** appProtocol of the app port when a Service declares it (skips detection). */
  appProtocolOf?: (port: number) => AppProtocol | undefined;
  /** Count weft_protocol_detections_total{direction="inbound",protocol}. */
  onDetect?: (protocol: DetectedProtocol, reason: DetectReason, elapsedMs: number) => void;
  /**
   * Takes an HTTP connection (http1 or h2c) for the sidecar's inbound HTTP
   * server, e.g. `httpServer.emit('connection', socket)`; return false to
   * have it spliced as opaque TCP instead. Unset: everything is opaque.
   */
  onHttp?: (socket: net.Socket, port: number, protocol: 'http1' | 'h2c') => boolean;
  /** Called when a plaintext caller is refused in strict mode. */
  onRefused?: (socket: net.Socket, dst: OriginalDst) => void;
  /**
   * Inbound authorization of a plaintext (unauthenticated) opaque connection
   * to app port `port`; false closes it before anything reaches the app.
   * Unset: allowed.
   */
  authorizeOpaque?: (port: number) => boolean;
}

export type PlainInboundOutcome =
  | { kind: 'not-redirected' }
  | { kind: 'refused'; dst: OriginalDst }
  | { kind: 'http'; dst: OriginalDst; protocol: 'http1' | 'h2c' }
  | { kind: 'opaque'; dst: OriginalDst; protocol: DetectedProtocol; result: OpaqueResult };

/**
 * The inbound listener calls this first on every accepted raw socket (before
 * any TLS): 'not-redirected' means it dialled 7002 itself (a mesh hop: go on
 * with TLS); otherwise the connection is handled here. Pass `dst` when
 * originalDst() was already read. Never throws.
 */
export async function handlePlainInbound(socket: net.Socket, opts: PlainInboundOptions, dst?: OriginalDst): Promise<PlainInboundOutcome> {
  const od = dst ?? originalDst(socket);
  if (!od) return { kind: 'not-redirected' };
  if (opts.strict) {
    opts.onRefused?.(socket, od);
    socket.on('error', () => {});
    if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
    else socket.destroy();
    return { kind: 'refused', dst: od };
  }
  socket.allowHalfOpen = true;
  const protocol = await detect(socket, {
    timeoutMs: opts.detectTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS,
    appProtocol: opts.appProtocolOf?.(od.port),
    onResult: opts.onDetect,
  });
  if ((protocol === 'http1' || protocol === 'h2c') && opts.onHttp?.(socket, od.port, protocol)) {
    return { kind: 'http', dst: od, protocol };
  }
  if (opts.authorizeOpaque && !opts.authorizeOpaque(od.port)) {
    socket.on('error', () => {});
    socket.destroy();
    return { kind: 'refused', dst: od };
  }
  const result = opaqueDirect(socket, { address: opts.podIp, port: od.port }, { metrics: opts.metrics, direction: 'inbound' });
  return { kind: 'opaque', dst: od, protocol, result };
}

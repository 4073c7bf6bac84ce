// Every answer the mesh itself produces, in one place: failures (refused,
// reset, TLS verification, identity mismatch, timeout, no endpoint, no
// config...) are classified ONCE — the same for HTTP/1.1 and HTTP/2 — into
// a status and a reason, then written as the protocol's answer:
//   HTTP/1.1 and plain HTTP/2: the status with `weft-proxy-error` saying why
//     (a caller can tell a proxy's 503 from an app's; linkerd's l5d-proxy-error);
//   gRPC: a trailers-only response, HTTP 200 + grpc-status (+ grpc-message,
//     weft-proxy-error), with the codes the GRPCRoute GEP calls for;
//   a response already started: a reset (RST_STREAM / closed connection),
//     so the caller sees a failure, not a truncated success.
// Metrics of a mesh-made answer are recorded here too (`answerFailure`).
import type { ServerResponse } from 'node:http';
import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';

export const PROXY_ERROR_HEADER = 'weft-proxy-error';

const C = http2.constants;

/** proxyError of a request whose caller went away (not an upstream failure: no penalty for the endpoint). */
export const CLIENT_GONE = 'client closed';

export class TimeoutError extends Error {
  constructor(readonly which: 'request' | 'backendRequest', ms: number) {
    super(`${which} timeout of ${Math.round(ms)} ms`);
  }
}

/** What went wrong, protocol-free. */
export type FailureKind = 'refused' | 'unreachable' | 'reset' | 'tls' | 'identity' | 'timeout' | 'no-endpoint' | 'no-config' | 'client-gone' | 'error';

export interface Failure {
  kind: FailureKind;
  /** HTTP status the caller sees (gRPC callers get its grpc-status mapping). */
  status: number;
  reason: string;
}

/** Maps an upstream failure (undici or http2, socket or TLS) to the status and reason the caller sees. */
export function classifyUpstreamError(err: Error & { code?: string }): Failure {
  if (err instanceof TimeoutError) return { kind: 'timeout', status: 504, reason: err.message };
  const code = err.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return { kind: 'refused', status: 503, reason: `upstream connection refused` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { kind: 'unreachable', status: 503, reason: `upstream unreachable (${code})` };
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'unreachable', status: 503, reason: 'upstream connect timeout' };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'timeout', status: 504, reason: 'upstream response timeout' };
    case 'WEFT_NO_CERT':
      return { kind: 'no-config', status: 503, reason: `upstream unavailable: ${err.message}` };
    case 'WEFT_BACKEND_TLS':
      // BackendTLSPolicy: verification failed, fail closed (GEP-1897).
      return { kind: 'tls', status: 503, reason: err.message };
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'WEFT_PEER_IDENTITY':
      return { kind: 'identity', status: 502, reason: `upstream identity mismatch: ${err.message}` };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
    case 'ERR_HTTP2_SESSION_ERROR':
    case 'ERR_HTTP2_GOAWAY_SESSION':
      return { kind: 'reset', status: 502, reason: 'upstream connection reset' };
  }
  if (/certificate|ssl|tls|alert/i.test(err.message) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.includes('CERT')) {
    return { kind: 'tls', status: 502, reason: `upstream TLS failure: ${err.message}` };
  }
  return { kind: 'error', status: 502, reason: `upstream error: ${code || err.message}` };
}

/**
 * An HTTP/2 upstream stream that closed before any response: the session's
 * error when it failed (refused, TLS, identity: the same classification as
 * HTTP/1.1), else the RST_STREAM code — REFUSED_STREAM or CANCEL mean the
 * request was not processed (503), anything else 502. `passReset` says the
 * peer reset just this stream (its session is fine): pass the code on.
 */
export function classifyH2Close(rstCode: number, err: (Error & { code?: string; cause?: unknown }) | undefined): Failure & { passReset: boolean } {
  // http2 cancels pending streams with ERR_HTTP2_STREAM_CANCEL whose cause is the session's (socket, TLS) error.
  const root = err?.cause instanceof Error ? (err.cause as Error & { code?: string }) : err;
  if (root && root.code !== 'ERR_HTTP2_STREAM_ERROR' && root.code !== 'ERR_HTTP2_STREAM_CANCEL') return { ...classifyUpstreamError(root), passReset: false };
  if (err?.code === 'ERR_HTTP2_STREAM_ERROR' && rstCode !== C.NGHTTP2_NO_ERROR) {
    return { kind: 'reset', status: 502, reason: `upstream reset (code ${rstCode})`, passReset: true };
  }
  const unprocessed = rstCode === C.NGHTTP2_REFUSED_STREAM || rstCode === C.NGHTTP2_CANCEL || !err;
  return { kind: unprocessed ? 'refused' : 'reset', status: unprocessed ? 503 : 502, reason: `upstream reset the stream (code ${rstCode})${err ? `: ${err.message}` : ''}`, passReset: false };
}

// ---- gRPC mapping ---------------------------------------------------------------

export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/**
 * The gRPC status the caller sees for an HTTP status the mesh produced:
 * no route (404) → UNIMPLEMENTED, timeout (504) → DEADLINE_EXCEEDED, a rule's
 * fixed 500 / no endpoint / upstream failure → UNAVAILABLE, a malformed
 * request → INTERNAL.
 */
export function grpcCodeOfMeshStatus(status: number): number {
  switch (status) {
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 504:
      return GRPC.DEADLINE_EXCEEDED;
    case 400:
    case 431:
      return GRPC.INTERNAL;
    case 499:
      return GRPC.CANCELLED;
    default:
      return GRPC.UNAVAILABLE;
  }
}

/** grpc-message is percent-encoded outside printable ASCII (gRPC PROTOCOL-HTTP2). */
export function encodeGrpcMessage(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function headerSafe(reason: string): string {
  return reason.replace(/[^\x20-\x7e]/g, ' ');
}

// ---- the protocols' answers -----------------------------------------------------

/** What the caller got, for metrics and observers. */
export interface Outcome {
  /** HTTP status written (200 for a gRPC trailers-only answer; the upstream's when a reset cut a started response). */
  status: number;
  grpcStatus: string;
  proxyError: string | undefined;
  /** Response bytes relayed to the caller, when the adapter counted them (HTTP/2 while observers listen). */
  bytesOut?: number | undefined;
}

/** HTTP/1.1: a mesh-made response unless one has started (then the connection is cut); returns the status written. */
export function sendProxyError(res: ServerResponse, status: number, reason: string, extra?: Record<string, string>): number {
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  const body = `${reason}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [PROXY_ERROR_HEADER]: headerSafe(reason),
    ...extra,
  };
  res.writeHead(status, headers);
  res.end(body);
  return status;
}

/** Redirect produced by a RequestRedirect filter (not an error, but the mesh answers it). */
export function sendRedirect(res: ServerResponse, status: number, location: string): number {
  res.writeHead(status, { location, 'content-length': 0 });
  res.end();
  return status;
}

/**
 * HTTP/2: trailers-only gRPC for gRPC requests, else the HTTP status with a
 * text body. Returns the gRPC status written ('' for non-gRPC). A stream
 * that already responded is reset (CANCEL).
 */
export function sendH2MeshError(stream: ServerHttp2Stream, grpc: boolean, status: number, reason: string): string {
  if (stream.destroyed || stream.closed) return grpc ? String(grpcCodeOfMeshStatus(status)) : '';
  const why = headerSafe(reason);
  if (stream.headersSent) {
    stream.close(C.NGHTTP2_CANCEL);
    return grpc ? String(grpcCodeOfMeshStatus(status)) : '';
  }
  if (grpc) {
    const code = grpcCodeOfMeshStatus(status);
    const h: OutgoingHttpHeaders = {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(reason),
      [PROXY_ERROR_HEADER]: why,
    };
    stream.respond(h, { endStream: true });
    return String(code);
  }
  const body = `${reason}\n`;
  stream.respond({ ':status': status, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [PROXY_ERROR_HEADER]: why });
  stream.end(body);
  return '';
}

/** HTTP/2 redirect (RequestRedirect). */
export function sendH2Redirect(stream: ServerHttp2Stream, status: number, location: string): void {
  if (!stream.destroyed && !stream.closed && !stream.headersSent) stream.respond({ ':status': status, location, 'content-length': 0 }, { endStream: true });
}

/** Where a mesh-made answer goes: one request's downstream, whatever its protocol. */
export interface Answerer {
  /** Writes the failure as this protocol's answer and says what the caller got. */
  fail(status: number, reason: string): Outcome;
  redirect(status: number, location: string): Outcome;
}

export function http1Answerer(res: ServerResponse, draining?: () => boolean): Answerer {
  return {
    fail(status, reason) {
      const started = res.headersSent;
      if (!started && draining?.()) res.setHeader('connection', 'close');
      const written = sendProxyError(res, status, reason);
      return { status: started ? res.statusCode : written, grpcStatus: '', proxyError: reason };
    },
    redirect(status, location) {
      if (draining?.()) res.setHeader('connection', 'close');
      return { status: sendRedirect(res, status, location), grpcStatus: '', proxyError: undefined };
    },
  };
}

export function h2Answerer(stream: ServerHttp2Stream, grpc: boolean): Answerer {
  return {
    fail(status, reason) {
      const started = stream.headersSent;
      const g = sendH2MeshError(stream, grpc, status, reason);
      return { status: started ? 0 : grpc ? 200 : status, grpcStatus: g, proxyError: reason };
    },
    redirect(status, location) {
      sendH2Redirect(stream, status, location);
      return { status, grpcStatus: '', proxyError: undefined };
    },
  };
}

/**
 * The one path of a mesh-made failure: the protocol's answer, then the
 * metrics (and observers) through `record`.
 */
export function answerFailure(a: Answerer, status: number, reason: string, record: (o: Outcome) => void): Outcome {
  const o = a.fail(status, reason);
  record(o);
  return o;
}

/**
 * A request node's parser refused before it became a request: headers over
 * the limit get a clear 431 (not a reset), anything else 400.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  const [status, reason] = err.code === 'HPE_HEADER_OVERFLOW' ? ['431 Request Header Fields Too Large', 'request headers exceed the sidecar limit'] : ['400 Bad Request', `malformed request (${err.code ?? 'parse error'})`];
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n${PROXY_ERROR_HEADER}: ${reason}\r\n\r\n`);
}

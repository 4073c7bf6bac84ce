// Responses the mesh itself produces (not the app): every one carries
// `weft-proxy-error` saying why, so a caller can tell a proxy's 503 from an
// app's (linkerd's l5d-proxy-error idea).
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export const PROXY_ERROR_HEADER = 'weft-proxy-error';

export class TimeoutError extends Error {
  constructor(readonly which: 'request' | 'backendRequest', ms: number) {
    super(`${which} timeout of ${ms} ms`);
  }
}

/** Writes a mesh-generated response unless one has started; returns the status written. */
export function sendProxyError(res: ServerResponse, status: number, reason: string, extra?: Record<string, string>): number {
  if (res.headersSent) {
    // Too late for a status: cut the connection so the caller sees a failure, not a truncated success.
    res.destroy();
    return status;
  }
  const body = `${reason}\n`;
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [PROXY_ERROR_HEADER]: reason.replace(/[^\x20-\x7e]/g, ' '),
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

/** Maps an upstream failure to the status and reason the caller sees. */
export function classifyUpstreamError(err: Error & { code?: string }): { status: number; reason: string } {
  if (err instanceof TimeoutError) return { status: 504, reason: err.message };
  const code = err.code ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return { status: 503, reason: `upstream connection refused` };
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { status: 503, reason: `upstream unreachable (${code})` };
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { status: 503, reason: 'upstream connect timeout' };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { status: 504, reason: 'upstream response timeout' };
    case 'WEFT_BACKEND_TLS':
      // BackendTLSPolicy: verification failed, fail closed (GEP-1897).
      return { status: 503, reason: err.message };
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
    case 'WEFT_PEER_IDENTITY':
      return { status: 502, reason: `upstream identity mismatch: ${err.message}` };
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
    case 'EPIPE':
      return { status: 502, reason: 'upstream connection reset' };
  }
  if (/certificate|ssl|tls|alert/i.test(err.message) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.includes('CERT')) {
    return { status: 502, reason: `upstream TLS failure: ${err.message}` };
  }
  return { status: 502, reason: `upstream error: ${code || err.message}` };
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

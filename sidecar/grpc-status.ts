// gRPC over HTTP/2 as the mesh sees it: which requests are gRPC, the
// `grpc-timeout` header (parse and re-encode the time left), and the
// trailers-only responses the mesh itself produces (HTTP 200, grpc-status,
// grpc-message; no body), with the status codes the GRPCRoute GEP and the
// gRPC HTTP mapping call for.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { PROXY_ERROR_HEADER } from './proxy-errors.js';

export const GRPC = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** content-type `application/grpc` or `application/grpc+proto` etc. */
export function isGrpc(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.startsWith('application/grpc');
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };

/** `grpc-timeout` ("100m", "5S", ...) in ms; undefined when absent or malformed. */
export function parseGrpcTimeout(v: string | string[] | undefined): number | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** A `grpc-timeout` value for `ms` milliseconds (at least 1 ms; at most 8 digits). */
export function formatGrpcTimeout(ms: number): string {
  const v = Math.max(1, Math.ceil(ms));
  if (v < 100_000_000) return `${v}m`;
  return `${Math.min(99_999_999, Math.ceil(v / 1000))}S`;
}

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

/**
 * Answers a stream with a mesh-made error: trailers-only gRPC for gRPC
 * requests, else the HTTP status with a text body. Returns the gRPC status
 * written ('' for non-gRPC). A stream that already responded is reset.
 */
export function sendH2MeshError(stream: ServerHttp2Stream, grpc: boolean, status: number, reason: string): string {
  if (stream.destroyed || stream.closed) return grpc ? String(grpcCodeOfMeshStatus(status)) : '';
  const why = reason.replace(/[^\x20-\x7e]/g, ' ');
  if (stream.headersSent) {
    stream.close(0x8 /* CANCEL */);
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

/** grpc-status of a header or trailer block ('' when absent). */
export function grpcStatusOf(h: IncomingHttpHeaders | undefined): string {
  const v = h?.['grpc-status'];
  return typeof v === 'string' ? v : '';
}

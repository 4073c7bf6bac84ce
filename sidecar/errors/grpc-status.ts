// gRPC over HTTP/2 as the mesh sees it: which requests are gRPC, the
// `grpc-timeout` header (parse and re-encode the time left), and the
// trailers-only responses the mesh itself produces (HTTP 200, grpc-status,
// grpc-message; no body), with the status codes the GRPCRoute GEP and the
// gRPC HTTP mapping call for.
import type { IncomingHttpHeaders } from 'node:http2';
// The mesh's own gRPC answers (codes, grpc-message, trailers-only) live with every other failure answer.
export { GRPC, grpcCodeOfMeshStatus, encodeGrpcMessage, sendH2MeshError } from './proxy-errors.js';

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

/** grpc-status of a header or trailer block ('' when absent). */
export function grpcStatusOf(h: IncomingHttpHeaders | undefined): string {
  const v = h?.['grpc-status'];
  return typeof v === 'string' ? v : '';
}

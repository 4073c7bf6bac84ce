// A route rule's retry policy for the sidecar (api/mesh.ts RetryPolicy):
// HTTPRoute `rules[].retry` (GEP-1731) or a GRPCRoute's `retry.weft.io/*`
// annotations, already validated (validate-retry.ts). Unset attempts and
// backoff take weft's defaults, which GEP-1731 leaves to the implementation.
import type { GRPCRoute, HTTPRoute, HTTPRouteRule, RetryPolicy } from '../api/index.js';
import { DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BACKOFF_MS, RETRY_ANNOTATIONS } from '../api/index.js';
import { parseDuration } from './duration.js';
import { parseGrpcCodes } from './validate-retry.js';

export function retryPolicyOf(kind: 'HTTPRoute' | 'GRPCRoute', route: HTTPRoute | GRPCRoute, ruleIndex: number): RetryPolicy | undefined {
  if (kind === 'HTTPRoute') {
    const r = ((route as HTTPRoute).spec.rules ?? [])[ruleIndex] as HTTPRouteRule | undefined;
    const retry = r?.retry;
    if (!retry) return undefined;
    return {
      codes: [...new Set(retry.codes ?? [])].sort((a, b) => a - b),
      grpcCodes: [],
      attempts: retry.attempts ?? DEFAULT_RETRY_ATTEMPTS,
      backoffMs: retry.backoff !== undefined ? (parseDuration(retry.backoff) ?? DEFAULT_RETRY_BACKOFF_MS) : DEFAULT_RETRY_BACKOFF_MS,
      source: 'HTTPRoute',
    };
  }
  const ann = route.metadata.annotations ?? {};
  const grpc = ann[RETRY_ANNOTATIONS.grpc];
  const limit = ann[RETRY_ANNOTATIONS.limit];
  const timeout = ann[RETRY_ANNOTATIONS.timeout];
  const backoff = ann[RETRY_ANNOTATIONS.backoff];
  if (grpc === undefined && limit === undefined && timeout === undefined && backoff === undefined) return undefined;
  const parsed = grpc !== undefined ? parseGrpcCodes(grpc) : { codes: [] as number[] };
  const p: RetryPolicy = {
    codes: [],
    grpcCodes: 'codes' in parsed ? parsed.codes : [],
    attempts: limit !== undefined ? Number(limit.trim()) : DEFAULT_RETRY_ATTEMPTS,
    backoffMs: backoff !== undefined ? (parseDuration(backoff.trim()) ?? DEFAULT_RETRY_BACKOFF_MS) : DEFAULT_RETRY_BACKOFF_MS,
    source: 'annotations',
  };
  const t = timeout !== undefined ? parseDuration(timeout.trim()) : null;
  if (t !== null && t > 0) p.perTryTimeoutMs = t;
  return p;
}

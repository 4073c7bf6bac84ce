// When a forwarded request is tried again (pure: no sockets, no clocks of
// its own). One attempt ends in an AttemptOutcome; `retryDecision` says
// whether another try is made, why (the metric's `reason`), or why not.
//
// Two kinds of retry:
//   - safe: the attempt failed before any byte of the request could reach
//     the destination app — connect refused or timed out, host unreachable,
//     TLS handshake failure, reset before the request was written, HTTP/2
//     REFUSED_STREAM or a GOAWAY whose last stream id is below ours, or the
//     peer's inbound answering that the app refused the connection. Safe for
//     every method; on by default, at most SAFE_RETRIES more tries; they are
//     not charged to the retry budget (nothing reached the app).
//   - by policy (the rule's RetryPolicy, GEP-1731 / retry.weft.io): a response
//     whose status or grpc-status is listed, a per-try timeout, or a
//     connection that broke after the request was sent ("Implementations
//     SHOULD retry on connection errors ... if a retry stanza is configured").
//     At most `attempts` of them, after `backoffMs` at least, charged to the
//     budget.
// Without a policy a connection broken after the request was written is
// still retried for idempotent methods with no response byte received
// (RFC 9110 §9.2.2), charged to the budget like a policy retry.
import type { RetryPolicy } from '../../api/index.js';
import { SAFE_RETRIES } from '../../api/index.js';

/** `reason` label of weft_retries_total. */
export type RetryReason =
  | 'connect_refused'
  | 'connect_timeout'
  | 'unreachable'
  | 'tls_handshake'
  | 'reset_before_request'
  | 'refused_stream'
  | 'goaway'
  | 'app_refused'
  | 'reset'
  | 'timeout'
  | 'status'
  | 'grpc_status';

/** `reason` label of weft_retries_skipped_total: a retry was due but not made. */
export type SkipReason = 'budget' | 'body_too_large' | 'attempts' | 'deadline' | 'no_endpoint';

const SAFE: ReadonlySet<RetryReason> = new Set(['connect_refused', 'connect_timeout', 'unreachable', 'tls_handshake', 'reset_before_request', 'refused_stream', 'goaway', 'app_refused']);

export function isSafe(r: RetryReason): boolean {
  return SAFE.has(r);
}

/** The reason text the inbound sidecar answers with when the app refused the connection (weft-proxy-error). */
export const APP_REFUSED_REASON = 'upstream connection refused';

/** HTTP/2 error codes (RFC 9113 §7). */
const H2_REFUSED_STREAM = 0x7;

/** What the adapter knows about a failed attempt (no response head was passed on). */
export interface AttemptError {
  /** errno or undici code: ECONNREFUSED, UND_ERR_CONNECT_TIMEOUT, UND_ERR_SOCKET, ... */
  code?: string;
  message?: string;
  /** Whether any byte of the request may have been written to the peer. */
  requestSent: boolean;
  /** HTTP/2: the RST_STREAM error code the stream ended with. */
  h2Code?: number;
  /** HTTP/2: our stream id and the GOAWAY's last stream id, when a GOAWAY ended the stream. */
  streamId?: number;
  goawayLastStreamId?: number;
  /** The attempt's own timeout fired (per-try, or backendRequest). */
  timedOut?: boolean;
}

/** Why an attempt that produced no response failed, for retry and accrual. */
export function classifyError(e: AttemptError): RetryReason {
  if (e.timedOut) return 'timeout';
  if (e.goawayLastStreamId !== undefined && e.streamId !== undefined && e.streamId > e.goawayLastStreamId) return 'goaway';
  if (e.h2Code === H2_REFUSED_STREAM || /REFUSED_STREAM/.test(e.message ?? '')) return 'refused_stream';
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connect_refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return e.requestSent ? 'reset' : 'connect_timeout';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unreachable';
  }
  const code = e.code ?? '';
  if (!e.requestSent && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code === 'WEFT_PEER_IDENTITY' || /handshake|certificate|alert|secure TLS connection/i.test(e.message ?? ''))) {
    return 'tls_handshake';
  }
  return e.requestSent ? 'reset' : 'reset_before_request';
}

/** What came back from one attempt. */
export type AttemptOutcome =
  /** A response head arrived; `grpcStatus` when known at that point (trailers-only). */
  | { kind: 'response'; status: number; grpcStatus?: number; proxyError?: string }
  | { kind: 'error'; reason: RetryReason };

/** The outcome's retry reason if a response is a failure worth retrying, else undefined. */
export function responseReason(o: { status: number; grpcStatus?: number; proxyError?: string }, policy: RetryPolicy | undefined): RetryReason | undefined {
  // The peer's inbound could not connect to its app: nothing was delivered.
  if (o.status === 503 && o.proxyError !== undefined && o.proxyError.startsWith(APP_REFUSED_REASON)) return 'app_refused';
  if (!policy) return undefined;
  if (o.grpcStatus !== undefined && o.grpcStatus !== 0 && policy.grpcCodes.includes(o.grpcStatus)) return 'grpc_status';
  if (policy.codes.includes(o.status)) return 'status';
  return undefined;
}

/** A failure for failure accrual: errors, 5xx, gRPC UNAVAILABLE. */
export function isEndpointFailure(o: AttemptOutcome): boolean {
  if (o.kind === 'error') return true;
  return o.status >= 500 || o.grpcStatus === 14;
}

/** RFC 9110 §9.2.2. */
export function isIdempotent(method: string): boolean {
  switch (method) {
    case 'GET':
    case 'HEAD':
    case 'OPTIONS':
    case 'TRACE':
    case 'PUT':
    case 'DELETE':
      return true;
    default:
      return false;
  }
}

/** Retries made so far for one request. */
export interface RetryCounts {
  safe: number;
  policy: number;
}

export function newRetryCounts(): RetryCounts {
  return { safe: 0, policy: 0 };
}

export interface RetryContext {
  policy: RetryPolicy | undefined;
  method: string;
  counts: RetryCounts;
  /** The request body can be sent again byte for byte (none, or kept whole by the replay buffer). */
  replayable: boolean;
  /** No response byte has been passed on to the caller. */
  responseUntouched: boolean;
}

export type RetryDecision =
  | { retry: true; reason: RetryReason; safe: boolean; /** charged to the retry budget */ budgeted: boolean }
  | { retry: false; reason?: RetryReason; skip?: SkipReason };

/**
 * Whether to try again after `outcome`. The budget, the deadline and the
 * endpoint are the caller's to check next (in that order), each of which may
 * still turn the retry into a skip.
 */
export function retryDecision(outcome: AttemptOutcome, ctx: RetryContext): RetryDecision {
  if (!ctx.responseUntouched) return { retry: false };
  const reason = outcome.kind === 'error' ? outcome.reason : responseReason(outcome, ctx.policy);
  if (reason === undefined) return { retry: false };
  if (isSafe(reason)) {
    if (ctx.counts.safe >= SAFE_RETRIES) return { retry: false, reason, skip: 'attempts' };
    // A body the first try began to stream and that was not kept cannot be sent again.
    if (!ctx.replayable) return { retry: false, reason, skip: 'body_too_large' };
    return { retry: true, reason, safe: true, budgeted: false };
  }
  const byPolicy = ctx.policy !== undefined;
  if (!byPolicy && !(reason === 'reset' && isIdempotent(ctx.method))) return { retry: false, reason };
  const limit = ctx.policy ? ctx.policy.attempts : SAFE_RETRIES;
  if (ctx.counts.policy >= limit) return { retry: false, reason, skip: 'attempts' };
  if (!ctx.replayable) return { retry: false, reason, skip: 'body_too_large' };
  return { retry: true, reason, safe: false, budgeted: true };
}

/** Counts a retry that is going ahead. */
export function countRetry(counts: RetryCounts, d: { safe: boolean }): void {
  if (d.safe) counts.safe++;
  else counts.policy++;
}

/**
 * Wait before policy retry number `n` (1-based): GEP-1731's `backoff` is a
 * minimum, so the wait is base·2^(n-1) (capped at 8·base), plus up to 25%
 * jitter — never less than base. Safe retries go at once to another endpoint.
 */
export function backoffMs(baseMs: number, n: number, safe: boolean, rand: () => number = Math.random): number {
  if (safe || baseMs <= 0) return 0;
  const exp = Math.min(baseMs * 2 ** Math.max(0, n - 1), baseMs * 8);
  return Math.round(exp + exp * 0.25 * rand());
}

export interface Timeouts {
  /** Rule `timeouts.request`: all tries together (0 or unset: none). */
  requestMs?: number;
  /** Rule `timeouts.backendRequest`: each try (0 or unset: none). */
  backendRequestMs?: number;
  /** `retry.weft.io/timeout`: each try, over backendRequest. */
  perTryTimeoutMs?: number;
}

/** How long the next try may take, and which timeout that is: 'expired' when the request's deadline has passed. */
export function tryTimeout(t: Timeouts, startedAt: number, now: number): { ms: number; kind: 'request' | 'backendRequest' } | 'expired' {
  const perTry = t.perTryTimeoutMs && t.perTryTimeoutMs > 0 ? t.perTryTimeoutMs : t.backendRequestMs && t.backendRequestMs > 0 ? t.backendRequestMs : 0;
  if (!t.requestMs || t.requestMs <= 0) return { ms: perTry, kind: 'backendRequest' };
  const left = startedAt + t.requestMs - now;
  if (left <= 0) return 'expired';
  if (perTry > 0 && perTry < left) return { ms: perTry, kind: 'backendRequest' };
  return { ms: left, kind: 'request' };
}

/** Whether waiting `delayMs` still leaves time for a try before the request's deadline. */
export function fitsDeadline(t: Timeouts, startedAt: number, now: number, delayMs: number): boolean {
  if (!t.requestMs || t.requestMs <= 0) return true;
  return now + delayMs < startedAt + t.requestMs;
}

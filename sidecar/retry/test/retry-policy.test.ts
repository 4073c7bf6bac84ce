// Which failed attempts are tried again, why, and how long a try may take:
// safe failures (nothing reached the app) for every method, policy failures
// (listed codes, per-try timeouts, broken connections) up to `attempts`,
// backoff with jitter never below GEP-1731's minimum, and the deadline
// arithmetic of timeouts.request / backendRequest.
import t from 'tap';
import type { RetryPolicy } from '../../../api/index.js';
import { SAFE_RETRIES } from '../../../api/index.js';
import {
  APP_REFUSED_REASON,
  backoffMs,
  classifyError,
  countRetry,
  fitsDeadline,
  isEndpointFailure,
  isSafe,
  newRetryCounts,
  responseReason,
  retryDecision,
  tryTimeout,
  type AttemptError,
  type AttemptOutcome,
  type RetryContext,
} from '../retry-policy.js';

t.test('failed attempts are classified by whether anything can have reached the app', async (t) => {
  const cases: Array<[AttemptError, string, boolean]> = [
    [{ code: 'ECONNREFUSED', requestSent: false }, 'connect_refused', true],
    [{ code: 'UND_ERR_CONNECT_TIMEOUT', requestSent: false }, 'connect_timeout', true],
    [{ code: 'EHOSTUNREACH', requestSent: false }, 'unreachable', true],
    [{ code: 'ENETUNREACH', requestSent: false }, 'unreachable', true],
    [{ code: 'ERR_TLS_CERT_ALTNAME_INVALID', requestSent: false }, 'tls_handshake', true],
    [{ code: 'ERR_SSL_WRONG_VERSION_NUMBER', requestSent: false }, 'tls_handshake', true],
    [{ code: 'ECONNRESET', message: 'Client network socket disconnected before secure TLS connection was established', requestSent: false }, 'tls_handshake', true],
    [{ code: 'ECONNRESET', requestSent: false }, 'reset_before_request', true],
    [{ code: 'UND_ERR_SOCKET', message: 'other side closed', requestSent: false }, 'reset_before_request', true],
    [{ code: 'ERR_HTTP2_STREAM_ERROR', h2Code: 7, requestSent: true }, 'refused_stream', true],
    [{ code: 'ERR_HTTP2_STREAM_ERROR', message: 'Stream closed with error code NGHTTP2_REFUSED_STREAM', requestSent: true }, 'refused_stream', true],
    [{ code: 'ERR_HTTP2_GOAWAY_SESSION', streamId: 9, goawayLastStreamId: 7, requestSent: true }, 'goaway', true],
    // A GOAWAY that covers our stream: the peer may have processed it.
    [{ code: 'ERR_HTTP2_GOAWAY_SESSION', streamId: 5, goawayLastStreamId: 7, requestSent: true }, 'reset', false],
    [{ code: 'ECONNRESET', requestSent: true }, 'reset', false],
    [{ code: 'UND_ERR_SOCKET', message: 'other side closed', requestSent: true }, 'reset', false],
    [{ code: 'ERR_HTTP2_STREAM_ERROR', h2Code: 2, requestSent: true }, 'reset', false],
    [{ timedOut: true, requestSent: true }, 'timeout', false],
  ];
  for (const [e, reason, safe] of cases) {
    const r = classifyError(e);
    t.equal(r, reason, `${JSON.stringify(e)} → ${reason}`);
    t.equal(isSafe(r), safe, `${reason} safe=${safe}`);
  }
});

const policy = (p: Partial<RetryPolicy> = {}): RetryPolicy => ({ codes: [503], grpcCodes: [], attempts: 2, backoffMs: 25, source: 'HTTPRoute', ...p });

t.test('responses: the inbound’s "app refused" is safe; listed codes and gRPC statuses retry by policy', async (t) => {
  t.equal(responseReason({ status: 503, proxyError: APP_REFUSED_REASON }, undefined), 'app_refused', 'even without a policy');
  t.equal(responseReason({ status: 503, proxyError: 'upstream connect timeout' }, undefined), undefined);
  t.equal(responseReason({ status: 503 }, undefined), undefined, 'an app 503 without policy is the app’s answer');
  t.equal(responseReason({ status: 503 }, policy()), 'status');
  t.equal(responseReason({ status: 500 }, policy()), undefined, 'unlisted code');
  t.equal(responseReason({ status: 200, grpcStatus: 14 }, policy({ codes: [], grpcCodes: [14, 8] })), 'grpc_status');
  t.equal(responseReason({ status: 200, grpcStatus: 13 }, policy({ codes: [], grpcCodes: [14] })), undefined);
  t.equal(responseReason({ status: 200, grpcStatus: 0 }, policy({ codes: [], grpcCodes: [14] })), undefined);
  t.equal(responseReason({ status: 200 }, policy({ codes: [], grpcCodes: [14] })), undefined, 'grpc-status not known yet: no retry');
});

t.test('failure accrual counts errors, 5xx and UNAVAILABLE', async (t) => {
  const cases: Array<[AttemptOutcome, boolean]> = [
    [{ kind: 'error', reason: 'connect_refused' }, true],
    [{ kind: 'response', status: 500 }, true],
    [{ kind: 'response', status: 503, proxyError: APP_REFUSED_REASON }, true],
    [{ kind: 'response', status: 404 }, false],
    [{ kind: 'response', status: 200 }, false],
    [{ kind: 'response', status: 200, grpcStatus: 14 }, true],
    [{ kind: 'response', status: 200, grpcStatus: 5 }, false],
  ];
  for (const [o, want] of cases) t.equal(isEndpointFailure(o), want, JSON.stringify(o));
});

t.test('retry decisions', async (t) => {
  const ctx = (o: Partial<RetryContext> = {}): RetryContext => ({ policy: undefined, method: 'POST', counts: newRetryCounts(), replayable: true, responseUntouched: true, ...o });
  const err = (reason: Parameters<typeof isSafe>[0]): AttemptOutcome => ({ kind: 'error', reason });
  const cases: Array<[string, AttemptOutcome, RetryContext, object]> = [
    ['safe failure, no policy, POST: retried, not budgeted', err('connect_refused'), ctx(), { retry: true, reason: 'connect_refused', safe: true, budgeted: false }],
    ['safe retries stop after SAFE_RETRIES', err('connect_refused'), ctx({ counts: { safe: SAFE_RETRIES, policy: 0 } }), { retry: false, reason: 'connect_refused', skip: 'attempts' }],
    ['a body that was not kept cannot be sent again', err('connect_refused'), ctx({ replayable: false }), { retry: false, reason: 'connect_refused', skip: 'body_too_large' }],
    ['reset after the request was sent, POST, no policy: not retried', err('reset'), ctx(), { retry: false, reason: 'reset' }],
    ['reset after the request was sent, GET, no policy: retried (idempotent), budgeted', err('reset'), ctx({ method: 'GET' }), { retry: true, reason: 'reset', safe: false, budgeted: true }],
    ['reset with a policy: retried for any method', err('reset'), ctx({ policy: policy() }), { retry: true, reason: 'reset', safe: false, budgeted: true }],
    ['timeout without a policy: answered 504, not retried', err('timeout'), ctx({ method: 'GET' }), { retry: false, reason: 'timeout' }],
    ['per-try timeout with a policy: retried', err('timeout'), ctx({ policy: policy() }), { retry: true, reason: 'timeout', safe: false, budgeted: true }],
    ['listed code: retried', { kind: 'response', status: 503 }, ctx({ policy: policy() }), { retry: true, reason: 'status', safe: false, budgeted: true }],
    ['listed code after `attempts` retries: not', { kind: 'response', status: 503 }, ctx({ policy: policy({ attempts: 2 }), counts: { safe: 0, policy: 2 } }), { retry: false, reason: 'status', skip: 'attempts' }],
    ['attempts 0: never by policy', { kind: 'response', status: 503 }, ctx({ policy: policy({ attempts: 0 }) }), { retry: false, reason: 'status', skip: 'attempts' }],
    ['attempts 0 still allows safe retries', err('refused_stream'), ctx({ policy: policy({ attempts: 0 }) }), { retry: true, reason: 'refused_stream', safe: true, budgeted: false }],
    ['safe retries do not use up `attempts`', { kind: 'response', status: 503 }, ctx({ policy: policy({ attempts: 1 }), counts: { safe: 2, policy: 0 } }), { retry: true, reason: 'status', safe: false, budgeted: true }],
    ['unlisted code: not retried', { kind: 'response', status: 500 }, ctx({ policy: policy() }), { retry: false }],
    ['success: not retried', { kind: 'response', status: 200 }, ctx({ policy: policy() }), { retry: false }],
    ['the response already reached the caller: never', { kind: 'response', status: 503 }, ctx({ policy: policy(), responseUntouched: false }), { retry: false }],
    ['app refused, no policy: safe', { kind: 'response', status: 503, proxyError: APP_REFUSED_REASON }, ctx(), { retry: true, reason: 'app_refused', safe: true, budgeted: false }],
  ];
  for (const [name, o, c, want] of cases) t.same(retryDecision(o, c), want, name);

  const counts = newRetryCounts();
  countRetry(counts, { safe: true });
  countRetry(counts, { safe: false });
  countRetry(counts, { safe: false });
  t.same(counts, { safe: 1, policy: 2 });
});

t.test('backoff: at least the configured minimum, doubling, capped, with jitter; safe retries at once', async (t) => {
  t.equal(backoffMs(100, 1, false, () => 0), 100);
  t.equal(backoffMs(100, 1, false, () => 0.999), 125);
  t.equal(backoffMs(100, 2, false, () => 0), 200);
  t.equal(backoffMs(100, 3, false, () => 0), 400);
  t.equal(backoffMs(100, 10, false, () => 0), 800, 'capped at 8× the base');
  t.equal(backoffMs(100, 1, true, () => 0.5), 0, 'safe: no wait');
  t.equal(backoffMs(0, 3, false), 0);
  for (let i = 0; i < 200; i++) {
    const d = backoffMs(50, 1 + (i % 4), false);
    t.ok(d >= 50, `never below the minimum (${d})`);
  }
});

t.test('deadlines: timeouts.request bounds all tries, backendRequest and the per-try timeout each one', async (t) => {
  t.same(tryTimeout({}, 0, 500), { ms: 0, kind: 'backendRequest' }, 'no timeouts: none');
  t.same(tryTimeout({ backendRequestMs: 300 }, 0, 5000), { ms: 300, kind: 'backendRequest' });
  t.same(tryTimeout({ backendRequestMs: 300, perTryTimeoutMs: 100 }, 0, 0), { ms: 100, kind: 'backendRequest' }, 'per-try over backendRequest');
  t.same(tryTimeout({ requestMs: 1000 }, 0, 400), { ms: 600, kind: 'request' }, 'what is left of the request timeout');
  t.same(tryTimeout({ requestMs: 1000, backendRequestMs: 300 }, 0, 400), { ms: 300, kind: 'backendRequest' });
  t.same(tryTimeout({ requestMs: 1000, backendRequestMs: 300 }, 0, 800), { ms: 200, kind: 'request' }, 'the request deadline comes first');
  t.equal(tryTimeout({ requestMs: 1000 }, 0, 1000), 'expired');
  t.same(tryTimeout({ requestMs: 0, backendRequestMs: 0 }, 0, 10), { ms: 0, kind: 'backendRequest' }, '0s disables');
  t.equal(fitsDeadline({ requestMs: 1000 }, 0, 900, 50), true);
  t.equal(fitsDeadline({ requestMs: 1000 }, 0, 900, 100), false);
  t.equal(fitsDeadline({}, 0, 1e9, 1e6), true);
});

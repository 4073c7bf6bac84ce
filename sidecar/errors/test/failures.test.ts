// One classification of upstream failures for both protocols: an undici
// (HTTP/1.1) error and the HTTP/2 stream/session error of the same cause end
// in the same kind, status and reason; then the HTTP/2-only cases (a reset
// passed through, REFUSED_STREAM/CANCEL as "not processed").
import t from 'tap';
import http2 from 'node:http2';
import { classifyH2Close, classifyUpstreamError, grpcCodeOfMeshStatus, TimeoutError } from '../proxy-errors.js';
import { PeerIdentityError } from '../../hop/hop.js';
import { BackendTlsError } from '../../hop/backend-tls.js';

const C = http2.constants;
const err = (code: string, message = code) => Object.assign(new Error(message), { code });
/** How http2 hands a session failure to a pending stream: ERR_HTTP2_STREAM_CANCEL caused by the session's error. */
const cancelledBy = (cause: Error) => Object.assign(new Error('The pending stream has been canceled', { cause }), { code: 'ERR_HTTP2_STREAM_CANCEL' });

t.test('the same cause is the same failure over HTTP/1.1 and HTTP/2', async (t) => {
  const causes: Array<[string, Error & { code?: string }, { kind: string; status: number; reason: RegExp }]> = [
    ['refused', err('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:1'), { kind: 'refused', status: 503, reason: /^upstream connection refused$/ }],
    ['unreachable', err('EHOSTUNREACH'), { kind: 'unreachable', status: 503, reason: /unreachable \(EHOSTUNREACH\)/ }],
    ['connect timeout', err('UND_ERR_CONNECT_TIMEOUT', 'connect timeout'), { kind: 'unreachable', status: 503, reason: /connect timeout/ }],
    ['reset', err('ECONNRESET', 'socket hang up'), { kind: 'reset', status: 502, reason: /^upstream connection reset$/ }],
    ['identity', new PeerIdentityError('peer 10.0.0.2 presented spiffe://x/ns/a/sa/b, expected spiffe://x/ns/a/sa/c'), { kind: 'identity', status: 502, reason: /^upstream identity mismatch: peer 10\.0\.0\.2 presented/ }],
    ['TLS verification', err('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), { kind: 'tls', status: 502, reason: /upstream TLS failure: unable to verify/ }],
    ['BackendTLSPolicy', new BackendTlsError('BackendTLSPolicy demo/p: TLS to h at 1.2.3.4:443 failed: x'), { kind: 'tls', status: 503, reason: /^BackendTLSPolicy demo\/p/ }],
    ['no certificate yet', err('WEFT_NO_CERT', 'no mesh certificate yet'), { kind: 'no-config', status: 503, reason: /no mesh certificate yet/ }],
  ];
  for (const [name, e, want] of causes) {
    const h1 = classifyUpstreamError(e);
    const h2 = classifyH2Close(C.NGHTTP2_CANCEL, cancelledBy(e));
    t.equal(h1.kind, want.kind, `${name}: kind`);
    t.equal(h1.status, want.status, `${name}: status`);
    t.match(h1.reason, want.reason, `${name}: reason`);
    t.same({ kind: h2.kind, status: h2.status, reason: h2.reason, passReset: h2.passReset }, { ...h1, passReset: false }, `${name}: HTTP/2 says the same`);
    t.same(classifyH2Close(C.NGHTTP2_INTERNAL_ERROR, e), { ...h1, passReset: false }, `${name}: also when the session error itself reaches the stream`);
  }
  const timeout = classifyUpstreamError(new TimeoutError('backendRequest', 250));
  t.same(timeout, { kind: 'timeout', status: 504, reason: 'backendRequest timeout of 250 ms' });
});

t.test('HTTP/2 resets without a session failure', async (t) => {
  const streamErr = err('ERR_HTTP2_STREAM_ERROR', 'Stream closed with error code NGHTTP2_ENHANCE_YOUR_CALM');
  const passed = classifyH2Close(C.NGHTTP2_ENHANCE_YOUR_CALM, streamErr);
  t.equal(passed.passReset, true, 'the peer reset only this stream: the code is passed on to the caller');
  t.equal(passed.kind, 'reset');
  t.same(classifyH2Close(C.NGHTTP2_REFUSED_STREAM, undefined), { kind: 'refused', status: 503, reason: 'upstream reset the stream (code 7)', passReset: false }, 'REFUSED_STREAM: not processed');
  t.equal(classifyH2Close(C.NGHTTP2_CANCEL, undefined).status, 503, 'CANCEL: not processed');
});

t.test('gRPC callers get the grpc-status of the mesh status', async (t) => {
  const table: Array<[number, number]> = [[404, 12], [504, 4], [400, 13], [431, 13], [499, 1], [500, 14], [502, 14], [503, 14], [508, 14]];
  for (const [status, code] of table) t.equal(grpcCodeOfMeshStatus(status), code, `${status} → ${code}`);
});

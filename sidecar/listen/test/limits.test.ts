// The sidecar's limits: defaults, flags (as `weft sidecar` parses them), the
// options node's servers get, and errors that name the flag.
import t from 'tap';
import { DEFAULT_LIMITS, httpServerOptions, http2Settings, limitsFromFlags, limitsToFlags } from '../limits.js';

t.test('defaults: a 10 s request-head timeout, 16 KiB heads, 100 headers, slash merging off', async (t) => {
  t.same(DEFAULT_LIMITS, { requestHeadTimeoutMs: 10_000, maxHeaderBytes: 16_384, maxHeaders: 100, idleTimeoutMs: 300_000, maxConnections: 16_384, maxConcurrentStreams: 250, mergeSlashes: false });
  t.same(limitsFromFlags({}), { limits: DEFAULT_LIMITS, errors: [] });
});

t.test('flags set each limit; the written forms of durations and sizes', async (t) => {
  const { limits, errors } = limitsFromFlags({
    'request-head-timeout': '2500ms',
    'max-header-bytes': '64Ki',
    'max-headers': '50',
    'idle-timeout': '2m',
    'max-connections': '4000',
    'max-concurrent-streams': '10',
    'merge-slashes': true,
  });
  t.same(errors, []);
  t.same(limits, { requestHeadTimeoutMs: 2500, maxHeaderBytes: 65_536, maxHeaders: 50, idleTimeoutMs: 120_000, maxConnections: 4000, maxConcurrentStreams: 10, mergeSlashes: true });
  t.same(limitsFromFlags({ 'request-head-timeout': '10' }).limits.requestHeadTimeoutMs, 10_000, 'a bare number is seconds');
  t.same(limitsToFlags(limits), ['--request-head-timeout', '2500ms', '--max-header-bytes', '65536', '--max-headers', '50', '--idle-timeout', '120000ms', '--max-connections', '4000', '--max-concurrent-streams', '10', '--merge-slashes']);
  t.same(limitsFromFlags(Object.fromEntries(limitsToFlags(limits).reduce<Array<[string, string | boolean]>>((acc, a, i, all) => {
    if (a.startsWith('--') && (all[i + 1] === undefined || all[i + 1]!.startsWith('--'))) acc.push([a.slice(2), true]);
    else if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]!]);
    return acc;
  }, []))).limits, limits, 'limitsToFlags round-trips');
});

t.test('bad values are errors naming the flag', async (t) => {
  const { errors } = limitsFromFlags({ 'request-head-timeout': 'soon', 'max-headers': '0', 'max-header-bytes': '1Gi' });
  t.same(errors, [
    '--request-head-timeout: "soon" is not a duration (like 10s, 1500ms, 2m)',
    '--max-header-bytes: "1Gi" is not a size in bytes (like 16384, 16Ki, 1Mi)',
    '--max-headers: 0 is out of range (1 to 10000)',
  ]);
});

t.test('server options: head timeout checked often enough, no whole-request timeout (long bodies pass)', async (t) => {
  t.same(httpServerOptions(DEFAULT_LIMITS), { headersTimeout: 10_000, requestTimeout: 0, connectionsCheckingInterval: 1000, keepAliveTimeout: 300_000, maxHeaderSize: 16_384 });
  t.equal(httpServerOptions({ ...DEFAULT_LIMITS, requestHeadTimeoutMs: 200 }).connectionsCheckingInterval, 50);
  t.same(http2Settings(DEFAULT_LIMITS), { maxConcurrentStreams: 250, maxHeaderListSize: 16_384 });
});

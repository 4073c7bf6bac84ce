// W3C Trace Context and the OTLP export body: what a hop does with each kind
// of traceparent, and that the hand-written protobuf decodes with the real
// opentelemetry-proto schema (e2e/helpers/otlp) into the same span.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatTraceParent, parseTraceParent, spanOf, Tracer } from '../trace.js';
import { encodeTracesJson, encodeTracesProto } from '../trace-otlp.js';
import type { RequestRecord } from '../observe.js';
import { startOtlpReceiver } from '../../../e2e/helpers/otlp-receiver.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const P = '00f067aa0ba902b7';
const self = { namespace: 'demo', workload: 'web', serviceAccount: 'web', trustDomain: 'cluster.local' };

t.test('traceparent: valid values parse, everything the spec rejects does not', async (t) => {
  const cases: Array<[string, boolean, string?]> = [
    [`00-${T}-${P}-01`, true, 'sampled'],
    [`00-${T}-${P}-00`, true, 'not sampled'],
    [`01-${T}-${P}-01-extra`, true, 'a later version may append fields'],
    [`00-${T}-${P}-01-extra`, false, 'version 00 is exactly 55 characters'],
    [`ff-${T}-${P}-01`, false, 'version ff is invalid'],
    [`00-${'0'.repeat(32)}-${P}-01`, false, 'all-zero trace id'],
    [`00-${T}-${'0'.repeat(16)}-01`, false, 'all-zero parent id'],
    [`00-${T.toUpperCase()}-${P}-01`, false, 'upper-case hex'],
    [`00-${T}-${P}`, false, 'no flags'],
    ['', false, 'empty'],
    ['garbage', false, 'garbage'],
  ];
  for (const [v, ok, why] of cases) t.equal(parseTraceParent(v) !== undefined, ok, `${why}: ${v}`);
  t.same(parseTraceParent(`00-${T}-${P}-01`), { version: '00', traceId: T, parentId: P, flags: 1 });
  t.equal(formatTraceParent(T, P, true), `00-${T}-${P}-01`);
});

function tracer(sampling: number): Tracer {
  return new Tracer({ collector: 'http://127.0.0.1:9/v1/traces', sampling, self, random: () => 0.5 });
}

t.test('a hop continues a sampled trace with its own span id and passes tracestate on', async (t) => {
  const h: Record<string, unknown> = { traceparent: `00-${T}-${P}-01`, tracestate: 'vendor=x' };
  const span = tracer(0).begin(h, 'outbound')!;
  t.equal(span.traceId, T);
  t.equal(span.parentSpanId, P);
  t.match(span.spanId, /^[0-9a-f]{16}$/);
  t.not(span.spanId, P);
  t.equal(h.traceparent, `00-${T}-${span.spanId}-01`);
  t.equal(h.tracestate, 'vendor=x');
});

t.test('a trace the caller did not sample passes untouched and is not recorded', async (t) => {
  const h: Record<string, unknown> = { traceparent: `00-${T}-${P}-00` };
  const span = tracer(1).begin(h, 'outbound')!;
  t.equal(span.sampled, false);
  t.equal(h.traceparent, `00-${T}-${P}-00`);
});

t.test('without a traceparent, the sampling rate decides whether a trace starts', async (t) => {
  const none: Record<string, unknown> = {};
  t.equal(tracer(0.1).begin(none, 'outbound'), undefined, '0.5 ≥ 0.1: not sampled');
  t.equal(none.traceparent, undefined);
  const h: Record<string, unknown> = {};
  const span = tracer(1).begin(h, 'outbound')!;
  t.equal(span.parentSpanId, '');
  t.equal(h.traceparent, `00-${span.traceId}-${span.spanId}-01`);
});

t.test('a malformed traceparent restarts the trace and drops its tracestate', async (t) => {
  const h: Record<string, unknown> = { traceparent: 'nonsense', tracestate: 'a=b' };
  const span = tracer(1).begin(h, 'inbound')!;
  t.not(span.traceId, '');
  t.equal(h.tracestate, undefined);
  t.ok(parseTraceParent(String(h.traceparent)));
});

const rec: RequestRecord = {
  time: 1_700_000_000_123.5, direction: 'outbound', source: 'spiffe://cluster.local/ns/demo/sa/client', destination: 'demo/web',
  service: 'demo/web', route: 'HTTPRoute demo/web#0', backend: 'demo/web', endpoint: '127.1.2.3:8080', method: 'GET',
  authority: 'web.demo:8080', path: '/x', status: 503, grpcStatus: '', bytesIn: 0, bytesOut: 10, durationMs: 12.5, upstreamMs: 11,
  proxyError: 'connection refused', traceId: T,
};

t.test('the protobuf body decodes with the real OTLP schema into the span that was encoded', async (t) => {
  const span = spanOf(rec, { traceId: T, spanId: P, parentSpanId: 'b7ad6b7169203331', traceState: 'v=1', sampled: true });
  const body = encodeTracesProto({ 'service.name': 'web' }, { name: 'weft', version: '1' }, [span]);
  const rx = await startOtlpReceiver(t, '127.0.0.1');
  const u = new URL(rx.url);
  for (const [type, b] of [['application/x-protobuf', body], ['application/json', encodeTracesJson({ 'service.name': 'web' }, { name: 'weft', version: '1' }, [span])]] as const) {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: (u.port as unknown as number), path: u.pathname, method: 'POST', headers: { 'content-type': type } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(b);
    });
    t.equal(status, 200, type);
  }
  t.same(rx.rejected, []);
  t.equal(rx.spans.length, 2);
  for (const s of rx.spans) {
    t.equal(s.traceId, T, s.encoding);
    t.equal(s.spanId, P);
    t.equal(s.parentSpanId, 'b7ad6b7169203331');
    t.equal(s.traceState, 'v=1');
    t.equal(s.kind, 3, 'CLIENT');
    t.equal(s.startTimeUnixNano, 1_700_000_000_123_500_000n);
    t.equal(s.endTimeUnixNano - s.startTimeUnixNano, 12_500_000n);
    t.equal(s.attributes['http.request.method'], 'GET');
    t.equal(s.attributes['url.path'], '/x');
    t.equal(s.attributes['http.response.status_code'], 503);
    t.equal(s.attributes['server.address'], 'web.demo');
    t.equal(s.attributes['server.port'], 8080);
    t.equal(s.attributes['network.protocol.name'], 'http');
    t.equal(s.attributes['error.type'], 'weft_proxy_error');
    t.equal(s.status.code, 2, 'ERROR');
    t.equal(s.resource['service.name'], 'web');
    t.equal(s.scope, 'weft');
  }
});

t.test('spans leave in batches to the collector; a collector that is down costs dropped spans, not requests', async (t) => {
  const rx = await startOtlpReceiver(t, '127.0.0.1');
  const tr = new Tracer({ collector: rx.url, sampling: 1, self, flushMs: 10 });
  for (let i = 0; i < 3; i++) {
    const h: Record<string, unknown> = {};
    const span = tr.begin(h, 'outbound')!;
    tr.write({ ...rec, status: 200, proxyError: '', traceId: span.traceId }, span);
  }
  await tr.flush();
  t.equal(rx.spans.length, 3);
  t.equal(tr.exported, 3);
  await tr.close();
  const srv = http.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  let dropped = 0;
  const down = new Tracer({ collector: `http://127.0.0.1:${port}`, sampling: 1, self, flushMs: 10, onDrop: (n) => (dropped += n), maxQueue: 2 });
  for (let i = 0; i < 3; i++) {
    const span = down.begin({}, 'outbound')!;
    down.write({ ...rec, traceId: span.traceId }, span);
  }
  t.equal(dropped, 1, 'the third span does not fit the queue of 2');
  await down.flush();
  t.equal(down.failed, 2);
  t.equal(dropped, 3);
  await down.close();
});

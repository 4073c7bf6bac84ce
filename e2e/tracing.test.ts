// Tracing end to end: `weft up --trace-collector URL --trace-sampling 1`
// runs every sidecar with OTLP/HTTP export to a receiver in this test, which
// decodes the real opentelemetry-proto schema. A request through the client's
// sidecar to the web app yields a CLIENT span (client sidecar) and a SERVER
// span (web sidecar) in one trace, the SERVER span's parent being the CLIENT
// span, and the app sees a `traceparent` of that trace whose parent is the
// SERVER span; a caller's own trace is continued, tracestate passed on, and a
// trace the caller did not sample passes untouched with no span.
import t from 'tap';
import { configDir, docs, echoWorkload, loopbackPrefix, meshGet, randomLoopback, service, startMesh, waitFor, type EchoResponse } from './helpers/mesh.js';
import { startOtlpReceiver, type ReceivedSpan } from './helpers/otlp-receiver.js';
import { parseTraceParent } from '../sidecar/index.js';

const NS = 'trace';
const rx = await startOtlpReceiver(t, randomLoopback());
const dir = configDir(t, {
  'mesh.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['web'] }),
    echoWorkload({ name: 'web', namespace: NS, serviceAccount: 'web' }),
  ),
});
const mesh = await startMesh(t, dir, { prefix: await loopbackPrefix(), args: ['--trace-collector', rx.url, '--trace-sampling', '1', '--dashboard', 'off'] });
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');

const appTraceParent = (r: EchoResponse) => r.headers.traceparent?.[0] ?? '';
const spansOf = (traceId: string) => rx.spans.filter((s) => s.traceId === traceId);
const waitSpans = (traceId: string, n: number) => waitFor(`${n} spans of trace ${traceId}`, () => (spansOf(traceId).length >= n ? spansOf(traceId) : undefined), { timeoutMs: 15_000 });

t.test('a sampled request is one trace across both sidecars, and the app sees its traceparent', async (t) => {
  const r = await waitFor('the web app through the mesh', async () => {
    const x = await meshGet(client.podIP, `http://web.${NS}/first?q=1`);
    return x.status === 200 ? x : undefined;
  });
  const tp = parseTraceParent(appTraceParent(r.json()));
  t.ok(tp, `the app got a valid traceparent: ${appTraceParent(r.json())}`);
  const spans = await waitSpans(tp!.traceId, 2);
  const clientSpan = spans.find((s) => s.kind === 3 && s.resource['service.name'] === 'client')!;
  const serverSpan = spans.find((s) => s.kind === 2 && s.resource['service.name'] === 'web')!;
  t.ok(clientSpan, 'a CLIENT span from the client sidecar');
  t.ok(serverSpan, 'a SERVER span from the web sidecar');
  t.equal(clientSpan.parentSpanId, '', 'the trace started at the client sidecar');
  t.equal(serverSpan.parentSpanId, clientSpan.spanId, 'the inbound span continues the outbound one');
  t.equal(tp!.parentId, serverSpan.spanId, "the app's parent is the inbound span");
  t.equal(tp!.flags & 1, 1, 'sampled');
  for (const s of [clientSpan, serverSpan]) {
    t.equal(s.encoding, 'protobuf');
    t.equal(s.attributes['http.request.method'], 'GET');
    t.equal(s.attributes['url.path'], '/first');
    t.equal(s.attributes['http.response.status_code'], 200);
    t.equal(s.attributes['network.protocol.name'], 'http');
    t.equal(s.attributes['server.address'], `web.${NS}`);
    t.equal(s.scope, 'weft');
    t.ok(s.endTimeUnixNano >= s.startTimeUnixNano);
  }
  t.equal(clientSpan.attributes['url.query'], 'q=1');
  t.equal(clientSpan.attributes['weft.service'], `${NS}/web`);
  t.equal(clientSpan.attributes['weft.backend'], `${NS}/web`);
  t.equal(serverSpan.attributes['weft.source.identity'], `spiffe://cluster.local/ns/${NS}/sa/client`);
  t.ok(serverSpan.startTimeUnixNano >= clientSpan.startTimeUnixNano, 'the server span starts after the client span');
});

t.test("a caller's own trace is continued and its tracestate passed on", async (t) => {
  const T = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
  const P = '1122334455667788';
  const r = await meshGet(client.podIP, `http://web.${NS}/mine`, { headers: { traceparent: `00-${T}-${P}-01`, tracestate: 'congo=t61rcWkgMzE' } });
  t.equal(r.status, 200);
  const echo = r.json();
  const tp = parseTraceParent(appTraceParent(echo))!;
  t.equal(tp.traceId, T);
  t.not(tp.parentId, P, 'each hop has its own span id');
  t.same(echo.headers.tracestate, ['congo=t61rcWkgMzE']);
  const spans = await waitSpans(T, 2);
  const clientSpan = spans.find((s: ReceivedSpan) => s.kind === 3)!;
  t.equal(clientSpan.parentSpanId, P);
  t.equal(clientSpan.traceState, 'congo=t61rcWkgMzE');
  t.equal(spans.find((s) => s.kind === 2)!.parentSpanId, clientSpan.spanId);
});

t.test('a trace the caller did not sample passes untouched and leaves no span', async (t) => {
  const T = '0af7651916cd43dd8448eb211c80319c';
  const unsampled = `00-${T}-b7ad6b7169203331-00`;
  const r = await meshGet(client.podIP, `http://web.${NS}/unsampled`, { headers: { traceparent: unsampled } });
  t.equal(appTraceParent(r.json()), unsampled);
  // A sampled request after it: once its spans arrived, any span of the first would have too.
  const after = await meshGet(client.podIP, `http://web.${NS}/after`);
  await waitSpans(parseTraceParent(appTraceParent(after.json()))!.traceId, 2);
  t.same(spansOf(T), []);
  t.same(rx.rejected, [], 'every export decoded');
});

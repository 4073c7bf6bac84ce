// Tap, access log and tracing on the HTTP/2 path: a real grpc-js client and
// server, a real control and two real sidecars (in this process, each on its
// own loopback pod IP). A unary call is one trace (CLIENT span at the
// client's sidecar, SERVER span at the server's, the server sees the
// traceparent), both spans carry rpc.grpc.status_code and HTTP/2; the
// client's access log and a tap on the server's admin endpoint see the call
// with its grpc-status.
import t from 'tap';
import http from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl } from '../control/index.js';
import { parseTraceParent, startSidecar, type SidecarHandle } from '../sidecar/index.js';
import { echoClient, startGrpcEcho, unary, type EchoClient } from './helpers/grpc-echo.js';
import { startOtlpReceiver } from './helpers/otlp-receiver.js';
import { waitFor } from './helpers/mesh.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const PORT = 50051;

t.test('a gRPC call through two sidecars is traced, logged and tapped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-observe-grpc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'config'));
  writeFileSync(join(dir, 'config', 'mesh.yaml'), [
    'apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n',
    `apiVersion: v1\nkind: Service\nmetadata: { name: grpc, namespace: demo }\nspec:\n  selector: { app: grpc }\n  ports: [{ name: grpc, port: ${PORT}, targetPort: ${PORT}, appProtocol: grpc }]\n`,
    // A Service without endpoints: the client's sidecar answers UNAVAILABLE itself (trailers-only).
    `apiVersion: v1\nkind: Service\nmetadata: { name: nobody, namespace: demo }\nspec:\n  selector: { app: nobody }\n  ports: [{ name: grpc, port: ${PORT}, targetPort: ${PORT}, appProtocol: grpc }]\n`,
  ].join('---\n'));
  const control = await startControl({ configDir: join(dir, 'config'), stateDir: join(dir, 'state'), listen: `${ip(1)}:0`, adminListen: `${ip(1)}:0`, log: () => undefined });
  t.teardown(() => control.close());
  const app = await startGrpcEcho({ host: ip(2), port: PORT, pod: 'server' });
  t.teardown(() => app.close());
  const rx = await startOtlpReceiver(t, ip(9));
  const accessLog = join(dir, 'client-access.log');
  const common = { control: control.grpcAddress, stateDir: join(dir, 'state'), namespace: 'demo', log: () => undefined, trace: { collector: rx.url, sampling: 1 } };
  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const server = await startSidecar({ ...common, podIP: ip(2), workload: 'grpc', serviceAccount: 'grpc', labels: { app: 'grpc' }, appPorts: [PORT] });
  sidecars.push(server);
  const client = await startSidecar({ ...common, podIP: ip(3), workload: 'client', serviceAccount: 'client', subscribe: ['grpc', 'nobody'], accessLog: { format: 'json', path: accessLog } });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const c: EchoClient = echoClient(client.outboundAddress, `grpc.demo:${PORT}`);
  t.teardown(() => c.close());
  await waitFor('the gRPC server through the mesh', () => unary(c, 'Echo', { text: 'ping' }, { deadlineMs: 2000 }).then((r) => r.pod === 'server'), { timeoutMs: 15_000 });

  // Tap the server's sidecar (inbound) while calling.
  const tapped: Array<Record<string, unknown>> = [];
  const tapReq = http.get(`http://${server.adminAddress}/tap?direction=inbound&max=1`, (res) => {
    let buf = '';
    res.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (const l of buf.split('\n').slice(0, -1)) tapped.push(JSON.parse(l) as Record<string, unknown>);
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
  });
  t.teardown(() => tapReq.destroy());
  await waitFor('the tap to start', () => tapped.some((x) => x.kind === 'tap'));

  const r = await unary(c, 'Echo', { text: 'traced' });
  const tp = parseTraceParent(r.metadata?.traceparent ?? '');
  t.ok(tp, `the server saw a traceparent: ${r.metadata?.traceparent}`);
  const spans = await waitFor('both spans', () => {
    const s = rx.spans.filter((x) => x.traceId === tp!.traceId);
    return s.length >= 2 ? s : undefined;
  }, { timeoutMs: 15_000 });
  const cs = spans.find((s) => s.kind === 3)!;
  const ss = spans.find((s) => s.kind === 2)!;
  t.equal(ss.parentSpanId, cs.spanId);
  t.equal(tp!.parentId, ss.spanId);
  for (const s of [cs, ss]) {
    t.equal(s.attributes['rpc.system'], 'grpc');
    t.equal(s.attributes['rpc.grpc.status_code'], 0);
    t.equal(s.attributes['network.protocol.version'], '2');
    t.equal(s.attributes['http.request.method'], 'POST');
    t.equal(s.attributes['url.path'], '/weft.test.Echo/Echo');
  }

  const rec = await waitFor('the tapped call', () => tapped.find((x) => x.kind === 'request' && x.path === '/weft.test.Echo/Echo'));
  t.match(rec, { direction: 'inbound', source: 'spiffe://cluster.local/ns/demo/sa/client', destination: 'demo/grpc', method: 'POST', status: 200, grpcStatus: '0', traceId: tp!.traceId });
  t.ok((rec.bytesOut as number) > 0, `the inbound record counts the response bytes over HTTP/2 (${rec.bytesOut})`);

  const line = await waitFor('the client access log line', () =>
    existsSync(accessLog) ? readFileSync(accessLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.traceId === tp!.traceId) : undefined);
  t.match(line, { direction: 'outbound', destination: { service: 'demo/grpc', backend: 'demo/grpc', endpoint: `${ip(2)}:${PORT}`, workload: 'demo/grpc' }, method: 'POST', path: '/weft.test.Echo/Echo', status: 200, grpcStatus: '0' });
  t.ok(line.bytesOut > 0, `the outbound line counts the response bytes over HTTP/2 (${line.bytesOut})`);

  // A mesh-made answer on the HTTP/2 path (no endpoint: UNAVAILABLE) is logged and traced too.
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const n: EchoClient = echoClient(client.outboundAddress, `nobody.demo:${PORT}`);
  t.teardown(() => n.close());
  const err = await unary(n, 'Echo', { text: 'nobody' }, { metadata: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } }).then(() => undefined, (e: { code?: number }) => e);
  t.equal(err?.code, 14, 'UNAVAILABLE from the mesh');
  const failed = await waitFor('the mesh-made answer in the access log', () =>
    readFileSync(accessLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).find((l) => l.traceId === trace));
  t.match(failed, { direction: 'outbound', destination: { service: 'demo/nobody', endpoint: '' }, status: 200, grpcStatus: '14', proxyError: /./ });
  const span = await waitFor('its CLIENT span', () => rx.spans.find((x) => x.traceId === trace));
  t.equal(span.kind, 3);
  t.equal(span.attributes['rpc.grpc.status_code'], 14);
});

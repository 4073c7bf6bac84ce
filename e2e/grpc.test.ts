// gRPC through the mesh: real grpc-js clients and servers, a real control
// (YAML directory) and three real sidecars in this process, each on its own
// loopback pod IP. app (h2c) → client sidecar outbound → mTLS h2 hop →
// server sidecar inbound → h2c → grpc-js server.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl } from '../control/index.js';
import { startSidecar, type SidecarHandle } from '../sidecar/index.js';
import { ECHO_SERVICE, echoClient, grpc, startGrpcEcho, unary, type EchoClient, type Msg } from './helpers/grpc-echo.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL_IP = ip(1);
const V1_IP = ip(2);
const V2_IP = ip(3);
const CLIENT_IP = ip(4);
const PORT = 50051;

const svc = (name: string, selector: string) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: demo }
spec:
  selector: ${selector}
  ports: [{ name: grpc, port: ${PORT}, targetPort: ${PORT}, appProtocol: grpc }]
`;

const YAML = [
  'apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n',
  svc('grpc', '{ app: grpc }'),
  svc('grpc-v1', '{ app: grpc, version: v1 }'),
  svc('grpc-v2', '{ app: grpc, version: v2 }'),
  svc('split', '{ app: grpc }'),
  svc('nobody', '{ app: nobody }'),
  `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: slow-to-v2, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: grpc, port: ${PORT} }]
  rules:
    - matches: [{ method: { service: ${ECHO_SERVICE}, method: Slow } }]
      backendRefs: [{ name: grpc-v2, port: ${PORT} }]
    - matches: [{ method: { service: ${ECHO_SERVICE} } }]
      backendRefs: [{ name: grpc-v1, port: ${PORT} }]
`,
  `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: split, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: split, port: ${PORT} }]
  rules:
    - matches: [{ method: { service: ${ECHO_SERVICE}, method: Echo } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-mesh-route, value: split }] }
      backendRefs:
        - { name: grpc-v1, port: ${PORT}, weight: 80 }
        - { name: grpc-v2, port: ${PORT}, weight: 20 }
`,
].join('---\n');

type Call = grpc.ClientUnaryCall;

t.test('gRPC through two sidecars', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-grpc-e2e-'));
  const cfg = join(dir, 'config');
  const state = join(dir, 'state');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'mesh.yaml'), YAML);
  const logs: string[] = [];
  const control = await startControl({ configDir: cfg, stateDir: state, listen: `${CONTROL_IP}:0`, adminListen: `${CONTROL_IP}:0`, log: (l) => logs.push(`control: ${l}`) });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const v1 = await startGrpcEcho({ host: V1_IP, port: PORT, pod: 'v1' });
  const v2 = await startGrpcEcho({ host: V2_IP, port: PORT, pod: 'v2' });
  t.teardown(() => Promise.all([v1.close(), v2.close()]));

  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const common = { control: control.grpcAddress, stateDir: state, namespace: 'demo', log: (l: string) => logs.push(l) };
  sidecars.push(await startSidecar({ ...common, podIP: V1_IP, workload: 'grpc-v1', serviceAccount: 'grpc', labels: { app: 'grpc', version: 'v1' }, appPorts: [PORT] }));
  sidecars.push(await startSidecar({ ...common, podIP: V2_IP, workload: 'grpc-v2', serviceAccount: 'grpc', labels: { app: 'grpc', version: 'v2' }, appPorts: [PORT] }));
  const client = await startSidecar({ ...common, podIP: CLIENT_IP, workload: 'client', serviceAccount: 'client', labels: { app: 'client' }, subscribe: ['grpc', 'split'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const clients: EchoClient[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));
  const connect = (service: string) => {
    const c = echoClient(client.outboundAddress, `${service}.demo:${PORT}`);
    clients.push(c);
    return c;
  };
  const c = connect('grpc');

  // Endpoints register as sidecars connect: wait until v1 answers through the mesh.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await unary(c, 'Echo', { text: 'ping' }, { deadlineMs: 2000 });
      if (r.pod === 'v1') break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`mesh never became routable: ${(e as Error).message}\n${logs.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  await t.test('unary: answered by v1 with the caller identity', async (t) => {
    const r = await unary(c, 'Echo', { text: 'hello', seq: 7 });
    t.equal(r.text, 'hello');
    t.equal(r.seq, 7);
    t.equal(r.pod, 'v1');
    t.equal(r.metadata?.['x-weft-peer-identity'], 'spiffe://cluster.local/ns/demo/sa/client');
  });

  await t.test('10,000 unary calls complete (100 concurrent)', async (t) => {
    const start = performance.now();
    let n = 0;
    const worker = async () => {
      while (n < 10_000) {
        const i = n++;
        const r = await unary(c, 'Echo', { seq: i });
        if (r.seq !== i) throw new Error(`call ${i} answered ${r.seq}`);
      }
    };
    await Promise.all(Array.from({ length: 100 }, worker));
    const s = (performance.now() - start) / 1000;
    t.comment(`unary through two sidecars: ${Math.round(10_000 / s)} calls/s (100 in flight)`);
    t.equal(n, 10_000);
  });

  await t.test('server streaming: 10,000 messages in order', async (t) => {
    const call = (c.ServerStream as (r: Msg) => grpc.ClientReadableStream<Msg>)({ count: 10_000, payload: Buffer.alloc(100, 1) });
    let next = 0;
    let ordered = true;
    await new Promise<void>((resolve, reject) => {
      call.on('data', (m: Msg) => {
        if (m.seq !== next) ordered = false;
        next++;
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    t.equal(next, 10_000);
    t.ok(ordered, 'in order');
  });

  await t.test('client streaming: 10,000 messages in order', async (t) => {
    const r = await new Promise<Msg>((resolve, reject) => {
      const call = (c.ClientStream as (cb: (e: grpc.ServiceError | null, r: Msg) => void) => grpc.ClientWritableStream<Msg>)((e, r) => (e ? reject(e) : resolve(r)));
      let i = 0;
      const write = () => {
        while (i < 10_000) {
          const ok = call.write({ seq: i++ });
          if (!ok) return void call.once('drain', write);
        }
        call.end();
      };
      write();
    });
    t.equal(r.count, 10_000);
    t.equal(r.seq, (9_999 * 10_000) / 2);
    t.equal(r.text, 'ordered');
  });

  await t.test('bidi: 10,000 messages each way, in order', async (t) => {
    const call = (c.Bidi as () => grpc.ClientDuplexStream<Msg, Msg>)();
    let next = 0;
    let ordered = true;
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: Msg) => {
        if (m.seq !== next) ordered = false;
        next++;
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    let i = 0;
    const write = () => {
      while (i < 10_000) {
        const ok = call.write({ seq: i++, text: 'x' });
        if (!ok) return void call.once('drain', write);
      }
      call.end();
    };
    write();
    await done;
    t.equal(next, 10_000);
    t.ok(ordered, 'in order');
  });

  await t.test('a 4 MiB message passes both ways', async (t) => {
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
    const r = await unary(c, 'Echo', { payload });
    t.equal(r.payload?.length, payload.length);
    t.ok(r.payload?.equals(payload), 'same bytes');
  });

  await t.test('a 100 ms deadline on Slow: DEADLINE_EXCEEDED, and the server sees the cancel', async (t) => {
    const before = v2.cancelled;
    const start = performance.now();
    const err = await unary(c, 'Slow', { delayMs: 5000 }, { deadlineMs: 100 }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    const took = performance.now() - start;
    t.equal(err?.code, grpc.status.DEADLINE_EXCEEDED, `status ${err?.code} ${err?.details}`);
    t.ok(took < 2000, `ended after ${Math.round(took)} ms`);
    await waitUntil(() => v2.cancelled > before, 3000);
    t.equal(v2.cancelled, before + 1, 'the Slow handler on v2 saw the cancel');
  });

  await t.test('the sidecar enforces grpc-timeout itself: DEADLINE_EXCEEDED from the mesh', async (t) => {
    // A client whose own deadline is far but whose grpc-timeout says 150 ms is not possible with
    // grpc-js (it derives one from the other), so speak h2 directly.
    const http2 = await import('node:http2');
    const s = http2.connect(`http://${client.outboundAddress}`);
    t.teardown(() => s.close());
    const frame = Buffer.alloc(5); // empty Msg
    const st = s.request({ ':method': 'POST', ':path': `/${ECHO_SERVICE}/Slow`, ':authority': `grpc.demo:${PORT}`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '150m' });
    st.end(frame);
    const got = await new Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown> }>((resolve) => {
      let headers: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      st.on('response', (h) => (headers = h));
      st.on('trailers', (h) => (trailers = h));
      st.resume();
      st.on('close', () => resolve({ headers, trailers }));
    });
    const status = got.trailers['grpc-status'] ?? got.headers['grpc-status'];
    t.equal(status, String(grpc.status.DEADLINE_EXCEEDED), JSON.stringify(got));
    t.equal(got.headers[':status'], 200);
  });

  await t.test('GRPCRoute: method Slow goes to v2, the rest to v1', async (t) => {
    const r = await unary(c, 'Slow', { delayMs: 1 });
    t.equal(r.pod, 'v2');
    const e = await unary(c, 'Echo', {});
    t.equal(e.pod, 'v1');
  });

  await t.test('weighted split 80/20 and RequestHeaderModifier', async (t) => {
    const sc = connect('split');
    const count: Record<string, number> = {};
    let header = 0;
    const N = 1000;
    await Promise.all(
      Array.from({ length: 20 }, async (_, w) => {
        for (let i = w; i < N; i += 20) {
          const r = await unary(sc, 'Echo', {});
          count[r.pod!] = (count[r.pod!] ?? 0) + 1;
          if (r.metadata?.['x-mesh-route'] === 'split') header++;
        }
      }),
    );
    const v1Share = (count.v1 ?? 0) / N;
    t.comment(`split: ${JSON.stringify(count)}`);
    // 80% ± 5 points (binomial sd at n=1000 is 1.3 points).
    t.ok(Math.abs(v1Share - 0.8) < 0.05, `v1 share ${v1Share}`);
    t.equal(header, N, 'every request carried the header the route set');
  });

  await t.test('mesh-made errors are trailers-only gRPC responses', async (t) => {
    const unimpl = await unary(connect('split'), 'Slow', { delayMs: 1 }).then(() => undefined, (e: grpc.ServiceError) => e);
    t.equal(unimpl?.code, grpc.status.UNIMPLEMENTED, `no route: ${unimpl?.details}`);
    const unavail = await unary(connect('nobody'), 'Echo', {}).then(() => undefined, (e: grpc.ServiceError) => e);
    t.equal(unavail?.code, grpc.status.UNAVAILABLE, `no endpoint: ${unavail?.details}`);
    const metrics = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    t.match(metrics, /weft_requests_total\{[^}]*grpc_status="12"[^}]*\} \d+/, 'grpc_status 12 recorded');
    t.match(metrics, /weft_requests_total\{[^}]*dst_service="grpc"[^}]*grpc_status="0"[^}]*\} \d+/, 'grpc_status 0 recorded');
  });

  await t.test('many concurrent streams share the mesh hop', async (t) => {
    const opened = async () => {
      const text = await (await fetch(`http://${sidecars[0]!.adminAddress}/metrics`)).text();
      let n = 0;
      for (const line of text.split('\n')) {
        if (line.startsWith('weft_tcp_connections_opened_total{') && line.includes('direction="inbound"') && line.includes('tls="true"')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return n;
    };
    const before = await opened();
    const calls: Array<Promise<Msg>> = [];
    for (let i = 0; i < 500; i++) calls.push(unary(c, 'Echo', { seq: i }));
    const rs = await Promise.all(calls);
    t.equal(rs.filter((r, i) => r.seq === i).length, 500);
    const after = await opened();
    t.ok(before >= 1 && before <= 2, `TLS connections at v1's inbound so far: ${before}`);
    t.equal(after, before, '500 concurrent calls opened no new TLS connection');
  });

  await t.test('a client cancel resets the upstream stream', async (t) => {
    const before = v2.cancelled;
    const call: Call = (c.Slow as (r: Msg, cb: (e: grpc.ServiceError | null) => void) => Call)({ delayMs: 5000 }, () => {});
    await new Promise((r) => setTimeout(r, 200));
    call.cancel();
    await waitUntil(() => v2.cancelled > before, 3000);
    t.equal(v2.cancelled, before + 1);
  });
});

async function waitUntil(fn: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
}

// WebSocket through the mesh: a real `ws` client talks to the client
// sidecar's outbound listener, the Upgrade is routed by an HTTPRoute, crosses
// the mTLS hop and reaches a real `ws` server behind the server sidecar;
// after 101 both directions are raw byte pipes (large frames, many
// messages, close codes).
import t from 'tap';
import http from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { startControl } from '../control/index.js';
import { startSidecar, type SidecarHandle } from '../sidecar/index.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL_IP = ip(1);
const SERVER_IP = ip(2);
const CLIENT_IP = ip(3);

const YAML = `
apiVersion: v1
kind: Namespace
metadata: { name: demo }
---
apiVersion: v1
kind: Service
metadata: { name: chat, namespace: demo }
spec:
  selector: { app: chat }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: chat, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: chat, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /ws } }]
      backendRefs: [{ name: chat, port: 80 }]
`;

t.test('a WebSocket echo through two sidecars works both ways', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ws-e2e-'));
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

  // The app: echoes every message, prefixed with the caller's identity; "push" makes it speak first.
  const app = http.createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ server: app });
  let serverClose: { code: number; reason: string } | undefined;
  wss.on('connection', (ws, req) => {
    const peer = String(req.headers['x-weft-peer-identity'] ?? '');
    ws.on('message', (m, binary) => {
      if (!binary && m.toString() === 'push') {
        for (let i = 0; i < 3; i++) ws.send(`server says ${i}`);
        return;
      }
      ws.send(binary ? m : `${peer} ${m.toString()}`, { binary });
    });
    ws.on('close', (code, reason) => (serverClose = { code, reason: reason.toString() }));
  });
  await new Promise<void>((r) => app.listen(8080, SERVER_IP, r));
  t.teardown(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
    app.closeAllConnections();
    app.close();
  });

  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const common = { control: control.grpcAddress, stateDir: state, namespace: 'demo', log: (l: string) => logs.push(l) };
  sidecars.push(await startSidecar({ ...common, podIP: SERVER_IP, workload: 'chat', serviceAccount: 'chat', labels: { app: 'chat' }, appPorts: [8080] }));
  const client = await startSidecar({ ...common, podIP: CLIENT_IP, workload: 'client', serviceAccount: 'client', labels: { app: 'client' }, subscribe: ['chat'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const open = async (path: string): Promise<WebSocket> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ws = new WebSocket(`ws://${client.outboundAddress}${path}`, { headers: { host: 'chat.demo' } });
      const ok = await new Promise<boolean>((resolve) => {
        ws.once('open', () => resolve(true));
        ws.once('unexpected-response', () => resolve(false));
        ws.once('error', () => resolve(false));
      });
      if (ok) return ws;
      ws.terminate();
      if (Date.now() > deadline) throw new Error(`no WebSocket through the mesh\n${logs.join('\n')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const ws = await open('/ws/echo');
  const inbox: Array<{ data: Buffer; binary: boolean }> = [];
  let wake: (() => void) | undefined;
  ws.on('message', (data: Buffer, binary: boolean) => {
    inbox.push({ data, binary });
    wake?.();
  });
  const next = async (n: number) => {
    while (inbox.length < n) await new Promise<void>((r) => (wake = r));
    return inbox.splice(0, n);
  };

  await t.test('client to server and back, with the caller identity', async (t) => {
    ws.send('hello');
    const [m] = await next(1);
    t.equal(m!.data.toString(), 'spiffe://cluster.local/ns/demo/sa/client hello');
  });

  await t.test('the server speaks first', async (t) => {
    ws.send('push');
    const ms = await next(3);
    t.same(ms.map((m) => m.data.toString()), ['server says 0', 'server says 1', 'server says 2']);
  });

  await t.test('1,000 messages and a 2 MiB binary frame keep order and bytes', async (t) => {
    for (let i = 0; i < 1000; i++) ws.send(`m${i}`);
    const ms = await next(1000);
    t.ok(ms.every((m, i) => m.data.toString().endsWith(` m${i}`)), 'in order');
    const big = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff;
    ws.send(big, { binary: true });
    const [b] = await next(1);
    t.ok(b!.binary && b!.data.equals(big), 'same 2 MiB back');
  });

  await t.test('a close code crosses the tunnel', async (t) => {
    const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
    ws.close(4001, 'bye');
    t.equal(await closed, 4001);
    for (let i = 0; i < 50 && !serverClose; i++) await new Promise((r) => setTimeout(r, 20));
    t.same(serverClose, { code: 4001, reason: 'bye' });
  });

  await t.test('an upgrade no rule matches is refused like any request', async (t) => {
    const refused = new WebSocket(`ws://${client.outboundAddress}/other`, { headers: { host: 'chat.demo' } });
    const status = await new Promise<number>((resolve) => {
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.on('error', () => resolve(-1));
    });
    t.equal(status, 404);
  });
});

// The mesh hop over weft-mux/1, through real sidecars in one process: the
// outbound opens ONE multiplexed mTLS connection to a peer for many
// concurrent HTTP/1.1 requests (WEFT_HOP=http1 would open a pool of them),
// the inbound serves each stream with the engine to the app, passes the
// caller's SPIFFE ID and drops a forged one, bodies of both framings cross,
// and an Upgrade still goes over the HTTP/1.1 hop.
import t from 'tap';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { Pool } from 'undici';
import { startControl } from '../../../control/index.js';
import { startSidecar, type SidecarHandle } from '../../index.js';

// weft-mux/1 is the default hop (endpoint-pool.ts); a stray WEFT_HOP from the environment must not turn it off here.
delete process.env.WEFT_HOP;

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;

const YAML = `
apiVersion: v1
kind: Namespace
metadata: { name: demo }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: demo }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

async function metric(admin: string, name: string, ...match: string[]): Promise<number> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && match.every((m) => line.includes(m))) sum += Number(line.split(' ').pop());
  return sum;
}

t.test('HTTP/1.1 callers cross the hop as weft-mux/1 streams', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-hop-mux-'));
  const cfg = join(dir, 'config');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'mesh.yaml'), YAML);
  const logs: string[] = [];
  const control = await startControl({ configDir: cfg, stateDir: join(dir, 'state'), listen: `${ip(1)}:0`, adminListen: `${ip(1)}:0`, log: (l) => logs.push(l) });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const app = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('slow'), 30);
        return;
      }
      const body = JSON.stringify({ path: req.url, peer: req.headers['x-weft-peer-identity'] ?? null, te: req.headers['transfer-encoding'] ?? null, bodyBytes: n, upgrade: req.headers.upgrade ?? null });
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked answer
      res.end(body);
    });
  });
  app.on('upgrade', (req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: weft-test\r\nconnection: upgrade\r\n\r\n');
    socket.on('data', (b: Buffer) => socket.write(`echo:${b.toString()}`));
  });
  await new Promise<void>((r) => app.listen(8080, ip(2), () => r()));
  t.teardown(() => {
    app.closeAllConnections();
    app.close();
  });
  const common = { control: control.grpcAddress, stateDir: join(dir, 'state'), namespace: 'demo', log: (l: string) => logs.push(l) };
  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const server = await startSidecar({ ...common, podIP: ip(2), workload: 'echo', serviceAccount: 'echo', labels: { app: 'echo' }, appPorts: [8080] });
  sidecars.push(server);
  const client = await startSidecar({ ...common, podIP: ip(3), workload: 'client', serviceAccount: 'client', labels: { app: 'client' }, subscribe: ['echo'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const pool = new Pool(`http://${client.outboundAddress}`, { connections: 50 });
  t.teardown(() => pool.destroy());
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await pool.request({ path: '/ping', method: 'GET', headers: { host: 'echo' } });
    await r.body.text();
    if (r.statusCode === 200) break;
    if (Date.now() > deadline) throw new Error(`never routable\n${logs.join('\n')}`);
    await new Promise((res) => setTimeout(res, 100));
  }

  await t.test('many concurrent requests share one hop connection', async (t) => {
    const before = await metric(client.adminAddress, 'weft_tcp_connections_opened_total', 'direction="outbound"', 'tls="true"');
    const all = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const r = await pool.request({ path: i % 2 ? '/slow' : `/n/${i}`, method: 'GET', headers: { host: 'echo' } });
        return { status: r.statusCode, body: await r.body.text() };
      }),
    );
    t.ok(all.every((r) => r.status === 200), 'every request answered 200');
    t.ok(all.filter((_, i) => i % 2 === 0).every((r, j) => JSON.parse(r.body).path === `/n/${2 * j}`), 'each answer belongs to its request');
    const after = await metric(client.adminAddress, 'weft_tcp_connections_opened_total', 'direction="outbound"', 'tls="true"');
    t.equal(after - before, 0, `no new hop connection for 100 concurrent requests (${after} opened in all)`);
    t.ok(after <= 2, 'one multiplexed connection (not a pool) carried them');
  });

  await t.test('the caller identity is passed and a forged one dropped', async (t) => {
    const r = await pool.request({ path: '/who', method: 'GET', headers: { host: 'echo', 'x-weft-peer-identity': 'spiffe://evil/ns/x/sa/y' } });
    const j = JSON.parse(await r.body.text());
    t.equal(j.peer, 'spiffe://cluster.local/ns/demo/sa/client');
  });

  await t.test('bodies cross in both framings', async (t) => {
    const big = Buffer.alloc(1_000_000, 7);
    const r1 = await pool.request({ path: '/len', method: 'POST', headers: { host: 'echo', 'content-length': String(big.length) }, body: big });
    t.equal(JSON.parse(await r1.body.text()).bodyBytes, big.length, 'Content-Length body (beyond the stream window)');
    async function* gen() {
      for (let i = 0; i < 40; i++) yield Buffer.alloc(10_000, i);
    }
    const r2 = await pool.request({ path: '/chunked', method: 'POST', headers: { host: 'echo' }, body: gen() });
    const j2 = JSON.parse(await r2.body.text());
    t.equal(j2.bodyBytes, 400_000, 'chunked body');
    t.equal(j2.te, 'chunked');
  });

  await t.test('the inbound counts each stream', async (t) => {
    const n = await metric(server.adminAddress, 'weft_requests_total', 'direction="inbound"');
    t.ok(n >= 104, `inbound request metrics recorded (${n})`);
    const appConns = await metric(server.adminAddress, 'weft_tcp_connections_opened_total', 'direction="inbound"', 'tls="false"');
    t.ok(appConns >= 1, `the inbound's connections to the app are counted (${appConns})`);
  });

  await t.test('an Upgrade goes over the HTTP/1.1 hop and tunnels', async (t) => {
    const net = await import('node:net');
    const [host, port] = client.outboundAddress.split(':');
    const got = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(port), host!, () => s.write('GET /up HTTP/1.1\r\nhost: echo\r\nconnection: upgrade\r\nupgrade: weft-test\r\n\r\n'));
      let acc = '';
      s.on('data', (b: Buffer) => {
        acc += b.toString();
        if (acc.includes('\r\n\r\n') && !acc.includes('echo:')) s.write('hi');
        if (acc.includes('echo:hi')) {
          s.destroy();
          resolve(acc);
        }
      });
      s.on('error', reject);
      setTimeout(() => reject(new Error(`no tunnel: ${acc}`)), 5000).unref();
    });
    t.match(got, /^HTTP\/1\.1 101/);
    t.match(got, /echo:hi/);
  });
});

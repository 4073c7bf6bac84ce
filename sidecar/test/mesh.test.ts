// End to end through real processes' worth of pieces in one process: a real
// control (YAML directory, Identity, Discovery over TLS), three sidecars on
// their own loopback pod IPs, two echo apps. Requests go app → outbound →
// mTLS hop → inbound → app.
import t from 'tap';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import tls from 'node:tls';
import { Pool } from 'undici';
import { startControl } from '../../control/index.js';
import { startSidecar, type SidecarHandle } from '../index.js';
import { createTrustAnchor, createIssuer, issueCert } from '../../certs/index.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL_IP = ip(1);
const V1_IP = ip(2);
const V2_IP = ip(3);
const CLIENT_IP = ip(4);

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
---
apiVersion: v1
kind: Service
metadata: { name: echo-v1, namespace: demo }
spec:
  selector: { app: echo, version: v1 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: echo-v2, namespace: demo }
spec:
  selector: { app: echo, version: v2 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-split, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /v2 } }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - matches: [{ path: { type: Exact, value: /redirect } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { scheme: https, hostname: example.com, statusCode: 301 }
    - backendRefs:
        - { name: echo-v1, port: 80, weight: 90 }
        - { name: echo-v2, port: 80, weight: 10 }
`;

function echoApp(name: string, host: string): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ pod: name, path: req.url, host: req.headers.host, peer: req.headers['x-weft-peer-identity'] ?? null, bodyBytes: n });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  s.keepAliveTimeout = 120_000;
  return new Promise((r) => s.listen(8080, host, () => r(s)));
}

t.test('a request through the mesh', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sidecar-e2e-'));
  const cfg = join(dir, 'config');
  const state = join(dir, 'state');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(cfg);
  writeFileSync(join(cfg, 'mesh.yaml'), YAML);
  const logs: string[] = [];
  const control = await startControl({ configDir: cfg, stateDir: state, listen: `${CONTROL_IP}:0`, adminListen: `${CONTROL_IP}:0`, log: (l) => logs.push(`control: ${l}`) });
  let controlClosed = false;
  t.teardown(async () => {
    if (!controlClosed) await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const apps = [await echoApp('echo-v1', V1_IP), await echoApp('echo-v2', V2_IP)];
  t.teardown(() => apps.forEach((a) => a.closeAllConnections() || a.close()));

  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const common = { control: control.grpcAddress, stateDir: state, namespace: 'demo', log: (l: string) => logs.push(l) };
  const start = performance.now();
  sidecars.push(await startSidecar({ ...common, podIP: V1_IP, workload: 'echo-v1', serviceAccount: 'echo', labels: { app: 'echo', version: 'v1' }, appPorts: [8080] }));
  sidecars.push(await startSidecar({ ...common, podIP: V2_IP, workload: 'echo-v2', serviceAccount: 'echo', labels: { app: 'echo', version: 'v2' }, appPorts: [8080] }));
  const client = await startSidecar({ ...common, podIP: CLIENT_IP, workload: 'client', serviceAccount: 'client', labels: { app: 'client' }, subscribe: ['echo'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));
  t.comment(`three sidecars ready in ${Math.round(performance.now() - start)} ms`);

  const pool = new Pool(`http://${client.outboundAddress}`, { connections: 8 });
  t.teardown(() => pool.destroy());
  const get = async (path: string, host = 'echo') => {
    const r = await pool.request({ path, method: 'GET', headers: { host } });
    const text = await r.body.text();
    return { status: r.statusCode, headers: r.headers, json: r.statusCode === 200 && r.headers['content-type'] === 'application/json' ? JSON.parse(text) : text };
  };

  // Endpoints register as sidecars connect: wait until both versions are routable.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await get('/v2/ping');
    if (r.status === 200) break;
    if (Date.now() > deadline) throw new Error(`v2 never routable: ${JSON.stringify(r)}\n${logs.join('\n')}`);
    await new Promise((res) => setTimeout(res, 100));
  }

  await t.test('path prefix wins over the default rule', async (t) => {
    for (let i = 0; i < 20; i++) {
      const r = await get('/v2/x?a=1');
      t.equal(r.json.pod, 'echo-v2');
      t.equal(r.json.path, '/v2/x?a=1');
    }
  });

  await t.test('the inbound sees the caller SPIFFE ID and strips a forged one', async (t) => {
    const r = await pool.request({ path: '/v2/who', method: 'GET', headers: { host: 'echo.demo.svc.cluster.local:80', 'x-weft-peer-identity': 'spiffe://evil/ns/x/sa/y' } });
    const j = JSON.parse(await r.body.text());
    t.equal(j.peer, 'spiffe://cluster.local/ns/demo/sa/client');
  });

  await t.test('90/10 weights give 80-97% to the first backend', async (t) => {
    const counts: Record<string, number> = {};
    await Promise.all(
      Array.from({ length: 300 }, async () => {
        const r = await get('/');
        counts[r.json.pod] = (counts[r.json.pod] ?? 0) + 1;
      }),
    );
    const v1 = counts['echo-v1'] ?? 0;
    t.ok(v1 >= 240 && v1 <= 291, `echo-v1 got ${v1}/300 (${JSON.stringify(counts)})`);
  });

  await t.test('a redirect rule answers without calling a backend', async (t) => {
    const r = await get('/redirect');
    t.equal(r.status, 301);
    t.equal(r.headers.location, 'https://example.com/redirect');
  });

  await t.test('POST bodies cross the hop', async (t) => {
    const body = Buffer.alloc(300_000, 7);
    const r = await pool.request({ path: '/v2/upload', method: 'POST', headers: { host: 'echo' }, body });
    const j = JSON.parse(await r.body.text());
    t.equal(j.bodyBytes, body.length);
  });

  await t.test('a client without a mesh certificate is refused at 7002', async (t) => {
    const err = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: V1_IP, port: 7002, servername: '8080.echo.demo.weft', rejectUnauthorized: false });
      s.on('secureConnect', () => {
        // TLS 1.3: the server's refusal arrives after the client's Finished.
        s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
      });
      s.on('data', () => resolve('got data'));
      s.on('error', (e) => resolve(`error: ${e.message}`));
      s.on('close', () => resolve('closed'));
    });
    t.not(err, 'got data', `refused (${err})`);

    // A certificate from another CA is refused too.
    const anchor = createTrustAnchor();
    const issuer = createIssuer(anchor);
    const leaf = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/demo/sa/client' });
    const err2 = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: V1_IP, port: 7002, servername: '8080.echo.demo.weft', rejectUnauthorized: false, key: leaf.keyPem, cert: leaf.certPem + issuer.certPem });
      s.on('secureConnect', () => s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('data', () => resolve('got data'));
      s.on('error', (e) => resolve(`error: ${e.message}`));
      s.on('close', () => resolve('closed'));
    });
    t.not(err2, 'got data', `foreign CA refused (${err2})`);
  });

  await t.test('metrics at both ends', async (t) => {
    const out = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    t.match(out, /weft_requests_total\{direction="outbound",src_namespace="demo",src_workload="client"[^}]*dst_service="echo"[^}]*route_name="echo-split"[^}]*backend="demo\/echo-v1"[^}]*status_code="200"/);
    t.match(out, /weft_tcp_connections_opened_total\{direction="outbound",peer="spiffe:\/\/cluster.local\/ns\/demo\/sa\/echo",tls="true"\} [1-9]/, 'hop connections counted by peer');
    const inb = await (await fetch(`http://${sidecars[0]!.adminAddress}/metrics`)).text();
    t.match(inb, /weft_requests_total\{direction="inbound"[^}]*src_service_account="client"[^}]*tls="true",peer_identity="spiffe:\/\/cluster.local\/ns\/demo\/sa\/client"\} \d+/);
    const cfgJson = (await (await fetch(`http://${client.adminAddress}/config`)).json()) as { services: Record<string, unknown>; certificate: { spiffeId: string } };
    t.ok(cfgJson.services['demo/echo'], '/config lists the subscribed service');
    t.equal(cfgJson.certificate.spiffeId, 'spiffe://cluster.local/ns/demo/sa/client');
  });

  await t.test('control going away keeps routing', async (t) => {
    await control.close();
    controlClosed = true;
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 20; i++) t.equal((await get('/v2/after')).status, 200);
    const ready = await fetch(`http://${client.adminAddress}/ready`);
    t.equal(ready.status, 200);
  });
});

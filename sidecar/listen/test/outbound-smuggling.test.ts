// The request-smuggling corpus (http1/test/helpers/smuggling-corpus.ts) sent
// as raw bytes to a real sidecar's outbound listener, on the engine's
// HTTP/1.1 adapter (adapters/outbound-engine.ts), in front of real apps that
// count every byte they receive: one behind a peer sidecar (the mesh hop:
// weft-mux/1, or mTLS HTTP/1.1 with WEFT_HOP=http1) and one without a
// sidecar (the engine pool). Each attack is answered 400 with the connection
// closed, and no app receives anything; the valid neighbours (chunk
// extensions, trailers, Expect: 100-continue, pipelining) work end to end on
// both. The listener's head limits keep their answers and metric: a slow
// head 408 (weft_limit_rejections_total{limit="request_head_timeout"}), too
// many or too large header fields 431.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackendConfig, ServiceConfig } from '../../../api/index.js';
import { startSidecar, type SidecarHandle } from '../../index.js';
import { DEFAULT_LIMITS } from '../limits.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';
import { rawExchange } from '../../http1/test/helpers/proxy.js';
import { ATTACKS } from '../../http1/test/helpers/smuggling-corpus.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const MESHED = ip(2);
const PLAIN = ip(3);
const CLIENT = ip(5);

interface App {
  server: http.Server;
  /** Bytes received on any connection. */
  bytes: number;
  connections: number;
  seen: string[];
}

async function app(name: string, host: string): Promise<App> {
  const a: App = { server: undefined as unknown as http.Server, bytes: 0, connections: 0, seen: [] };
  a.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (b) => (body += b));
    req.on('end', () => {
      a.seen.push(`${req.method} ${req.url} ${body} ${JSON.stringify(req.trailers)}`);
      res.end(`${name} ok ${req.url} ${body}`);
    });
  });
  a.server.on('connection', (s: net.Socket) => {
    a.connections++;
    s.on('data', (b) => (a.bytes += b.length));
  });
  await new Promise<void>((r) => a.server.listen(8080, host, r));
  return a;
}

const meshedEp = { ip: MESHED, port: 8080, identity: { namespace: 'demo', serviceAccount: 'web' }, ready: true, workload: 'web' };
const backend = (name: string, endpoints: BackendConfig['endpoints']): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints });

function serviceConfig(): ServiceConfig {
  return {
    service: 'demo/web', namespace: 'demo', name: 'web', consumerNamespace: 'demo', clusterIP: '10.96.0.20', sessionSecret: '',
    backends: { 'demo/web:80': backend('web', [meshedEp]), 'demo/plain:80': backend('plain', [{ ip: PLAIN, port: 8080, ready: true }]) },
    ports: [{
      port: 80, targetPort: 8080, appProtocol: 'http', routeKind: 'HTTPRoute', defaultBackend: 'demo/web:80',
      rules: [
        { route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: 0, ruleName: 'plain' }, filters: [], backends: [{ backend: 'demo/plain:80', weight: 1, filters: [] }] },
        { route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: 1, ruleName: 'meshed' }, filters: [], backends: [{ backend: 'demo/web:80', weight: 1, filters: [] }] },
      ],
      matches: [
        { rule: 0, path: { type: 'PathPrefix', value: '/plain' }, headers: [], queryParams: [] },
        { rule: 1, path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
      ],
    }],
  };
}

t.test('the outbound listener against the smuggling corpus', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-smuggle-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'web', cluster_ip: '10.96.0.20', ports: [{ name: 'http', port: 80, target_port: 8080, app_protocol: 'http' }], meshed: true }] });
  control.setService(serviceConfig(), 'v1');
  const apps = { meshed: await app('meshed', MESHED), plain: await app('plain', PLAIN) };
  t.teardown(() => Object.values(apps).forEach((a) => (a.server.closeAllConnections(), a.server.close())));
  const common = { control: control.address, stateDir: control.stateDir, namespace: 'demo', log: () => {} };
  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  sidecars.push(await startSidecar({ ...common, podIP: MESHED, workload: 'web', serviceAccount: 'web' }));
  const limits = { ...DEFAULT_LIMITS, requestHeadTimeoutMs: 800, maxHeaders: 30, maxHeaderBytes: 4096 };
  const client = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client', limits, h1: 'engine' });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));
  t.ok(client.outboundEngine, 'the outbound listener runs the engine adapter');
  const [host, portText] = client.outboundAddress.split(':') as [string, string];
  const port = Number(portText);

  // The first request waits for the Service's config (subscribe), then passes.
  const warm = await rawExchange(host, port, 'GET /warm HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
  t.match(warm.text, /^HTTP\/1\.1 200 [^]*meshed ok \/warm/, 'a first request is carried once the config is there');
  const warmPlain = await rawExchange(host, port, 'GET /plain/warm HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n');
  t.match(warmPlain.text, /^HTTP\/1\.1 200 [^]*plain ok \/plain\/warm/);

  await t.test('each attack: 400, connection closed, nothing reaches an app', async (t) => {
    const carried = client.outboundEngine!.carried;
    const handed = client.outboundEngine!.handedOff;
    for (const app of Object.values(apps)) app.bytes = 0;
    for (const [name, raw] of ATTACKS) {
      for (const path of ['/', '/plain/']) {
        const bytes = raw.replace('Host: a\r\n', 'Host: web\r\n').replace(/^(GET|POST) \/(?=[ \r\n\x00])/, `$1 ${path}`);
        const { text, closed } = await rawExchange(host, port, Buffer.from(bytes, 'latin1'));
        if (bytes.startsWith('\x16\x03')) {
          // A TLS record header: protocol detection sends it down the opaque path (no original destination here: closed), never to HTTP.
          t.equal(text, '', `${name} (${path}): not answered as HTTP`);
          t.ok(closed, `${name} (${path}): connection closed`);
          continue;
        }
        t.match(text, /^HTTP\/1\.1 400 /, `${name} (${path}): 400`);
        t.match(text, /connection: close/i, `${name} (${path}): says close`);
        t.ok(closed, `${name} (${path}): connection closed`);
      }
    }
    // Give anything wrongly forwarded time to arrive.
    await new Promise((r) => setTimeout(r, 200));
    t.equal(apps.meshed.bytes, 0, 'the app behind the peer sidecar received nothing');
    t.equal(apps.plain.bytes, 0, 'the app without a sidecar received nothing');
    t.equal(client.outboundEngine!.carried, carried, 'no attack became a request');
    t.equal(client.outboundEngine!.handedOff, handed, 'none was handed to node:http');
  });

  for (const [where, prefix] of [['behind the peer sidecar', ''], ['without a sidecar', '/plain']] as const) {
    await t.test(`valid neighbours work end to end (${where})`, async (t) => {
      const a = prefix ? apps.plain : apps.meshed;
      const name = prefix ? 'plain' : 'meshed';
      a.seen.length = 0;
      let r = await rawExchange(
        host,
        port,
        `POST ${prefix}/ext HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value;flag;q="a b"\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n`,
        (s) => s.includes(`ok ${prefix}/ext`),
      );
      t.match(r.text, /^HTTP\/1\.1 200 /);
      t.match(r.text, new RegExp(`${name} ok ${prefix}/ext abc`));
      // The peer's inbound relays trailers on weft-mux/1 (the default hop); its HTTP/1.1 path (WEFT_HOP=http1: node:http + undici to the app) drops them.
      if (prefix || process.env.WEFT_HOP !== 'http1') t.equal(a.seen[0], `POST ${prefix}/ext abc {"x-trailer":"t"}`, 'chunk extensions passed, trailers delivered');
      else t.match(a.seen[0], new RegExp(`^POST ${prefix}/ext abc `), 'chunk extensions passed');

      const s = net.connect(port, host);
      await new Promise((res) => s.once('connect', res));
      s.write(`POST ${prefix}/exp HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
      let got = '';
      await new Promise<void>((res) => {
        s.on('data', (b) => {
          got += b;
          if (got.includes('100 Continue') && !got.includes('ok ')) s.write('data');
          if (got.includes(`ok ${prefix}/exp data`)) res();
        });
      });
      s.destroy();
      t.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, '100 Continue before the body, then the answer');

      r = await rawExchange(
        host,
        port,
        `GET ${prefix}/1 HTTP/1.1\r\nHost: web\r\n\r\nPOST ${prefix}/2 HTTP/1.1\r\nHost: web\r\nContent-Length: 2\r\n\r\nhiPOST ${prefix}/3 HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\nGET ${prefix}/4 HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n`,
      );
      const order = [...r.text.matchAll(/ok (?:\/plain)?(\/\d) ?([a-z]*)/g)].map((m) => `${m[1]} ${m[2]}`.trim());
      t.same(order, ['/1', '/2 hi', '/3 yo', '/4'], 'four pipelined requests, answered in order');
      t.ok(r.closed, 'closed after the one that asked for it');
    });
  }

  await t.test('head limits: 408 at the head timeout (counted), 431 for too many or too large fields', async (t) => {
    const metric = async () => {
      const m = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
      const line = m.split('\n').find((l) => l.startsWith('weft_limit_rejections_total{') && l.includes('direction="outbound"') && l.includes('limit="request_head_timeout"'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await metric();
    const t0 = Date.now();
    const slow = await rawExchange(host, port, 'GET / HTTP/1.1\r\nHost: web\r\n');
    t.match(slow.text, /^HTTP\/1\.1 408 /, 'a head that does not end: 408');
    t.match(slow.text, /weft-proxy-error: request head not received within 800 ms/);
    t.ok(Date.now() - t0 >= 700, 'not before the timeout');
    t.ok(slow.closed);
    t.equal(await metric(), before + 1, 'counted in weft_limit_rejections_total{limit="request_head_timeout"}');

    const bytes = apps.meshed.bytes;
    const many = await rawExchange(host, port, `GET / HTTP/1.1\r\nHost: web\r\n${Array.from({ length: 31 }, (_, i) => `x-h${i}: v\r\n`).join('')}\r\n`);
    t.match(many.text, /^HTTP\/1\.1 431 /, 'more fields than --max-headers: 431');
    t.ok(many.closed);
    const big = await rawExchange(host, port, `GET / HTTP/1.1\r\nHost: web\r\nx-big: ${'a'.repeat(5000)}\r\n\r\n`);
    t.match(big.text, /^HTTP\/1\.1 431 /, 'a head over --max-header-bytes: 431');
    t.ok(big.closed);
    t.equal(apps.meshed.bytes, bytes, 'nothing forwarded');
  });
});

// One behaviour, two protocols: every route case (helpers/route-cases.ts)
// goes through a real client sidecar once over HTTP/1.1 and once over
// HTTP/2 (h2c prior knowledge), to real apps behind a real server sidecar,
// a plain endpoint, a mirror and an HTTPS backend with a BackendTLSPolicy.
// The two outcomes — status, weft-proxy-error, Location, which app served,
// the path, authority and headers it saw, the response headers, and whether
// the mirror got its copy — must be the same, and what the table says.
// Every mesh-made failure is also sent as gRPC: a trailers-only answer with
// the grpc-status its HTTP status maps to and the same weft-proxy-error.
// Then what was written two ways before: the 508 loop check, and a session
// started over one protocol that holds over the other.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { createTrustAnchor, issueCert } from '../../../certs/index.js';
import { startSidecar, type SidecarHandle } from '../../index.js';
import { grpcCodeOfMeshStatus } from '../../errors/proxy-errors.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';
import { APP_PORT, ROUTE_CASES, routeCasesService, TLS_HOST, TLS_PORT, type AppName, type Hosts, type RouteCase } from '../../test/helpers/route-cases.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const CLIENT = ip(7);
const HOSTS: Hosts = { meshed: ip(2), plain: ip(3), mirror: ip(4), tls: ip(5), nothing: ip(6) };

const ca = createTrustAnchor({ commonName: 'parity test backend CA' });
const leaf = issueCert(ca, { dnsNames: [TLS_HOST], commonName: TLS_HOST });

interface Seen {
  app: AppName;
  proto: string;
  method: string;
  url: string;
  host: string;
  headers: http.IncomingHttpHeaders;
}

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

function handler(app: AppName, seen: Seen[]): Handler {
  return (req, res) => {
    const h = req.headers as http.IncomingHttpHeaders;
    seen.push({ app, proto: req.httpVersion, method: req.method, url: req.url, host: String(h.host ?? h[':authority'] ?? ''), headers: h });
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-from-app': app, 'x-drop': '1' });
      res.end(app);
    });
  };
}

/** An app that speaks HTTP/1.1 and h2c (prior knowledge) on one port, as a sidecar's inbound may call it either way. */
function dualApp(app: AppName, host: string, seen: Seen[]): Promise<net.Server> {
  const h = handler(app, seen);
  const h1 = http.createServer(h as http.RequestListener);
  const h2 = http2.createServer(h as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    // Paused mode, as the sidecar's detection reads: the first bytes go back with unshift() before either server reads.
    const onReadable = () => {
      const first = sock.read() as Buffer | null;
      if (!first) return;
      sock.removeListener('readable', onReadable);
      if (first.subarray(0, 4).toString() === 'PRI ') {
        sock.unshift(first);
        h2.emit('connection', sock);
      } else {
        h1.emit('connection', sock);
        sock.emit('data', first);
        sock.resume();
      }
    };
    sock.on('readable', onReadable);
  });
  return new Promise((r) => server.listen(APP_PORT, host, () => r(server)));
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

function h1Call(pool: Pool, c: RouteCase, id: string, extra: Record<string, string> = {}): Promise<Answer> {
  return pool.request({ path: c.path, method: (c.method ?? 'GET') as 'GET', headers: { host: 'echo', 'x-case-id': id, ...c.headers, ...extra } }).then(async (r) => {
    await r.body.text();
    return { status: r.statusCode, headers: r.headers as Answer['headers'] };
  });
}

function h2Call(s: http2.ClientHttp2Session, c: RouteCase, id: string, extra: Record<string, string> = {}, authority = 'echo'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const st = s.request({ ':method': c.method ?? 'GET', ':path': c.path, ':authority': authority, 'x-case-id': id, ...c.headers, ...extra });
    st.end();
    let headers: http2.IncomingHttpHeaders = {};
    st.on('response', (h) => (headers = h));
    st.on('error', reject);
    st.resume();
    st.on('close', () => resolve({ status: Number(headers[':status']), headers: headers as Answer['headers'] }));
  });
}

async function waitUntil(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return fn();
}

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join('\n') : v);

t.test('HTTP/1.1 and HTTP/2 callers get the same outcome for every route case', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-parity-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'echo', cluster_ip: '10.96.0.10', ports: [{ name: 'http', port: 80, target_port: APP_PORT, app_protocol: 'http' }], meshed: true }] });
  control.setService(routeCasesService(HOSTS, ca.certPem), 'v1');

  const seen: Seen[] = [];
  const apps = await Promise.all([dualApp('meshed', HOSTS.meshed, seen), dualApp('plain', HOSTS.plain, seen), dualApp('mirror', HOSTS.mirror, seen)]);
  const tlsApp = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, handler('tls', seen));
  await new Promise<void>((r) => tlsApp.listen(TLS_PORT, HOSTS.tls, r));
  t.teardown(() => {
    for (const a of apps) a.close();
    tlsApp.close();
  });

  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  const common = { control: control.address, stateDir: control.stateDir, namespace: 'demo', log: () => {} };
  sidecars.push(await startSidecar({ ...common, podIP: HOSTS.meshed, workload: 'echo', serviceAccount: 'echo', appPorts: [APP_PORT] }));
  const client = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client', subscribe: ['echo'] });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const pool = new Pool(`http://${client.outboundAddress}`, { connections: 4 });
  const session = http2.connect(`http://${client.outboundAddress}`);
  session.on('error', () => {});
  t.teardown(() => {
    session.destroy();
    return pool.destroy();
  });

  /** What one protocol saw of one case, in terms both protocols share. */
  async function outcome(c: RouteCase, proto: 'h1' | 'h2', n: number) {
    const id = `${proto}-${n}`;
    const r = proto === 'h1' ? await h1Call(pool, c, id) : await h2Call(session, c, id);
    const w = c.want;
    const mine = () => seen.filter((s) => s.headers['x-case-id'] === id);
    if (w.app) await waitUntil(() => mine().some((s) => s.app === w.app), 3000);
    if (w.mirror) await waitUntil(() => mine().some((s) => s.app === w.mirror), 3000);
    const served = mine().find((s) => s.app !== 'mirror' && !(w.mirror && s.app === w.mirror && mine().length > 1 && s === mine()[mine().length - 1] && s.app !== w.app));
    const response: Record<string, string | boolean | undefined> = {};
    for (const [k, v] of Object.entries(w.response ?? {})) response[k] = v instanceof RegExp ? v.test(one(r.headers[k]) ?? '') : one(r.headers[k]);
    const seenHeaders: Record<string, string | undefined> = {};
    for (const k of Object.keys(w.seen ?? {})) seenHeaders[k] = one(served?.headers[k]);
    return {
      status: r.status,
      proxyError: one(r.headers['weft-proxy-error']),
      location: one(r.headers.location),
      app: served?.app,
      upstreamPath: served?.url,
      upstreamHost: served?.host,
      seen: seenHeaders,
      response,
      mirrored: mine().some((s) => s.app === w.mirror && s !== served),
    };
  }

  let n = 0;
  for (const c of ROUTE_CASES) {
    await t.test(c.name, async (t) => {
      const h1 = await outcome(c, 'h1', n++);
      const h2 = await outcome(c, 'h2', n++);
      // The proxy-error text is compared by the pattern (it may name an address); everything else exactly.
      const norm = (o: typeof h1) => ({ ...o, proxyError: o.proxyError === undefined ? undefined : c.want.proxyError ? c.want.proxyError.test(o.proxyError) : o.proxyError });
      t.same(norm(h2), norm(h1), 'HTTP/2 ends as HTTP/1.1 does');
      const w = c.want;
      t.equal(h1.status, w.status, 'status');
      if (w.proxyError) t.match(h1.proxyError, w.proxyError, 'weft-proxy-error');
      else t.equal(h1.proxyError, undefined, 'no weft-proxy-error');
      t.equal(h1.location, w.location, 'Location');
      if (w.app) {
        t.equal(h1.app, w.app, `served by ${w.app}`);
        t.equal(h1.upstreamPath, w.upstreamPath ?? c.path, 'path the app saw');
        t.equal(h1.upstreamHost, w.upstreamHost ?? 'echo', 'authority the app saw');
      }
      if (w.seen) t.same(h1.seen, w.seen, 'request headers the app saw');
      for (const [k, v] of Object.entries(w.response ?? {})) t.equal(h1.response[k], v instanceof RegExp ? true : v, `response header ${k}`);
      t.equal(h1.mirrored, !!w.mirror, w.mirror ? `the ${w.mirror} mirror got its copy` : 'no mirror');
      if (w.status >= 400) {
        // A gRPC caller gets the same failure as a trailers-only answer, with the same reason.
        const g = await h2Call(session, c, `grpc-${n++}`, { 'content-type': 'application/grpc', te: 'trailers' });
        t.equal(g.status, 200, 'gRPC: HTTP 200, trailers-only');
        t.equal(one(g.headers['grpc-status']), String(grpcCodeOfMeshStatus(w.status)), `gRPC: grpc-status for ${w.status}`);
        t.match(one(g.headers['weft-proxy-error']), w.proxyError ?? /./, 'gRPC: the same weft-proxy-error');
        t.ok(one(g.headers['grpc-message']), 'gRPC: grpc-message says why');
      }
    });
  }

  await t.test('a request addressed to the sidecar itself is refused with 508 by both', async (t) => {
    const c: RouteCase = { name: 'loop', path: '/x', want: { status: 508 } };
    const h1 = await pool.request({ path: '/x', method: 'GET', headers: { host: client.outboundAddress } });
    await h1.body.text();
    const h2 = await h2Call(session, c, 'loop', {}, client.outboundAddress);
    t.equal(h1.statusCode, 508);
    t.equal(h2.status, 508);
    t.equal(one(h2.headers['weft-proxy-error']), one(h1.headers['weft-proxy-error'] as string));
    t.match(one(h1.headers['weft-proxy-error'] as string), /proxy loop/);
  });

  await t.test('a session started over HTTP/1.1 holds over HTTP/2 and back', async (t) => {
    const c = ROUTE_CASES.find((x) => x.path === '/sess')!;
    const first = await h1Call(pool, c, 'sess-0');
    const cookie = one(first.headers['set-cookie'])!.split(';')[0]!;
    await waitUntil(() => seen.some((s) => s.headers['x-case-id'] === 'sess-0'), 3000);
    const pinned = seen.find((s) => s.headers['x-case-id'] === 'sess-0')!.app;
    for (let i = 1; i <= 10; i++) {
      const r = i % 2 ? await h2Call(session, c, `sess-${i}`, { cookie }) : await h1Call(pool, c, `sess-${i}`, { cookie });
      t.equal(r.status, 200);
      t.equal(r.headers['set-cookie'], undefined, 'a current session is not re-issued');
    }
    await waitUntil(() => seen.filter((s) => String(s.headers['x-case-id']).startsWith('sess-')).length >= 11, 3000);
    const apps = new Set(seen.filter((s) => String(s.headers['x-case-id']).startsWith('sess-')).map((s) => s.app));
    t.same([...apps], [pinned], 'every request of the session reached the same endpoint, whatever its protocol');
  });
});

// One proxy process of the engine bench (bench/h1-engine.ts), built from
// sidecar/http1: `edge` takes plain HTTP/1.1 and sends it over mTLS to the
// `peer`, which verifies the client certificate, adds the caller's identity
// as a header and forwards to the app. The hop between them is one of:
//   h1  — HTTP/1.1 over a pool of mTLS connections (ALPN http/1.1), writes corked per turn
//   mux — weft-mux/1: every request's head and body chunks as frames on ONE mTLS connection
//   h2  — node:http2 on one mTLS session (ALPN h2)
//
// node dist/bench/h1-proxy.js '<json Config>'
import net from 'node:net';
import tls from 'node:tls';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { ServerConn, Pool, proxyHandler, forwardHead, ChunkedDecoder, HeadReader, isHeadError, simpleResponse, type Head, type ServerHandler } from '../sidecar/http1/index.js';
import { MuxClient, MuxServer } from '../sidecar/http1/mux.js';

export interface Config {
  role: 'edge' | 'peer';
  hop: 'h1' | 'mux' | 'h2';
  listen: { host: string; port: number };
  /** edge: the peer; peer: the app. */
  upstream: { host: string; port: number };
  certs: { ca: string; cert: string; key: string };
  /** The name the edge expects in the peer's certificate. */
  serverName: string;
}

const cfg = JSON.parse(process.argv[2]!) as Config;
const ca = readFileSync(cfg.certs.ca);
const cert = readFileSync(cfg.certs.cert);
const key = readFileSync(cfg.certs.key);

function ready(): void {
  process.stdout.write('ready\n');
}

/** The peer's identity header, built once per TLS connection (not per request). */
function identityLine(s: tls.TLSSocket): string {
  const c = s.getPeerCertificate();
  const uri = c?.subjectaltname?.split(', ').find((x) => x.startsWith('URI:'))?.slice(4) ?? 'unknown';
  return `x-peer-identity: ${uri}`;
}

if (cfg.role === 'edge') {
  const tlsOpts: tls.ConnectionOptions = { ca, cert, key, servername: cfg.serverName, minVersion: 'TLSv1.3' };
  let handler: ServerHandler;
  if (cfg.hop === 'h1') {
    const pool = new Pool({ host: cfg.upstream.host, port: cfg.upstream.port, tls: { ...tlsOpts, ALPNProtocols: ['http/1.1'] }, maxIdle: 128 });
    handler = proxyHandler(() => ({ kind: 'forward', pool }));
  } else if (cfg.hop === 'mux') {
    const mux = new MuxClient({ host: cfg.upstream.host, port: cfg.upstream.port, tls: tlsOpts });
    handler = mux.handler();
  } else handler = h2EdgeHandler(tlsOpts);
  const server = net.createServer((s) => new ServerConn(s, handler));
  server.listen(cfg.listen.port, cfg.listen.host, ready);
} else {
  const appPool = new Pool({ host: cfg.upstream.host, port: cfg.upstream.port, maxIdle: 128 });
  const tlsServerOpts: tls.TlsOptions = { ca, cert, key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' };
  if (cfg.hop === 'h2') {
    const server = http2.createSecureServer({ ...tlsServerOpts, ALPNProtocols: ['h2'], settings: { initialWindowSize: 1 << 20 } });
    server.on('secureConnection', (s: tls.TLSSocket) => s.setNoDelay(true));
    server.on('sessionError', () => {});
    server.on('stream', (stream, headers) => h2PeerStream(stream, headers, appPool));
    server.listen(cfg.listen.port, cfg.listen.host, ready);
  } else {
    const alpn = cfg.hop === 'mux' ? ['weft-mux/1', 'h2', 'http/1.1'] : ['http/1.1'];
    const idHandlers = new WeakMap<tls.TLSSocket, ServerHandler>();
    const server = tls.createServer({ ...tlsServerOpts, ALPNProtocols: alpn }, (s) => {
      const id = identityLine(s);
      if (s.alpnProtocol === 'weft-mux/1') {
        new MuxServer(s, appPool, [id]);
        return;
      }
      let h = idHandlers.get(s);
      if (!h) {
        h = proxyHandler((head) => ({ kind: 'forward', pool: appPool, edits: { add: [id], keepUpgrade: head.upgrade } }));
        idHandlers.set(s, h);
      }
      new ServerConn(s, h);
    });
    server.listen(cfg.listen.port, cfg.listen.host, ready);
  }
}

// --- variant (c): node:http2 between the proxies ------------------------------

const H2_SKIP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'http2-settings']);

function h2EdgeHandler(tlsOpts: tls.ConnectionOptions): ServerHandler {
  let session: http2.ClientHttp2Session | null = null;
  const getSession = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    const s = http2.connect(`https://${cfg.upstream.host}:${cfg.upstream.port}`, { ...tlsOpts, ALPNProtocols: ['h2'], settings: { initialWindowSize: 1 << 20 } });
    s.on('error', () => {});
    s.on('connect', (_s: unknown, sock: net.Socket) => sock.setNoDelay(true));
    s.on('close', () => {
      if (session === s) session = null;
    });
    session = s;
    return s;
  };
  return {
    onRequest(conn, head) {
      const h: http2.OutgoingHttpHeaders = { ':method': head.method, ':path': head.target, ':authority': head.host ?? '', ':scheme': 'https' };
      for (let i = 0; i < head.count; i++) {
        const n = head.name(i).toLowerCase();
        if (!H2_SKIP.has(n)) h[n] = head.value(i);
      }
      const stream = getSession().request(h, { endStream: head.framing === 'none' });
      conn.data = { stream, dec: head.framing === 'chunked' ? new ChunkedDecoder() : null };
      let started = false;
      stream.on('response', (rh) => {
        started = true;
        const status = Number(rh[':status']);
        let out = `HTTP/1.1 ${status} \r\n`;
        for (const [k, v] of Object.entries(rh)) if (k[0] !== ':') out += `${k}: ${Array.isArray(v) ? v.join(', ') : v}\r\n`;
        const chunked = rh['content-length'] === undefined && status !== 204 && status !== 304 && head.method !== 'HEAD';
        if (chunked) out += 'transfer-encoding: chunked\r\n';
        conn.write(out + '\r\n');
        stream.on('data', (b: Buffer) => {
          if (chunked) conn.write(`${b.length.toString(16)}\r\n`);
          conn.write(b);
          if (chunked) conn.write('\r\n');
        });
        stream.on('end', () => {
          if (chunked) conn.write('0\r\n\r\n');
          conn.endResponse();
        });
      });
      stream.on('error', () => {
        if (started) conn.destroy();
        else conn.respond(502, 'upstream h2 stream failed\n', ['weft-proxy-error: upstream failure: h2 stream failed'], true);
      });
    },
    onRequestBody(conn, chunk) {
      const d = conn.data as { stream: http2.ClientHttp2Stream; dec: ChunkedDecoder | null };
      if (d.dec) d.dec.feed(chunk, 0, chunk.length, (b, s, e) => d.stream.write(b.subarray(s, e)));
      else d.stream.write(chunk);
    },
    onRequestEnd(conn) {
      const d = conn.data as { stream: http2.ClientHttp2Stream } | null;
      if (d && !d.stream.writableEnded) d.stream.end();
    },
    onRequestAbort(conn) {
      const d = conn.data as { stream: http2.ClientHttp2Stream } | null;
      d?.stream.close(http2.constants.NGHTTP2_CANCEL);
    },
  };
}

function h2PeerStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, appPool: Pool): void {
  const id = identityLine(stream.session!.socket as tls.TLSSocket);
  let head = `${headers[':method']} ${headers[':path']} HTTP/1.1\r\nhost: ${headers[':authority']}\r\n`;
  for (const [k, v] of Object.entries(headers)) if (k[0] !== ':') head += `${k}: ${Array.isArray(v) ? v.join(', ') : v}\r\n`;
  const bodyless = stream.readableEnded || headers['content-length'] === '0' || headers[':method'] === 'GET' || headers[':method'] === 'HEAD';
  if (!bodyless && headers['content-length'] === undefined) head += 'transfer-encoding: chunked\r\n';
  head += id + '\r\n\r\n';
  const client = appPool.get();
  const method = String(headers[':method']);
  let dec: ChunkedDecoder | null = null;
  let finished = false;
  // A caller that goes away (wrk closing its connections) cancels the stream: abandon the app request.
  stream.on('error', () => {});
  stream.on('close', () => {
    if (!finished) client.destroy();
  });
  const live = (): boolean => !stream.destroyed && !stream.closed;
  client.request(Buffer.from(head, 'latin1'), method, {
    onResponseHead(_c, rh: Head) {
      if (rh.status < 200 || !live()) return;
      const out: http2.OutgoingHttpHeaders = { ':status': rh.status };
      for (let i = 0; i < rh.count; i++) {
        const n = rh.name(i).toLowerCase();
        if (!H2_SKIP.has(n)) out[n] = rh.value(i);
      }
      if (rh.framing === 'chunked') dec = new ChunkedDecoder();
      stream.respond(out, { endStream: rh.framing === 'none' });
    },
    onResponseBody(_c, chunk) {
      if (!live()) return;
      if (dec) dec.feed(chunk, 0, chunk.length, (b, s, e) => stream.write(b.subarray(s, e)));
      else stream.write(chunk);
    },
    onResponseEnd() {
      finished = true;
      if (live() && !stream.writableEnded) stream.end();
    },
    onResponseError(_c, reason) {
      finished = true;
      if (!live()) return;
      if (!stream.headersSent) stream.respond({ ':status': 502, 'weft-proxy-error': `upstream failure: ${reason}`.replace(/[^\x20-\x7e]/g, ' ') }, { endStream: true });
      else stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    },
  }, !bodyless);
  if (!bodyless) {
    const chunked = headers['content-length'] === undefined;
    stream.on('data', (b: Buffer) => {
      if (chunked) client.write(Buffer.from(`${b.length.toString(16)}\r\n`));
      client.write(b);
      if (chunked) client.write(Buffer.from('\r\n'));
    });
    stream.on('end', () => {
      if (chunked) client.write(Buffer.from('0\r\n\r\n'));
      client.endRequest();
    });
  }
}

void HeadReader;
void isHeadError;
void simpleResponse;
void forwardHead;

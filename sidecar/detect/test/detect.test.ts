import t, { type Test } from 'tap';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { classify, declaredProtocol, detect, type DetectedProtocol, type DetectReason } from '../detect.js';

// A unique loopback address per file (tap runs files in parallel).
const HOST = `127.${30 + (process.pid % 200)}.${(process.pid >> 8) % 250}.${1 + (process.pid % 250)}`;

t.test('classify: first bytes of real protocols', async (t) => {
  const cases: Array<[string, Buffer, DetectedProtocol | undefined]> = [
    ['HTTP/1.1 GET', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'http1'],
    ['HTTP/1.0 HEAD', Buffer.from('HEAD /x HTTP/1.0\r\n\r\n'), 'http1'],
    ['POST before the line ends', Buffer.from('POST /upload?a=1'), 'http1'],
    ['absolute-form (proxy)', Buffer.from('GET http://echo.ns/ HTTP/1.1\r\n'), 'http1'],
    ['CONNECT authority', Buffer.from('CONNECT echo:443 HTTP/1.1\r\n'), 'http1'],
    ['OPTIONS *', Buffer.from('OPTIONS * HTTP/1.1\r\n'), 'http1'],
    ['unknown method with HTTP/1.1 line', Buffer.from('PURGE /cache HTTP/1.1\r\n'), 'http1'],
    ['method only: need more', Buffer.from('GET'), undefined],
    ['method and space: need more', Buffer.from('GET '), undefined],
    ['unknown token: need the line', Buffer.from('FOO /x'), undefined],
    ['h2c preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04'), 'h2c'],
    ['h2c preface split', Buffer.from('PRI * HTTP/2.0\r\n'), undefined],
    ['P alone', Buffer.from('P'), undefined],
    ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), 'tls'],
    ['TLS 1 byte', Buffer.from([0x16]), undefined],
    ['0x16 not TLS', Buffer.from([0x16, 0x41, 0x41]), 'opaque'],
    ['Redis RESP array', Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n'), 'opaque'],
    ['Redis inline GET (not HTTP: no version)', Buffer.from('GET foo\r\n'), 'opaque'],
    ['Redis inline PING', Buffer.from('PING\r\n'), 'opaque'],
    ['lower-case get is not a method line', Buffer.from('get / HTTP/1.1\r\n'), 'http1'],
    ['binary', Buffer.from([0x00, 0x01, 0x02, 0xff]), 'opaque'],
    ['Postgres startup', Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]), 'opaque'],
    ['HTTP/2.0 on an HTTP/1 line', Buffer.from('GET / HTTP/2.0\r\n'), 'http1'],
  ];
  for (const [name, bytes, want] of cases) t.equal(classify(bytes), want, name);
});

t.test('appProtocol decides without reading', async (t) => {
  t.equal(declaredProtocol('http'), 'http1');
  t.equal(declaredProtocol('http2'), 'h2c');
  t.equal(declaredProtocol('grpc'), 'h2c');
  t.equal(declaredProtocol('tcp'), 'opaque');
  t.equal(declaredProtocol(''), undefined);
  t.equal(declaredProtocol(undefined), undefined);
});

interface Seen {
  protocol: DetectedProtocol;
  reason: DetectReason;
  elapsed: number;
  bytes: Buffer;
  ended: boolean;
}

/** A server that detects on each accepted socket, then reads everything the client sent. */
async function detectServer(t: Test, opts: { timeoutMs: number; appProtocol?: 'tcp' | 'http' | '' ; greeting?: string }) {
  const results: Array<Promise<Seen>> = [];
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    results.push(
      (async () => {
        let reason: DetectReason = 'sniffed';
        let elapsed = 0;
        const protocol = await detect(sock, {
          timeoutMs: opts.timeoutMs,
          appProtocol: opts.appProtocol,
          onResult: (_p, r, e) => {
            reason = r;
            elapsed = e;
          },
        });
        if (opts.greeting) sock.write(opts.greeting);
        const parts: Buffer[] = [];
        sock.on('data', (c: Buffer) => parts.push(c));
        await once(sock, 'end');
        sock.end();
        return { protocol, reason, elapsed, bytes: Buffer.concat(parts), ended: true };
      })(),
    );
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  return { port, results };
}


t.test('bytes read for detection reach the next consumer, also after a half-close', async (t) => {
  const { port, results } = await detectServer(t, { timeoutMs: 2000 });
  const msg = 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n';
  const c = net.connect(port, HOST);
  c.end(msg);
  c.resume();
  const seen = await waitFor(results, 0);
  t.equal(seen.protocol, 'http1');
  t.equal(seen.reason, 'sniffed');
  t.equal(seen.bytes.toString(), msg);
});

t.test('a preface split over several writes is still h2c, and nothing is lost', async (t) => {
  const { port, results } = await detectServer(t, { timeoutMs: 2000 });
  const c = net.connect({ port, host: HOST, noDelay: true });
  await once(c, 'connect');
  const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
  c.write(preface.slice(0, 5));
  await new Promise((r) => setTimeout(r, 30));
  c.write(preface.slice(5, 17));
  await new Promise((r) => setTimeout(r, 30));
  c.end(preface.slice(17) + 'frames');
  c.resume();
  const seen = await waitFor(results, 0);
  t.equal(seen.protocol, 'h2c');
  t.equal(seen.bytes.toString(), preface + 'frames');
});

t.test('a few undecidable bytes then FIN: opaque at once, bytes and end kept', async (t) => {
  const { port, results } = await detectServer(t, { timeoutMs: 5000 });
  const c = net.connect(port, HOST);
  c.end('GE');
  c.resume();
  const seen = await waitFor(results, 0);
  t.equal(seen.protocol, 'opaque');
  t.equal(seen.reason, 'eof');
  t.ok(seen.elapsed < 1000, `decided on FIN, not the timeout (${seen.elapsed.toFixed(1)} ms)`);
  t.equal(seen.bytes.toString(), 'GE');
});

t.test('server-first protocol: opaque after the timeout, greeting arrives, client then talks', async (t) => {
  const timeoutMs = 120;
  const { port, results } = await detectServer(t, { timeoutMs, greeting: '220 smtp ready\r\n' });
  const c = net.connect(port, HOST);
  const t0 = performance.now();
  await once(c, 'connect');
  const [greet] = (await once(c, 'data')) as [Buffer];
  const firstByteMs = performance.now() - t0;
  t.equal(greet.toString(), '220 smtp ready\r\n');
  t.ok(firstByteMs >= timeoutMs - 5 && firstByteMs < timeoutMs + 200, `first byte after ${firstByteMs.toFixed(1)} ms`);
  c.end('EHLO me\r\n');
  c.resume();
  const seen = await waitFor(results, 0);
  t.equal(seen.protocol, 'opaque');
  t.equal(seen.reason, 'timeout');
  t.equal(seen.bytes.toString(), 'EHLO me\r\n');
});

t.test('declared appProtocol tcp: no wait for a server-first protocol', async (t) => {
  const { port, results } = await detectServer(t, { timeoutMs: 5000, appProtocol: 'tcp', greeting: '+OK\r\n' });
  const c = net.connect(port, HOST);
  const t0 = performance.now();
  const [greet] = (await once(c, 'data')) as [Buffer];
  const ms = performance.now() - t0;
  t.equal(greet.toString(), '+OK\r\n');
  t.ok(ms < 100, `greeting after ${ms.toFixed(1)} ms`);
  c.end();
  c.resume();
  const seen = await waitFor(results, 0);
  t.equal(seen.reason, 'declared');
});

t.test('detected HTTP/1 connection served by node:http after detection', async (t) => {
  const httpServer = http.createServer((req, res) => res.end(`path=${req.url}`));
  const server = net.createServer(async (sock) => {
    const p = await detect(sock, { timeoutMs: 1000 });
    if (p === 'http1') httpServer.emit('connection', sock);
    else sock.destroy();
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  t.teardown(() => {
    server.close();
    httpServer.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const agent = new http.Agent({ keepAlive: false });
  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: HOST, port, path: '/a/b', agent }, (res) => {
        let s = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (s += d));
        res.on('end', () => resolve(s));
      })
      .on('error', reject);
  });
  t.equal(body, 'path=/a/b');
});

async function waitFor(results: Array<Promise<Seen>>, i: number): Promise<Seen> {
  for (let n = 0; n < 200 && results.length <= i; n++) await new Promise((r) => setTimeout(r, 10));
  return results[i]!;
}

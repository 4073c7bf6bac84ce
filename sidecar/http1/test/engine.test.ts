import t from 'tap';
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { listen, loopback, rawExchange, startProxy } from './helpers/proxy.js';

const HOST = loopback(1);

async function upstreamApp(): Promise<{ server: http.Server; port: number; seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer; trailers: Record<string, string> }[] }> {
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer; trailers: Record<string, string> }[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    const hash = createHash('sha256');
    let n = 0;
    const big = req.url === '/upload';
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (big) hash.update(b);
      else parts.push(b);
    });
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(parts), trailers: req.trailers as Record<string, string> });
      if (big) {
        res.end(`${n} ${hash.digest('hex')}`);
        return;
      }
      if (req.url === '/chunked') {
        res.setHeader('trailer', 'x-sum');
        res.write('part1;');
        setImmediate(() => {
          res.write('part2');
          res.addTrailers({ 'x-sum': '11' });
          res.end();
        });
        return;
      }
      if (req.url?.startsWith('/download')) {
        const total = 64 * 1024 * 1024;
        const block = Buffer.alloc(1024 * 1024, 7);
        res.setHeader('content-length', total);
        let sent = 0;
        const pump = (): void => {
          while (sent < total) {
            sent += block.length;
            if (!res.write(block)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      res.setHeader('x-echo-url', req.url!);
      res.end(`${req.method} ${req.url} ${Buffer.concat(parts).toString()}`);
    });
  });
  const port = await listen(server, HOST);
  return { server, port, seen };
}

t.test('keep-alive: sequential requests share one client and one upstream connection', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port);
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < 5; i++) {
    const res = await new Promise<http.IncomingMessage>((r) => http.get({ host: HOST, port: proxy.port, path: `/k${i}`, agent }, r));
    let body = '';
    for await (const b of res) body += b;
    t.equal(res.statusCode, 200);
    t.equal(body, `GET /k${i} `);
    t.equal(res.headers['x-echo-url'], `/k${i}`);
  }
  t.equal(proxy.pool.opened, 1, 'one upstream connection for five requests');
  t.equal(proxy.conns.size, 1, 'one client connection');
  agent.destroy();
});

t.test('pipelining: three requests in one write get three responses in order', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port);
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  const reqs = 'GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /p3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
  const { text, closed } = await rawExchange(HOST, proxy.port, reqs);
  const bodies = [...text.matchAll(/\r\n\r\n([A-Z]+ \/p\d[^H]*)/g)].map((m) => m[1]);
  t.same(bodies, ['GET /p1 ', 'POST /p2 abc', 'GET /p3 '], 'in order');
  t.ok(closed, 'closed after Connection: close');
  t.equal(app.seen.length, 3);
});

t.test('chunked request: extensions and trailers reach the upstream; chunked response is relayed without re-chunking', async (t) => {
  // A raw upstream that records the exact bytes and answers with its own chunk layout.
  let got = '';
  const raw = net.createServer((s) => {
    s.on('data', (b) => {
      got += b.toString('latin1');
      if (got.endsWith('\r\n\r\n') && got.includes('0;end\r\n')) {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n');
        setTimeout(() => s.write('2\r\nde\r\n0\r\nX-T: 1\r\n\r\n'), 5);
      }
    });
  });
  const port = await listen(raw, HOST);
  const proxy = await startProxy(HOST, port);
  t.teardown(async () => {
    await proxy.close();
    raw.close();
  });
  const body = '5;a=b\r\nhello\r\n1;q="x y"\r\n!\r\n0;end\r\nX-Check: yes\r\n\r\n';
  const { text } = await rawExchange(HOST, proxy.port, `POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, (s) => s.endsWith('X-T: 1\r\n\r\n'));
  t.ok(got.endsWith(`\r\n\r\n${body}`), 'the upstream saw the chunked body byte for byte');
  t.match(got, /^POST \/c HTTP\/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n/);
  t.ok(text.endsWith('\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n'), 'the client saw the response chunks as sent');
});

t.test('chunked both ways through node:http: body and trailers', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port);
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  const res = await new Promise<http.IncomingMessage>((resolve) => {
    const req = http.request({ host: HOST, port: proxy.port, method: 'POST', path: '/chunked', headers: { trailer: 'x-req' } }, resolve);
    req.write('one,');
    req.write('two');
    req.addTrailers({ 'x-req': 'r' });
    req.end();
  });
  let body = '';
  for await (const b of res) body += b;
  t.equal(res.headers['transfer-encoding'], 'chunked');
  t.equal(body, 'part1;part2');
  t.same(res.trailers, { 'x-sum': '11' });
  t.equal(app.seen[0]!.body.toString(), 'one,two');
  t.same(app.seen[0]!.trailers, { 'x-req': 'r' });
});

t.test('64 MiB up and 64 MiB down stream through with backpressure', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port);
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  const total = 64 * 1024 * 1024;
  const block = Buffer.alloc(1024 * 1024, 3);
  const hash = createHash('sha256');
  for (let i = 0; i < 64; i++) hash.update(block);
  const want = `${total} ${hash.digest('hex')}`;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: HOST, port: proxy.port, method: 'PUT', path: '/upload', headers: { 'content-length': total } }, resolve);
    req.on('error', reject);
    let i = 0;
    const pump = (): void => {
      while (i < 64) {
        i++;
        if (!req.write(block)) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
  let body = '';
  for await (const b of res) body += b;
  t.equal(body, want, 'the upstream received all 64 MiB intact');
  const rss0 = process.memoryUsage().rss;
  const down = await new Promise<http.IncomingMessage>((r) => http.get({ host: HOST, port: proxy.port, path: '/download' }, r));
  let n = 0;
  let peak = 0;
  for await (const b of down) {
    n += (b as Buffer).length;
    peak = Math.max(peak, process.memoryUsage().rss - rss0);
    await new Promise((r) => setImmediate(r)); // a slow reader: the proxy must stop reading upstream
  }
  t.equal(n, total, 'the client received all 64 MiB');
  t.ok(peak < 48 * 1024 * 1024, `memory stayed bounded while a slow client read (peak +${Math.round(peak / 1048576)} MB)`);
});

t.test('Expect: 100-continue is relayed, then the body', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port);
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  let continued = false;
  const res = await new Promise<http.IncomingMessage>((resolve) => {
    const req = http.request({ host: HOST, port: proxy.port, method: 'POST', path: '/e', headers: { expect: '100-continue', 'content-length': 4 } }, resolve);
    req.on('continue', () => {
      continued = true;
      req.end('data');
    });
  });
  let body = '';
  for await (const b of res) body += b;
  t.ok(continued, 'the client saw 100 Continue');
  t.equal(body, 'POST /e data');
});

t.test('a close-delimited response reaches the client whole, and the client connection closes', async (t) => {
  const raw = net.createServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil');
      setTimeout(() => s.end(' close'), 5);
    });
  });
  const port = await listen(raw, HOST);
  const proxy = await startProxy(HOST, port);
  t.teardown(async () => {
    await proxy.close();
    raw.close();
  });
  const { text, closed } = await rawExchange(HOST, proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.ok(text.endsWith('\r\n\r\nuntil close'), 'the body up to the upstream close');
  t.ok(closed, 'the client connection closed (the body had no other end)');
});

t.test('an upstream reset mid-body breaks the client connection instead of completing the response', async (t) => {
  const raw = net.createServer((s) => {
    s.once('data', () => {
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      setTimeout(() => s.resetAndDestroy(), 5);
    });
  });
  const port = await listen(raw, HOST);
  const proxy = await startProxy(HOST, port);
  t.teardown(async () => {
    await proxy.close();
    raw.close();
  });
  const res = await new Promise<http.IncomingMessage>((r) => http.get({ host: HOST, port: proxy.port, path: '/' }, r));
  let body = '';
  const err = await new Promise<string>((resolve) => {
    res.on('data', (b) => (body += b));
    res.on('error', (e) => resolve(e.message));
    res.on('aborted', () => resolve('aborted'));
    res.on('end', () => resolve('end'));
  });
  t.equal(res.statusCode, 200);
  t.equal(body, '0123456789');
  t.not(err, 'end', `the client saw the response break off (${err})`);
});

t.test('an upstream that refuses connections gives 502 with weft-proxy-error', async (t) => {
  const dead = net.createServer();
  const port = await listen(dead, HOST);
  dead.close();
  await once(dead, 'close');
  const proxy = await startProxy(HOST, port);
  t.teardown(() => proxy.close());
  const { text } = await rawExchange(HOST, proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(text, /^HTTP\/1.1 502 /);
  t.match(text, /weft-proxy-error: upstream failure: /);
});

t.test('bad heads: 400 / 431 and close; a slow head: 408 from the timer wheel', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port, { limits: { maxHeadBytes: 256, maxHeaders: 4 }, headersTimeoutMs: 200 });
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  let r = await rawExchange(HOST, proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n');
  t.match(r.text, /^HTTP\/1.1 400 /);
  t.ok(r.closed);
  r = await rawExchange(HOST, proxy.port, `GET / HTTP/1.1\r\nHost: a\r\nX: ${'y'.repeat(300)}\r\n\r\n`);
  t.match(r.text, /^HTTP\/1.1 431 /);
  t.ok(r.closed);
  r = await rawExchange(HOST, proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n');
  t.match(r.text, /^HTTP\/1.1 431 /);
  const t0 = Date.now();
  r = await rawExchange(HOST, proxy.port, 'GET / HTTP/1.1\r\nHost: a\r\n');
  t.match(r.text, /^HTTP\/1.1 408 /);
  // The wheel ticks coarsely; the bound only says the timeout closed it, not the client (a loaded machine stretches ticks).
  t.ok(r.closed && Date.now() - t0 < 5000, 'closed by the header timeout');
  t.equal(app.seen.length, 0, 'nothing was forwarded');
});

t.test('draining: each answer says Connection: close and the connection closes after it', async (t) => {
  const app = await upstreamApp();
  let draining = false;
  const proxy = await startProxy(HOST, app.port, { draining: () => draining });
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  let r = await rawExchange(HOST, proxy.port, 'GET /d1 HTTP/1.1\r\nHost: a\r\n\r\n', (s) => s.includes('GET /d1'));
  t.notMatch(r.text, /connection: close/i, 'not draining: keep-alive');
  draining = true;
  r = await rawExchange(HOST, proxy.port, 'GET /d2 HTTP/1.1\r\nHost: a\r\n\r\nGET /d3 HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(r.text, /connection: close/i, 'draining: the answer says close');
  t.ok(r.closed, 'and the connection closed');
  t.notMatch(r.text, /GET \/d3/, 'the pipelined next request was not served');
});

t.test('an answer before the request body (mesh-made 404 to Expect: 100-continue) closes the connection', async (t) => {
  const app = await upstreamApp();
  const proxy = await startProxy(HOST, app.port, { router: () => ({ kind: 'respond', status: 404, body: 'no route\n', fields: ['weft-proxy-error: no route'] }) });
  t.teardown(async () => {
    await proxy.close();
    app.server.close();
  });
  const r = await rawExchange(HOST, proxy.port, 'POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
  t.match(r.text, /^HTTP\/1\.1 404 /, 'answered without 100 Continue');
  t.notMatch(r.text, /100 Continue/);
  t.ok(r.closed, 'closed: the unsent body cannot be told from a next request');
  t.equal(app.seen.length, 0);
});

t.test('ServerConn: a keep-alive connection waiting for its next request holds nothing of the last one (data cleared)', async (t) => {
  const { ServerConn } = await import('../server-conn.js');
  const host = loopback(9);
  const seen: Array<unknown> = [];
  let conn: InstanceType<typeof ServerConn> | undefined;
  const srv = net.createServer((s) => {
    conn = new ServerConn(s, {
      onRequest: (c) => {
        c.data = { request: seen.length };
        seen.push(c.data);
        c.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        c.endResponse();
      },
      onRequestBody: () => {},
      onRequestEnd: () => {},
      onRequestAbort: () => {},
    });
  });
  const port = await listen(srv, host);
  t.teardown(() => srv.close());
  const s = net.connect(port, host);
  await once(s, 'connect');
  t.teardown(() => s.destroy());
  let got = '';
  s.on('data', (b: Buffer) => (got += b.toString('latin1')));
  s.write('GET /a HTTP/1.1\r\nhost: x\r\n\r\n');
  while (!got.endsWith('ok')) await new Promise((r) => setTimeout(r, 5));
  t.equal(seen.length, 1, 'the request was handled');
  t.equal(conn!.data, null, 'answered and idle: the handler data of that request is gone');
  t.equal(conn!.head, null, 'and so is its head');
});

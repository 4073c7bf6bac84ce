// The request-smuggling corpus, sent as raw bytes through a proxy built from
// weft's HTTP/1.1 engine to an upstream that records every byte it receives.
// Each attack must be answered 400 with the connection closed and nothing
// forwarded; the valid shapes next to them must keep working.
import t from 'tap';
import net from 'node:net';
import http from 'node:http';
import { listen, loopback, rawExchange, startProxy } from './helpers/proxy.js';
import { ATTACKS } from './helpers/smuggling-corpus.js';

const HOST = loopback(2);


async function recorder(): Promise<{ port: number; bytes: () => number; close: () => void; server: net.Server }> {
  let n = 0;
  const server = net.createServer((s) => {
    s.on('data', (b) => {
      n += b.length;
    });
    s.on('error', () => {});
  });
  const port = await listen(server, HOST);
  return { port, bytes: () => n, close: () => server.close(), server };
}

t.test('each smuggling shape: 400, connection closed, nothing forwarded', async (t) => {
  const up = await recorder();
  const proxy = await startProxy(HOST, up.port);
  t.teardown(async () => {
    await proxy.close();
    up.close();
  });
  for (const [name, bytes] of ATTACKS) {
    const { text, closed } = await rawExchange(HOST, proxy.port, Buffer.from(bytes, 'latin1'));
    t.match(text, /^HTTP\/1\.1 400 /, `${name}: 400`);
    t.match(text, /connection: close/i, `${name}: says close`);
    t.ok(closed, `${name}: connection closed`);
    t.equal(up.bytes(), 0, `${name}: nothing reached the upstream`);
    t.equal(proxy.pool.opened, 0, `${name}: no upstream connection was even opened`);
  }
});

t.test('valid neighbours keep working: chunk extensions, trailers, Expect: 100-continue, pipelining', async (t) => {
  const seen: string[] = [];
  const app = http.createServer((req, res) => {
    let body = '';
    req.on('data', (b) => (body += b));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body} ${JSON.stringify(req.trailers)}`);
      res.end(`ok ${req.url} ${body}`);
    });
  });
  const port = await listen(app, HOST);
  const proxy = await startProxy(HOST, port);
  t.teardown(async () => {
    await proxy.close();
    app.close();
  });
  let r = await rawExchange(
    HOST,
    proxy.port,
    'POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;name=value;flag;q="a b"\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n',
    (s) => s.includes('ok /ext'),
  );
  t.match(r.text, /^HTTP\/1\.1 200 /);
  t.match(r.text, /ok \/ext abc/);
  t.equal(seen[0], 'POST /ext abc {"x-trailer":"t"}', 'extensions passed, trailers delivered');

  r = await rawExchange(HOST, proxy.port, 'POST /exp HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n', (s) => s.includes('100 Continue'));
  t.match(r.text, /^HTTP\/1\.1 100 Continue\r\n\r\n/, '100 Continue relayed before the body was sent');

  const s = net.connect(proxy.port, HOST);
  await new Promise((res) => s.once('connect', res));
  s.write('POST /exp HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n');
  let got = '';
  await new Promise<void>((res) => {
    s.on('data', (b) => {
      got += b;
      if (got.includes('100 Continue') && !got.includes('ok /exp')) s.write('data');
      if (got.includes('ok /exp data')) res();
    });
  });
  s.destroy();
  t.match(got, /HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'then the final answer');

  r = await rawExchange(
    HOST,
    proxy.port,
    'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiPOST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\nGET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
  );
  const order = [...r.text.matchAll(/ok (\/\d) ?([a-z]*)/g)].map((m) => `${m[1]} ${m[2]}`.trim());
  t.same(order, ['/1', '/2 hi', '/3 yo', '/4'], 'four pipelined requests, answered in order');
  t.ok(r.closed);
});

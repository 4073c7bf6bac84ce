// The request-head guard on real sockets: slow heads get 408 and are closed
// at the timeout, complete heads and long bodies are not touched.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { HeadGuard } from '../head-guard.js';

async function listener(timeoutMs: number) {
  let timedOut = 0;
  const guard = new HeadGuard({ timeoutMs, onTimeout: () => timedOut++ });
  const h = http.createServer({ requestTimeout: 0 }, (req, res) => {
    let n = 0;
    req.on('data', (c: Buffer) => (n += c.length));
    req.on('end', () => res.end(String(n)));
  });
  h.on('request', (req: http.IncomingMessage) => guard.done(req.socket));
  // As the sidecar listeners do: accept on a net server, hand the socket to http.
  const srv = net.createServer((s) => {
    guard.accept(s);
    h.emit('connection', s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return { port, timedOut: () => timedOut, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

t.test('slow heads (one byte a second) get 408 and are closed at the timeout', async (t) => {
  const l = await listener(400);
  t.teardown(l.close);
  const head = 'GET / HTTP/1.1\r\nhost: x\r\n\r\n';
  const results = await Promise.all(Array.from({ length: 50 }, () => new Promise<{ ms: number; got: string }>((resolve) => {
    const c = net.connect(l.port, '127.0.0.1');
    const t0 = Date.now();
    let i = 0;
    let got = '';
    const iv = setInterval(() => c.writable && i < head.length && c.write(head[i++]!), 100);
    c.on('data', (d) => (got += d.toString()));
    c.on('error', () => {});
    c.on('close', () => {
      clearInterval(iv);
      resolve({ ms: Date.now() - t0, got });
    });
  })));
  for (const r of results) {
    t.ok(r.ms >= 350 && r.ms < 2500, `closed after ${r.ms} ms`);
    t.match(r.got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  }
  t.equal(l.timedOut(), 50, 'each one counted');
});

t.test('a complete head and a long streamed body are not cut', async (t) => {
  const l = await listener(300);
  t.teardown(l.close);
  const size = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: l.port, method: 'POST', path: '/', agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(b));
    });
    req.on('error', reject);
    let sent = 0;
    const iv = setInterval(() => {
      req.write(Buffer.alloc(1024));
      if (++sent === 10) {
        clearInterval(iv);
        req.end();
      }
    }, 100); // a second of body, three times the head timeout
  });
  t.equal(size, '10240');
  t.equal(l.timedOut(), 0);
});

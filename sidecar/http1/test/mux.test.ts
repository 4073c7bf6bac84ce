import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import http from 'node:http';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { createTrustAnchor, createIssuer, issueCert } from '../../../certs/index.js';
import { FrameReader, GRANT_BATCH, MuxClient, MuxConn, MuxServer, SendWindow, WINDOW, WINDOW_UPDATE, DATA } from '../mux.js';
import { Pool } from '../pool.js';
import { ServerConn } from '../server-conn.js';
import { listen, loopback, rawExchange } from './helpers/proxy.js';

const HOST = loopback(3);
const anchor = createTrustAnchor({ commonName: 'mux test anchor' });
const issuer = createIssuer(anchor, { commonName: 'mux test issuer' });
const client = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/t/sa/client', commonName: 'client' });
const server = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/t/sa/server', dnsNames: ['hop.test'], commonName: 'server' });
const ca = [anchor.certPem, issuer.certPem];

/** edge (plain HTTP/1.1 in) → weft-mux/1 over one mTLS connection → peer → app. */
async function chain(app: net.Server | http.Server, onPeerFrame?: (type: number, length: number) => void): Promise<{ port: number; peerPort: number; handshakes: () => number; close: () => Promise<void> }> {
  const appPort = await listen(app, HOST);
  const pool = new Pool({ host: HOST, port: appPort });
  let handshakes = 0;
  const peer = tls.createServer({ key: server.keyPem, cert: server.certPem + issuer.certPem, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['weft-mux/1', 'h2', 'http/1.1'] }, (s) => {
    handshakes++;
    // A second reader of what the edge sends (the frames as the peer gets them).
    if (onPeerFrame) {
      const spy = new FrameReader((type, _flags, _id, payload) => onPeerFrame(type, payload.length));
      s.on('data', (b: Buffer) => spy.push(b));
    }
    const uri = s.getPeerCertificate().subjectaltname?.replace(/^URI:/, '') ?? '';
    new MuxServer(s, pool, [`x-peer-identity: ${uri}`]);
  });
  const peerPort = await listen(peer, HOST);
  const mux = new MuxClient({ host: HOST, port: peerPort, tls: { key: client.keyPem, cert: client.certPem + issuer.certPem, ca, servername: 'hop.test' } });
  const handler = mux.handler();
  const conns = new Set<ServerConn>();
  const edge = net.createServer((s) => {
    const c = new ServerConn(s, handler);
    conns.add(c);
    s.on('close', () => conns.delete(c));
  });
  const port = await listen(edge, HOST);
  return {
    port,
    peerPort,
    handshakes: () => handshakes,
    async close() {
      mux.close();
      for (const c of conns) c.destroy();
      pool.close();
      edge.close();
      peer.close();
      app.close();
    },
  };
}

t.test('weft-mux/1: fifty concurrent callers share one mTLS connection; the peer adds the identity', async (t) => {
  const app = http.createServer((req, res) => {
    res.end(`${req.url} ${req.headers['x-peer-identity']}`);
  });
  const c = await chain(app);
  t.teardown(c.close);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
  const bodies = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host: HOST, port: c.port, path: `/r${i}`, agent }, async (res) => {
            let b = '';
            for await (const x of res) b += x;
            resolve(b);
          })
          .on('error', reject);
      }),
    ),
  );
  t.same(bodies, Array.from({ length: 50 }, (_, i) => `/r${i} spiffe://cluster.local/ns/t/sa/client`));
  t.equal(c.handshakes(), 1, 'one TLS connection carried all fifty');
  agent.destroy();
});

t.test('weft-mux/1: 16 MiB up and down through the per-stream window, chunked kept as it came', async (t) => {
  const app = http.createServer((req, res) => {
    const h = createHash('sha256');
    let n = 0;
    req.on('data', (b: Buffer) => {
      n += b.length;
      h.update(b);
    });
    req.on('end', () => {
      if (req.url === '/down') {
        const block = Buffer.alloc(1 << 20, 5);
        let i = 0;
        const pump = (): void => {
          while (i < 16) {
            i++;
            if (!res.write(block)) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      res.end(`${n} ${h.digest('hex')} ${req.headers['transfer-encoding'] ?? ''}`);
    });
  });
  const c = await chain(app);
  t.teardown(c.close);
  const block = Buffer.alloc(1 << 20, 9);
  const want = createHash('sha256');
  for (let i = 0; i < 16; i++) want.update(block);
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: HOST, port: c.port, method: 'POST', path: '/up' }, async (res) => {
      let b = '';
      for await (const x of res) b += x;
      resolve(b);
    });
    req.on('error', reject);
    let i = 0;
    const pump = (): void => {
      while (i < 16) {
        i++;
        if (!req.write(block)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.equal(body, `${16 << 20} ${want.digest('hex')} chunked`, 'all 16 MiB arrived, still chunked');
  const n = await new Promise<number>((resolve) => {
    http.get({ host: HOST, port: c.port, path: '/down' }, async (res) => {
      let k = 0;
      for await (const x of res) {
        k += (x as Buffer).length;
        await new Promise((r) => setImmediate(r));
      }
      resolve(k);
    });
  });
  t.equal(n, 16 << 20, 'all 16 MiB came back to a slow reader');
});

t.test('weft-mux/1: window credit goes back in batches — small exchanges send no WINDOW_UPDATE, a large download still flows', async (t) => {
  const app = http.createServer((req, res) => {
    if (req.url === '/big') {
      // 768 writes of 1 KB, one per turn: the peer reads (and frames) them as many small DATA frames.
      let left = (3 * WINDOW) / 1024;
      const more = (): void => {
        if (left-- === 0) return void res.end();
        res.write(Buffer.alloc(1024, 1));
        setImmediate(more);
      };
      return more();
    }
    res.end('small answer');
  });
  const frames: Array<{ type: number; length: number }> = [];
  const c = await chain(app, (type, length) => frames.push({ type, length }));
  t.teardown(c.close);
  for (let i = 0; i < 20; i++) {
    const r = await rawExchange(HOST, c.port, `GET /s${i} HTTP/1.1\r\nhost: a\r\n\r\n`, (got) => got.endsWith('small answer'));
    t.match(r.text, /^HTTP\/1\.1 200[^]*small answer$/, `exchange ${i} answered`);
  }
  t.equal(frames.filter((f) => f.type === WINDOW_UPDATE).length, 0, 'twenty small exchanges: no WINDOW_UPDATE crossed the hop');
  const got = await new Promise<number>((resolve, reject) => {
    http.get({ host: HOST, port: c.port, path: '/big' }, async (res) => {
      let k = 0;
      for await (const x of res) k += (x as Buffer).length;
      resolve(k);
    }).on('error', reject);
  });
  t.equal(got, 3 * WINDOW, 'a response three windows long arrived whole');
  const grants = frames.filter((f) => f.type === WINDOW_UPDATE);
  // One grant per DATA frame would be hundreds here; batched, it is a grant per quarter window owed (12 here),
  // plus one whenever the edge's writer to its caller was full and drained.
  t.ok(grants.length >= 2 && grants.length <= 24, `credit came back in ${grants.length} batched grants (not one per DATA frame)`);
});

t.test('weft-mux/1 SendWindow: a chunk larger than the credit goes out in pieces as credit comes, in order, and nothing stalls', (t) => {
  const sent: Buffer[] = [];
  const mux = { send: (type: number, _f: number, _id: number, p: Buffer) => void (type === DATA && sent.push(p)) } as unknown as MuxConn;
  let paused = 0;
  let resumed = 0;
  const w = new SendWindow(() => mux, 1, () => paused++, () => resumed++);
  const big = Buffer.alloc(WINDOW + 1000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  w.data(big);
  t.equal(Buffer.concat(sent).length, WINDOW, 'the whole window went at once');
  t.equal(paused, 1, 'the source paused for the rest');
  t.notOk(w.grant(400), 'a small grant sends a piece, the rest still waits');
  t.equal(Buffer.concat(sent).length, WINDOW + 400, 'exactly the granted bytes went');
  t.ok(w.grant(GRANT_BATCH), 'a batch grant empties the queue');
  t.equal(resumed, 1, 'the source resumed');
  t.ok(Buffer.concat(sent).equals(big), 'the pieces are the chunk, in order');
  t.end();
});

t.test('weft-mux/1: an app that refuses connections gives 502 on that stream only', async (t) => {
  const dead = net.createServer();
  const c = await chain(dead);
  // Close the app's listener: the peer's pool connects and is refused.
  dead.close();
  await once(dead, 'close');
  t.teardown(c.close);
  const r = await rawExchange(HOST, c.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  t.match(r.text, /^HTTP\/1\.1 502 /);
  t.match(r.text, /weft-proxy-error: upstream failure: /);
});

t.test('weft-mux/1: a peer that sends a frame the server cannot take loses only its own connection', async (t) => {
  const app = http.createServer((req, res) => res.end(`ok ${req.url}`));
  const c = await chain(app);
  t.teardown(c.close);
  const frame = (len: number, type: number, id: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(10);
    h.writeUInt32BE(len, 0);
    h[4] = type;
    h.writeUInt32BE(id, 6);
    return Buffer.concat([h, payload]);
  };
  const head = Buffer.from(`GET /x HTTP/1.1\r\nhost: a\r\n\r\n`);
  const cases: Array<[string, Buffer]> = [
    // A stream, then a WINDOW_UPDATE for it with a 2-byte payload (a u32 is 4).
    ['a short WINDOW_UPDATE', Buffer.concat([frame(head.length, 1, 1, head), frame(2, 5, 1, Buffer.from([0, 1]))])],
    // A length of 1 GiB: not accumulated, the connection ends.
    ['a frame length beyond the limit', frame(1 << 30, 2, 1, Buffer.alloc(16))],
  ];
  for (const [name, bytes] of cases) {
    const s = tls.connect({ host: HOST, port: c.peerPort, key: client.keyPem, cert: client.certPem + issuer.certPem, ca, servername: 'hop.test', ALPNProtocols: ['weft-mux/1'] });
    await once(s, 'secureConnect');
    s.on('data', () => {});
    s.on('error', () => {});
    s.write(bytes);
    const closed = await Promise.race([once(s, 'close').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 3000))]);
    t.ok(closed, `${name}: the peer's connection is closed`);
    s.destroy();
  }
  // The server (and this process) still serve other connections.
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ host: HOST, port: c.port, path: '/after' }, async (res) => {
      let b = '';
      for await (const x of res) b += x;
      resolve(b);
    }).on('error', reject);
  });
  t.equal(body, 'ok /after', 'a normal request through the same peer still works');
});

t.test('weft-mux/1: the watch hook sees every stream end once — answered, refused, reset by the caller, or cut with its connection', async (t) => {
  const slow = new Set<http.ServerResponse>();
  const app = http.createServer((req, res) => {
    if (req.url === '/slow') slow.add(res); // never answered: the caller gives up
    else res.end('hello');
  });
  const appPort = await listen(app, HOST);
  const pool = new Pool({ host: HOST, port: appPort });
  const seen: Array<[string, number, string | undefined]> = [];
  const peer = tls.createServer({ key: server.keyPem, cert: server.certPem + issuer.certPem, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['weft-mux/1'] }, (s) => {
    new MuxServer(s, pool, [], {
      admit: (head) => (head.target === '/deny' ? { status: 403, reason: 'denied by test' } : null),
      watch: (head) => ({ add: ['x-watched: 1'], finish: (status, proxyError) => seen.push([head.target, status, proxyError]) }),
    });
  });
  const peerPort = await listen(peer, HOST);
  t.teardown(() => {
    for (const r of slow) r.destroy();
    pool.close();
    peer.close();
    app.closeAllConnections();
    app.close();
  });
  const frame = (type: number, id: number, payload: Buffer): Buffer => {
    const h = Buffer.alloc(10);
    h.writeUInt32BE(payload.length, 0);
    h[4] = type;
    h.writeUInt32BE(id, 6);
    return Buffer.concat([h, payload]);
  };
  const get = (path: string) => Buffer.from(`GET ${path} HTTP/1.1\r\nhost: a\r\n\r\n`);
  const connect = async () => {
    const s = tls.connect({ host: HOST, port: peerPort, key: client.keyPem, cert: client.certPem + issuer.certPem, ca, servername: 'hop.test', ALPNProtocols: ['weft-mux/1'] });
    await once(s, 'secureConnect');
    s.on('data', () => {});
    s.on('error', () => {});
    return s;
  };
  const until = async (n: number) => {
    for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  };
  const s1 = await connect();
  s1.write(Buffer.concat([frame(1, 1, get('/ok')), frame(3, 1, Buffer.alloc(0)), frame(1, 3, get('/deny')), frame(3, 3, Buffer.alloc(0))]));
  await until(2);
  s1.write(Buffer.concat([frame(1, 5, get('/slow')), frame(3, 5, Buffer.alloc(0))]));
  for (let i = 0; i < 200 && slow.size < 1; i++) await new Promise((r) => setTimeout(r, 10));
  s1.write(frame(4, 5, Buffer.alloc(0))); // RST: the caller gave up
  await until(3);
  const s2 = await connect();
  s2.write(Buffer.concat([frame(1, 1, get('/slow')), frame(3, 1, Buffer.alloc(0))]));
  for (let i = 0; i < 200 && slow.size < 2; i++) await new Promise((r) => setTimeout(r, 10));
  s2.destroy(); // the caller's connection is cut mid-stream
  await until(4);
  await new Promise((r) => setTimeout(r, 100));
  s1.destroy();
  await new Promise((r) => setTimeout(r, 100));
  t.same(seen.slice(0, 2).sort(), [['/deny', 403, 'denied by test'], ['/ok', 200, undefined]], 'an answered and a refused stream');
  t.same(seen.slice(2), [['/slow', 499, 'client closed'], ['/slow', 499, 'client closed']], 'a reset stream and one cut with its connection, once each (closing the first connection adds nothing)');
});

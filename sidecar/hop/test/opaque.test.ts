import t, { type Test } from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { createIssuer, createTrustAnchor, issueCert, spiffeId, spiffeIdOfSubjectAltName } from '../../../certs/index.js';
import { ALPN_OPAQUE, parseHopServerName } from '../../../api/index.js';
import { opaqueDirect, opaqueInbound, opaqueToMesh, type TcpMetricsSink } from '../opaque.js';

const HOST = `127.${40 + (process.pid % 150)}.${(process.pid >> 7) % 250}.${1 + ((process.pid * 7) % 250)}`;

const anchor = createTrustAnchor();
const issuer = createIssuer(anchor);
const bundle = [issuer.certPem, anchor.certPem].join('\n');
const clientLeaf = issueCert(issuer, { spiffeId: spiffeId('shop', 'web') });
const serverLeaf = issueCert(issuer, { spiffeId: spiffeId('data', 'redis') });
const clientCtx = tls.createSecureContext({ cert: clientLeaf.certPem + issuer.certPem, key: clientLeaf.keyPem, ca: anchor.certPem });

interface Counted {
  direction: string;
  peer: string;
  tls: boolean;
  read: number;
  written: number;
  closed: boolean;
}
function sink(): TcpMetricsSink & { seen: Counted[] } {
  const seen: Counted[] = [];
  return {
    seen,
    connection(socket, direction, peer, isTls) {
      const c: Counted = { direction, peer, tls: isTls, read: 0, written: 0, closed: false };
      seen.push(c);
      socket.once('close', () => {
        c.closed = true;
        c.read = socket.bytesRead;
        c.written = socket.bytesWritten;
      });
    },
  };
}

async function listen(t: Test, server: net.Server): Promise<number> {
  // A client that fails the TLS handshake can leave the server's raw socket
  // open (Node keeps it until the peer's FIN): destroy what is left at the end.
  const conns = new Set<net.Socket>();
  server.on('connection', (c: net.Socket) => {
    conns.add(c);
    c.once('close', () => conns.delete(c));
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  t.teardown(() => {
    for (const c of conns) c.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** The app behind the inbound: answers "<greeting>" at once, then "got N bytes" after the client's FIN. */
function app(greeting = ''): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    if (greeting) s.write(greeting);
    let n = 0;
    s.on('data', (d: Buffer) => (n += d.length));
    s.on('end', () => s.end(`got ${n} bytes`));
    s.on('error', () => {});
  });
}

/** A minimal inbound: mTLS with client certs, weft-opaque only, target port from the server name. */
function inbound(metrics: TcpMetricsSink, identities: string[]): tls.Server {
  return tls.createServer(
    {
      cert: serverLeaf.certPem + issuer.certPem,
      key: serverLeaf.keyPem,
      ca: anchor.certPem,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [ALPN_OPAQUE],
      allowHalfOpen: true,
    },
    (s) => {
      const sni = parseHopServerName((s as tls.TLSSocket & { servername?: string }).servername ?? '');
      const peer = spiffeIdOfSubjectAltName(s.getPeerCertificate().subjectaltname) ?? '';
      identities.push(peer);
      if (!sni || s.alpnProtocol !== ALPN_OPAQUE) return s.destroy();
      opaqueInbound(s, { podIp: HOST, port: sni.port, metrics, peer });
    },
  );
}

/** The outbound listener: every accepted socket goes opaque to the meshed endpoint. */
function outbound(metrics: TcpMetricsSink, appPort: number, inboundPort: number, sa = 'redis'): net.Server {
  return net.createServer({ allowHalfOpen: true }, (s) => {
    opaqueToMesh(s, { ip: HOST, port: appPort, identity: { namespace: 'data', serviceAccount: sa } }, { secureContext: () => clientCtx, inboundPort, metrics });
  });
}

async function roundTrip(port: number, send: string, opts: { waitGreeting?: boolean } = {}): Promise<{ text: string; firstByteMs: number }> {
  const c = net.connect({ host: HOST, port, allowHalfOpen: true });
  const t0 = performance.now();
  let first = -1;
  let text = '';
  c.setEncoding('utf8');
  c.on('data', (d: string) => {
    if (first < 0) first = performance.now() - t0;
    text += d;
  });
  await once(c, 'connect');
  if (opts.waitGreeting) await once(c, 'data');
  c.end(send);
  await once(c, 'close');
  return { text, firstByteMs: first };
}

t.test('opaque through mTLS: half-close keeps the answer, identities and metrics on both ends', async (t) => {
  const outM = sink();
  const inM = sink();
  const ids: string[] = [];
  const appPort = await listen(t, app());
  const inPort = await listen(t, inbound(inM, ids));
  const outPort = await listen(t, outbound(outM, appPort, inPort));
  const payload = 'x'.repeat(300_000);
  const r = await roundTrip(outPort, payload);
  t.equal(r.text, `got ${payload.length} bytes`);
  t.same(ids, [spiffeId('shop', 'web')], 'the inbound saw the client leaf');
  await new Promise((res) => setTimeout(res, 50));
  t.match(outM.seen, [{ direction: 'outbound', peer: spiffeId('data', 'redis'), tls: true, closed: true }]);
  t.equal(outM.seen[0]!.read, payload.length, 'outbound counts the bytes the app sent');
  t.match(inM.seen, [{ direction: 'inbound', peer: spiffeId('shop', 'web'), tls: true, closed: true }]);
});

t.test('server speaks first: the greeting crosses the mesh without the client sending a byte', async (t) => {
  const appPort = await listen(t, app('+HELLO\r\n'));
  const inPort = await listen(t, inbound(sink(), []));
  const outPort = await listen(t, outbound(sink(), appPort, inPort));
  const r = await roundTrip(outPort, 'PING\r\n', { waitGreeting: true });
  t.equal(r.text, '+HELLO\r\ngot 6 bytes');
  t.ok(r.firstByteMs < 500, `greeting after ${r.firstByteMs.toFixed(1)} ms`);
});

t.test('a server with the wrong identity is refused: the app sees its connection reset', async (t) => {
  const appPort = await listen(t, app('secret'));
  const inPort = await listen(t, inbound(sink(), []));
  const outPort = await listen(t, outbound(sink(), appPort, inPort, 'someone-else'));
  const c = net.connect({ host: HOST, port: outPort });
  let got = '';
  c.on('data', (d) => (got += d));
  const [err] = (await Promise.race([once(c, 'error'), once(c, 'close').then(() => [undefined])])) as [NodeJS.ErrnoException | undefined];
  t.equal(got, '', 'no byte of the app leaked');
  t.equal(err?.code, 'ECONNRESET');
});

t.test('unreachable endpoint: the app socket is reset, not left hanging', async (t) => {
  const s = net.createServer().listen(0, HOST);
  await once(s, 'listening');
  const deadPort = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  const srv = net.createServer((c) => {
    opaqueDirect(c, { address: HOST, port: deadPort });
  });
  const port = await listen(t, srv);
  const c = net.connect({ host: HOST, port });
  const t0 = performance.now();
  const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNRESET');
  t.ok(performance.now() - t0 < 1000);
});

t.test('direct (outside the mesh): plain TCP to where the app was going', async (t) => {
  const m = sink();
  const appPort = await listen(t, app('hi '));
  const srv = net.createServer({ allowHalfOpen: true }, (c) => {
    opaqueDirect(c, { address: HOST, port: appPort }, { metrics: m });
  });
  const port = await listen(t, srv);
  const r = await roundTrip(port, 'abc');
  t.equal(r.text, 'hi got 3 bytes');
  await new Promise((res) => setTimeout(res, 20));
  t.match(m.seen, [{ direction: 'outbound', peer: '', tls: false, read: 3, closed: true }]);
});

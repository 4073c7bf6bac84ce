// MuxHop against peers it cannot multiplex with: a sidecar that offers only
// http/1.1 (an older peer during an upgrade) is served through the HTTP/1.1
// pool, requests that waited for the handshake included; a peer presenting
// another SPIFFE ID is refused with the identity error, nothing sent.
import t from 'tap';
import http from 'node:http';
import tls from 'node:tls';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { createIssuer, createTrustAnchor, issueCert } from '../../../certs/index.js';
import type { IdentityHolder } from '../../config/bootstrap.js';
import { meshConnector } from '../hop.js';
import { MuxHop } from '../hop-mux.js';

// weft-mux/1 is the default hop (endpoint-pool.ts); a stray WEFT_HOP from the environment must not turn it off here.
delete process.env.WEFT_HOP;

const HOST = `127.${10 + Math.floor(Math.random() * 200)}.${10 + Math.floor(Math.random() * 200)}.9`;
const SERVER_ID = 'spiffe://cluster.local/ns/demo/sa/echo';

function call(d: { dispatch: Dispatcher['dispatch'] }, path: string): Promise<{ status: number; body: string } | { error: Error & { code?: string } }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    d.dispatch({ path, method: 'GET', headers: { host: 'echo' } }, {
      onConnect() {},
      onHeaders(s: number) {
        status = s;
        return true;
      },
      onData(c: Buffer) {
        chunks.push(c);
        return true;
      },
      onComplete() {
        resolve({ status, body: Buffer.concat(chunks).toString() });
      },
      onError(error: Error) {
        resolve({ error });
      },
    } as Dispatcher.DispatchHandler);
  });
}

t.test('a peer without weft-mux/1, and a peer with the wrong identity', async (t) => {
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor);
  const ca = anchor.certPem;
  const server = issueCert(issuer, { spiffeId: SERVER_ID });
  const client = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/demo/sa/client' });
  const context = tls.createSecureContext({ key: client.keyPem, cert: client.certPem + issuer.certPem, ca });
  const identity = { current: { context } } as unknown as IdentityHolder;

  const app = http.createServer((req, res) => res.end(`old peer ${req.url} ${req.headers['x-forwarded-proto'] ?? ''}`));
  const alpns: string[] = [];
  const peer = tls.createServer({ key: server.keyPem, cert: server.certPem + issuer.certPem, ca, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'] }, (s) => {
    alpns.push(String(s.alpnProtocol));
    app.emit('connection', s);
  });
  await new Promise<void>((r) => peer.listen(0, HOST, r));
  const port = (peer.address() as { port: number }).port;
  t.teardown(() => {
    app.closeAllConnections();
    peer.close();
  });

  const pools: Pool[] = [];
  t.teardown(() => Promise.all(pools.map((p) => p.destroy())));
  const fallbackFor = (expect: string) => () => {
    const p = new Pool(`http://${HOST}:${port}`, { connect: meshConnector(identity, HOST, port, '8080.echo.demo.weft', expect) });
    pools.push(p);
    return p;
  };

  const hop = new MuxHop(identity, HOST, port, '8080.echo.demo.weft', SERVER_ID, fallbackFor(SERVER_ID));
  t.teardown(() => hop.destroy());
  const first = await Promise.all([call(hop, '/a'), call(hop, '/b')]);
  t.same(first, [{ status: 200, body: 'old peer /a ' }, { status: 200, body: 'old peer /b ' }], 'the requests that waited for the handshake went over the HTTP/1.1 pool');
  t.same(await call(hop, '/c'), { status: 200, body: 'old peer /c ' }, 'and so do later ones');
  t.ok(alpns.includes('http/1.1'), 'the peer spoke http/1.1');

  const wrong = new MuxHop(identity, HOST, port, '8080.echo.demo.weft', 'spiffe://cluster.local/ns/demo/sa/other', fallbackFor('spiffe://cluster.local/ns/demo/sa/other'));
  t.teardown(() => wrong.destroy());
  const r = await call(wrong, '/x');
  t.ok('error' in r && r.error.code === 'WEFT_PEER_IDENTITY', `refused: ${'error' in r ? r.error.message : JSON.stringify(r)}`);
});

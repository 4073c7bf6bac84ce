// Draining: once a sidecar starts to close, an HTTP/1.1 answer in flight
// carries `Connection: close` and the connection ends after it; an HTTP/2
// caller's session gets a GOAWAY and its stream in flight still completes.
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServiceConfig } from '../../../api/index.js';
import { startSidecar } from '../../index.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const PLAIN = ip(2);
const CLIENT = ip(3);

const service: ServiceConfig = {
  service: 'demo/slow', namespace: 'demo', name: 'slow', consumerNamespace: 'demo', clusterIP: '10.96.0.30', sessionSecret: '',
  backends: { 'demo/slow:80': { key: 'demo/slow:80', namespace: 'demo', name: 'slow', port: 80, endpoints: [{ ip: PLAIN, port: 8080, ready: true }] } },
  ports: [{ port: 80, targetPort: 8080, appProtocol: 'http', routeKind: 'none', defaultBackend: 'demo/slow:80', rules: [], matches: [] }],
};

t.test('a draining sidecar ends HTTP/1.1 connections and sends GOAWAY to HTTP/2 callers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-drain-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'slow', cluster_ip: '10.96.0.30', ports: [{ name: 'http', port: 80, target_port: 8080, app_protocol: 'http' }], meshed: false }] });
  control.setService(service, 'v1');

  // The app holds every answer until told to go, so requests are in flight when the drain begins.
  let arrived = 0;
  const release: Array<() => void> = [];
  const answer = (res: http.ServerResponse | http2.Http2ServerResponse) => {
    arrived++;
    release.push(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('done');
    });
  };
  const h1 = http.createServer((req, res) => answer(res));
  const h2 = http2.createServer((req, res) => answer(res));
  const app = net.createServer((sock) => {
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
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => app.listen(8080, PLAIN, r));
  t.teardown(() => app.close());

  const client = await startSidecar({ control: control.address, stateDir: control.stateDir, namespace: 'demo', podIP: CLIENT, workload: 'client', serviceAccount: 'client', subscribe: ['slow'], log: () => {} });
  await client.ready;
  const [host, port] = [client.outboundAddress.split(':')[0]!, Number(client.outboundAddress.split(':')[1])];

  const h1Answer = new Promise<{ status: number; connection: string | undefined; closed: Promise<void> }>((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true });
    const req = http.request({ host, port, path: '/h1', headers: { host: 'slow' }, agent }, (res) => {
      res.resume();
      const closed = new Promise<void>((r) => res.socket.once('close', () => r()));
      resolve({ status: res.statusCode!, connection: res.headers.connection, closed });
    });
    req.on('error', reject);
    req.end();
  });
  const session = http2.connect(`http://${client.outboundAddress}`);
  session.on('error', () => {});
  const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
  const h2Answer = new Promise<number>((resolve, reject) => {
    const st = session.request({ ':path': '/h2', ':authority': 'slow' });
    st.on('response', (h) => resolve(Number(h[':status'])));
    st.on('error', reject);
    st.resume();
    st.end();
  });
  while (arrived < 2) await new Promise((r) => setTimeout(r, 10));

  const closing = client.close(3000);
  await goaway;
  t.pass('the HTTP/2 caller got a GOAWAY while its stream was in flight');
  for (const f of release) f();
  t.equal(await h2Answer, 200, 'the HTTP/2 stream in flight completed');
  const r = await h1Answer;
  t.equal(r.status, 200, 'the HTTP/1.1 request in flight completed');
  t.equal(r.connection, 'close', 'its answer says Connection: close');
  await r.closed;
  t.pass('and the connection ended after it');
  session.destroy();
  await closing;
});

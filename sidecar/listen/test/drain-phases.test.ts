// (sidecar/listen/test/drain.test.ts, from the pipeline branch, covers the listeners' side.)
// The drain's phases on real sockets: an HTTP/1.1 server fed connections the
// way the inbound listener feeds its http.Server (emit 'connection'), a
// keep-alive client, and the Drain in between.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { Drain, drainPlan, parseDrainTimeout } from '../drain.js';

t.test('drain plan: the propagation window is at most 1 s and at most half the timeout', async (t) => {
  const table: Array<[number, { windowMs: number; timeoutMs: number }]> = [
    [5000, { windowMs: 1000, timeoutMs: 5000 }],
    [1000, { windowMs: 500, timeoutMs: 1000 }],
    [0, { windowMs: 0, timeoutMs: 0 }],
    [-3, { windowMs: 0, timeoutMs: 0 }],
    [Number.NaN, { windowMs: 0, timeoutMs: 0 }],
  ];
  for (const [timeout, want] of table) t.same(drainPlan(timeout), want, `timeout ${timeout}`);
});

t.test('drain timeout: durations as the flag and the annotation take them; errors name the field', async (t) => {
  const ok: Array<[string, number]> = [['5s', 5000], ['1500ms', 1500], ['2', 2000], ['0.5s', 500], ['1m', 60_000], [' 10s ', 10_000]];
  for (const [v, ms] of ok) t.same(parseDrainTimeout(v), { ok: true, ms }, v);
  for (const v of ['', 'soon', '-1s', '5h', '99999s']) {
    const r = parseDrainTimeout(v, 'annotation config.weft.io/drain-timeout');
    t.equal(r.ok, false, `${JSON.stringify(v)} refused`);
    if (!r.ok) t.match(r.error, /^annotation config\.weft\.io\/drain-timeout: /, 'the error names the annotation');
  }
});

function get(port: number, agent: http.Agent): Promise<{ status: number; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }));
      })
      .on('error', reject);
  });
}

t.test('draining: goodbye first, Connection: close on the next response, then idle connections close and the drain ends idle', async (t) => {
  const app = http.createServer((_req, res) => res.end('ok'));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    app.emit('connection', s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const outbound = { server: net.createServer(), http: http.createServer(), sockets: new Set<net.Socket>() };
  const said: string[] = [];
  const drain = new Drain({ inbound: { server, http: app, sockets }, outbound, goodbye: (why) => said.push(why), log: () => {} });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  const before = await get(port, agent);
  t.equal(before.connection, 'keep-alive', 'before the drain: keep-alive');
  t.equal(drain.draining(), false);

  const done = drain.run('SIGTERM', 400);
  t.equal(drain.draining(), true, 'draining from the signal on');
  t.same(said, ['SIGTERM'], 'goodbye is said at once');
  const during = await get(port, agent);
  t.equal(during.status, 200, 'a request during the window is answered');
  t.equal(during.connection, 'close', 'with Connection: close');
  // A fresh connection in the window is still accepted (a peer that has not applied the update yet).
  const fresh = await get(port, new http.Agent({ keepAlive: true }));
  t.equal(fresh.status, 200, 'a new connection inside the window is still accepted');

  const r = await done;
  t.equal(r.idle, true, 'the drain ends idle, before its timeout');
  t.equal(sockets.size, 0, 'no inbound connection is left');
  await t.rejects(get(port, new http.Agent()), /ECONNREFUSED/, 'after the window, new connections are refused');
});

t.test('an in-flight request is answered; the drain waits for it up to the timeout', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const app = http.createServer((_req, res) => void held.then(() => res.end('late')));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    app.emit('connection', s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const drain = new Drain({ inbound: { server, http: app, sockets }, outbound: { server: net.createServer(), http: http.createServer(), sockets: new Set() }, goodbye: () => {}, log: () => {} });
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  const inflight = get(port, agent);
  await new Promise<void>((r) => app.once('request', () => r()));
  const done = drain.run('SIGTERM', 2000);
  setTimeout(release, 300);
  const res = await inflight;
  t.equal(res.status, 200, 'the in-flight request is answered');
  t.equal(res.connection, 'close', 'and its connection closes after it');
  t.equal((await done).idle, true, 'then the drain is idle');
});

t.test('onStart hooks run once when the drain starts (GOAWAY for HTTP/2 sessions already open)', async (t) => {
  const l = () => ({ server: net.createServer(), http: http.createServer(), sockets: new Set<net.Socket>() });
  const drain = new Drain({ inbound: l(), outbound: l(), goodbye: () => {}, log: () => {} });
  const calls: string[] = [];
  drain.onStart(() => calls.push('before'));
  drain.onStart(() => {
    throw new Error('a broken hook');
  });
  await drain.run('SIGTERM', 0);
  drain.onStart(() => calls.push('after'));
  t.same(calls, ['before', 'after'], 'a hook added after the start runs at once; a failing one does not stop the drain');
});

import t from 'tap';
import http from 'node:http';
import { once } from 'node:events';
import { Pool, DEFAULT_MAX_IDLE } from '../pool.js';
import type { ClientConn, ClientHandler } from '../client-conn.js';

const HOST = '127.0.0.1';
const HEAD = Buffer.from(`GET / HTTP/1.1\r\nHost: app\r\n\r\n`);

// n requests at once through the pool to a real server that answers none until all n arrived,
// so n connections are needed; resolves with the statuses once every response ended.
function burst(pool: Pool, n: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) {
      const h: ClientHandler = {
        onResponseHead: (_c: ClientConn, head) => void statuses.push(head.status),
        onResponseBody: () => {},
        onResponseEnd: () => {
          if (statuses.length === n) setImmediate(() => resolve(statuses));
        },
        onResponseError: (_c, reason) => reject(new Error(reason)),
      };
      pool.get().request(HEAD, 'GET', h, false);
    }
  });
}

t.test('a pool keeps the connections its load needed: 150 concurrent requests, twice, open 150 connections once', async (t) => {
  t.ok(DEFAULT_MAX_IDLE >= 150, 'the default bound is above this load');
  const N = 150;
  let waiting: http.ServerResponse[] = [];
  let accepted = 0;
  const app = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
    waiting.push(res);
    if (waiting.length === N) {
      for (const r of waiting) r.end('ok');
      waiting = [];
    }
  });
  app.on('connection', () => accepted++);
  app.listen(0, HOST);
  await once(app, 'listening');
  const pool = new Pool({ host: HOST, port: (app.address() as { port: number }).port });
  t.teardown(() => {
    pool.close();
    app.closeAllConnections();
    app.close();
  });
  t.same(new Set(await burst(pool, N)), new Set([200]));
  t.equal(pool.idleCount, N, 'every connection went back to the pool, none closed for being one too many');
  t.same(new Set(await burst(pool, N)), new Set([200]));
  t.equal(pool.opened, N, 'the second burst reused them: no new connection');
  t.equal(accepted, N);
});

t.test('maxIdle still bounds what stays idle', async (t) => {
  const N = 20;
  let waiting: http.ServerResponse[] = [];
  const app = http.createServer((_req, res) => {
    waiting.push(res);
    if (waiting.length === N) {
      for (const r of waiting) r.end('ok');
      waiting = [];
    }
  });
  app.listen(0, HOST);
  await once(app, 'listening');
  const pool = new Pool({ host: HOST, port: (app.address() as { port: number }).port, maxIdle: 5 });
  t.teardown(() => {
    pool.close();
    app.closeAllConnections();
    app.close();
  });
  await burst(pool, N);
  t.equal(pool.idleCount, 5);
});

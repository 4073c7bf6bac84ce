// Test fixtures: a proxy built from the engine in front of an upstream, on a
// loopback address of this file's own.
import net from 'node:net';
import http from 'node:http';
import { once } from 'node:events';
import { Pool } from '../../pool.js';
import { ServerConn, type ServerOptions } from '../../server-conn.js';
import { proxyHandler, type Router } from '../../proxy.js';
import { TimerWheel } from '../../timer-wheel.js';

export function loopback(salt: number): string {
  const p = process.pid + salt * 7919;
  return `127.${40 + (p % 150)}.${(p >> 8) % 250}.${1 + (p % 250)}`;
}

export interface Proxy {
  port: number;
  pool: Pool;
  conns: Set<ServerConn>;
  close(): Promise<void>;
}

export async function startProxy(host: string, upstreamPort: number, opts: ServerOptions & { router?: Router } = {}): Promise<Proxy> {
  const pool = new Pool({ host, port: upstreamPort, wheel: opts.wheel });
  const router: Router = opts.router ?? (() => ({ kind: 'forward', pool }));
  const handler = proxyHandler(router);
  const conns = new Set<ServerConn>();
  const wheel = opts.wheel ?? new TimerWheel(50, 64);
  const server = net.createServer((s) => {
    const c = new ServerConn(s, handler, { ...opts, wheel });
    conns.add(c);
    s.on('close', () => conns.delete(c));
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    pool,
    conns,
    async close() {
      pool.close();
      for (const c of conns) c.destroy();
      wheel.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export async function listen(server: net.Server | http.Server, host: string): Promise<number> {
  server.listen(0, host);
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** Send raw bytes, collect everything until the peer closes (or `until` matches). */
export async function rawExchange(host: string, port: number, bytes: string | Buffer, until?: (got: string) => boolean): Promise<{ text: string; closed: boolean }> {
  const s = net.connect(port, host);
  await once(s, 'connect');
  s.write(bytes);
  let text = '';
  let closed = false;
  await new Promise<void>((resolve) => {
    s.on('data', (b) => {
      text += b.toString('latin1');
      if (until?.(text)) resolve();
    });
    s.on('close', () => {
      closed = true;
      resolve();
    });
    s.on('error', () => {});
  });
  s.destroy();
  return { text, closed };
}

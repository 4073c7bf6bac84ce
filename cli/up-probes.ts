// The probes `weft up` waits on: a sidecar's /ready and /metrics over HTTP,
// an app's ports over TCP.
import http from 'node:http';
import net from 'node:net';

export function httpGet(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolveP, reject) => {
    const req = http.get(url, { timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolveP({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export function tcpAccepts(host: string, port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = net.connect({ host, port });
    s.setTimeout(500);
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
    s.once('timeout', () => {
      s.destroy();
      r(false);
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

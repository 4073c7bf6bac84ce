// gRPC unary through the same two hops: h2load (prior-knowledge h2c, 50
// connections, one stream each) sends an empty message to an nginx app that
// answers as a gRPC server would (5-byte empty message, grpc-status 0 trailer).
// Direct, weft (through a GRPCRoute) and an HAProxy pair (h2 in, mTLS h2 hop,
// h2c to the app). h2load checks HTTP status, not grpc-status; the weft chain
// is checked once with a real response before it is measured.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, waitListening, type Proc } from './procs.js';
import type { Certs } from './chains.js';

export const GRPC = {
  app: { host: '127.0.90.5', port: 9090 },
  haproxy1: { host: '127.0.91.5', port: 8000 },
  haproxy2: { host: '127.0.91.6', port: 8443 },
  path: '/bench.Echo/Call',
  authority: 'grpc.bench.svc.cluster.local:9090',
} as const;

export interface GrpcChain {
  name: string;
  host: string;
  port: number;
  proxies: Array<{ role: string; proc: Proc }>;
}

export interface H2loadResult {
  rps: number;
  done: number;
  succeeded: number;
  failed: number;
  non2xx: number;
}

/** The app: nginx over h2c, answering every POST with an empty gRPC message and grpc-status 0. */
export async function startGrpcApp(dir: string, extra: Array<{ host: string; port: number }>): Promise<{ proc: Proc; frame: string }> {
  const www = join(dir, 'grpc-www', 'bench.Echo');
  mkdirSync(www, { recursive: true });
  const empty = Buffer.alloc(5); // compressed flag 0, length 0
  writeFileSync(join(www, 'Call'), empty);
  const frame = join(dir, 'grpc-frame');
  writeFileSync(frame, empty);
  const tmp = join(dir, 'grpc-app-tmp');
  mkdirSync(tmp, { recursive: true });
  const listens = [GRPC.app, ...extra].map((a) => `    listen ${a.host}:${a.port} http2;`).join('\n');
  const conf = join(dir, 'grpc-app.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, 'grpc-app.pid')};
error_log ${join(dir, 'grpc-app.err')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {
${listens}
    root ${join(dir, 'grpc-www')};
    location / {
      default_type application/grpc;
      add_trailer grpc-status 0 always;
      add_trailer grpc-message "" always;
      # the static module refuses POST with 405; answer the file instead
      error_page 405 =200 $uri;
    }
  }
}
`,
  );
  const proc = start('grpc-app', 'nginx', ['-e', join(dir, 'grpc-app.err'), '-p', dir, '-c', conf], join(dir, 'grpc-app.log'));
  await waitListening(proc, GRPC.app.host, GRPC.app.port);
  for (const a of extra) await waitListening(proc, a.host, a.port);
  return { proc, frame };
}

export async function startGrpcHaproxyPair(dir: string, c: Certs): Promise<GrpcChain> {
  const head = `global
  nbthread 1
  maxconn 4000
  ssl-server-verify required
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
`;
  const cfg2 = join(dir, 'grpc-haproxy2.cfg');
  writeFileSync(
    cfg2,
    `${head}frontend hop_in
  bind ${GRPC.haproxy2.host}:${GRPC.haproxy2.port} ssl crt ${c.serverHaproxy} ca-file ${c.caFile} verify required ssl-min-ver TLSv1.3 alpn h2
  http-request set-header X-Peer-Identity %[ssl_c_s_dn]
  default_backend app
backend app
  server app ${GRPC.app.host}:${GRPC.app.port} proto h2
`,
  );
  const cfg1 = join(dir, 'grpc-haproxy1.cfg');
  writeFileSync(
    cfg1,
    `${head}frontend plain_in
  bind ${GRPC.haproxy1.host}:${GRPC.haproxy1.port} proto h2
  use_backend hop if { path_beg /bench.Echo/ }
backend hop
  server hop ${GRPC.haproxy2.host}:${GRPC.haproxy2.port} ssl crt ${c.clientHaproxy} ca-file ${c.caFile} verify required verifyhost hop.bench.internal sni str(hop.bench.internal) ssl-min-ver TLSv1.3 alpn h2
`,
  );
  const p2 = start('grpc-haproxy2', 'haproxy', ['-db', '-f', cfg2], join(dir, 'grpc-haproxy2.log'));
  const p1 = start('grpc-haproxy1', 'haproxy', ['-db', '-f', cfg1], join(dir, 'grpc-haproxy1.log'));
  await waitListening(p2, GRPC.haproxy2.host, GRPC.haproxy2.port);
  await waitListening(p1, GRPC.haproxy1.host, GRPC.haproxy1.port);
  return {
    name: 'HAProxy pair',
    host: GRPC.haproxy1.host,
    port: GRPC.haproxy1.port,
    proxies: [
      { role: '#1', proc: p1 },
      { role: '#2', proc: p2 },
    ],
  };
}

export function runH2load(host: string, port: number, frame: string, opts: { seconds?: number; requests?: number; conns?: number }): Promise<H2loadResult> {
  const args = [
    ...(opts.requests ? ['-n', String(opts.requests)] : ['-D', String(opts.seconds ?? 5)]),
    '-c',
    String(opts.conns ?? 50),
    '-m',
    '1',
    '-d',
    frame,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '-H',
    `:authority: ${GRPC.authority}`,
    `http://${host}:${port}${GRPC.path}`,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', () => {
      const fin = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out);
      const req = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out);
      const st = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      if (!fin || !req) return reject(new Error(`bench: cannot parse h2load output:\n${out.slice(-800)}`));
      resolve({
        rps: Number(fin[1]),
        done: Number(req[2]),
        succeeded: Number(req[3]),
        failed: Number(req[4]),
        non2xx: st ? Number(st[2]) + Number(st[3]) + Number(st[4]) : 0,
      });
    });
  });
}

// The reference chains: the nginx app, a direct call to it, and the HAProxy
// and nginx pairs configured for the mesh's shape — plain HTTP/1.1 in, a
// path-prefix route, mutual TLS 1.3 with client certificates between the
// hops, the peer's identity added as a header, keep-alive to the app.
// One process per proxy so CPU and RSS are per proxy.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTrustAnchor, createIssuer, issueCert, type Pem } from '../certs/index.js';
import { start, waitListening, httpGet, type Proc } from './procs.js';

export const APP_BODY = 'weft-bench-app '.repeat(7).slice(0, 99) + '\n'; // 100 bytes
export const HOST_HEADER = 'app.bench.svc.cluster.local';

export const ADDR = {
  app: { host: '127.0.90.1', port: 8080 },
  haproxy1: { host: '127.0.91.1', port: 8000 },
  haproxy2: { host: '127.0.91.2', port: 8443 },
  nginx1: { host: '127.0.92.1', port: 8000 },
  nginx2: { host: '127.0.92.2', port: 8443 },
} as const;

export interface Chain {
  name: string;
  /** Where the load generator connects. */
  host: string;
  port: number;
  hostHeader: string;
  /** The proxies of the chain, client side first (empty for direct). */
  proxies: Array<{ role: string; proc: Proc }>;
  /** Set when the chain could not be started; the bench reports it instead of numbers. */
  unavailable?: string;
}

export interface Certs {
  dir: string;
  /** anchor + issuer, for verifying either side. */
  caFile: string;
  /** leaf + issuer, then key: HAProxy's crt format. */
  clientHaproxy: string;
  serverHaproxy: string;
  clientCert: string;
  clientKey: string;
  serverCert: string;
  serverKey: string;
}

const HOP_NAME = 'hop.bench.internal';

export function makeCerts(dir: string): Certs {
  mkdirSync(dir, { recursive: true });
  const anchor = createTrustAnchor({ commonName: 'bench anchor' });
  const issuer = createIssuer(anchor, { commonName: 'bench issuer' });
  const client: Pem = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/bench/sa/client', commonName: 'client' });
  const server: Pem = issueCert(issuer, { spiffeId: 'spiffe://cluster.local/ns/bench/sa/server', dnsNames: [HOP_NAME], commonName: 'server' });
  const f = (n: string, s: string): string => {
    const p = join(dir, n);
    writeFileSync(p, s, { mode: 0o600 });
    return p;
  };
  const nl = (s: string): string => (s.endsWith('\n') ? s : s + '\n');
  return {
    dir,
    caFile: f('ca.pem', nl(anchor.certPem) + nl(issuer.certPem)),
    clientHaproxy: f('client-haproxy.pem', nl(client.certPem) + nl(issuer.certPem) + nl(client.keyPem)),
    serverHaproxy: f('server-haproxy.pem', nl(server.certPem) + nl(issuer.certPem) + nl(server.keyPem)),
    clientCert: f('client.pem', nl(client.certPem) + nl(issuer.certPem)),
    clientKey: f('client.key', nl(client.keyPem)),
    serverCert: f('server.pem', nl(server.certPem) + nl(issuer.certPem)),
    serverKey: f('server.key', nl(server.keyPem)),
  };
}

function nginxMain(dir: string, name: string, http: string): string {
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp, { recursive: true });
  return `daemon off;
master_process off;
worker_processes 1;
pid ${join(dir, name + '.pid')};
error_log ${join(dir, name + '.err')} warn;
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
${http}
}
`;
}

function startNginx(dir: string, name: string, http: string): Proc {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, nginxMain(dir, name, http));
  return start(name, 'nginx', ['-e', join(dir, name + '.err'), '-p', dir, '-c', conf], join(dir, `${name}.log`));
}

/** The app: nginx `return 200` with a 100-byte body, on every address given. */
export async function startApp(dir: string, extraListen: Array<{ host: string; port: number }>): Promise<Proc> {
  const listens = [ADDR.app, ...extraListen].map((a) => `    listen ${a.host}:${a.port};`).join('\n');
  const p = startNginx(
    dir,
    'app',
    `  server {
${listens}
    location / {
      default_type text/plain;
      return 200 "${APP_BODY.replace(/\n/g, '\\n')}";
    }
  }`,
  );
  await waitListening(p, ADDR.app.host, ADDR.app.port);
  for (const a of extraListen) await waitListening(p, a.host, a.port);
  return p;
}

export async function startNginxPair(dir: string, c: Certs): Promise<Chain> {
  const p2 = startNginx(
    dir,
    'nginx2',
    `  upstream app { server ${ADDR.app.host}:${ADDR.app.port}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen ${ADDR.nginx2.host}:${ADDR.nginx2.port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate ${c.serverCert};
    ssl_certificate_key ${c.serverKey};
    ssl_client_certificate ${c.caFile};
    ssl_verify_client on;
    ssl_verify_depth 3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Peer-Identity $ssl_client_s_dn;
    }
  }`,
  );
  const p1 = startNginx(
    dir,
    'nginx1',
    `  upstream hop { server ${ADDR.nginx2.host}:${ADDR.nginx2.port}; keepalive 64; keepalive_requests 10000000; }
  server {
    listen ${ADDR.nginx1.host}:${ADDR.nginx1.port};
    location / {
      proxy_pass https://hop;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_certificate ${c.clientCert};
      proxy_ssl_certificate_key ${c.clientKey};
      proxy_ssl_trusted_certificate ${c.caFile};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 3;
      proxy_ssl_name ${HOP_NAME};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }`,
  );
  await waitListening(p2, ADDR.nginx2.host, ADDR.nginx2.port);
  await waitListening(p1, ADDR.nginx1.host, ADDR.nginx1.port);
  return {
    name: 'nginx pair',
    host: ADDR.nginx1.host,
    port: ADDR.nginx1.port,
    hostHeader: HOST_HEADER,
    proxies: [
      { role: '#1', proc: p1 },
      { role: '#2', proc: p2 },
    ],
  };
}

function haproxyCfg(body: string): string {
  return `global
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
  timeout http-keep-alive 60s
${body}
`;
}

export async function startHaproxyPair(dir: string, c: Certs): Promise<Chain> {
  const cfg2 = join(dir, 'haproxy2.cfg');
  writeFileSync(
    cfg2,
    haproxyCfg(`frontend hop_in
  bind ${ADDR.haproxy2.host}:${ADDR.haproxy2.port} ssl crt ${c.serverHaproxy} ca-file ${c.caFile} verify required ssl-min-ver TLSv1.3 alpn http/1.1
  http-request set-header X-Peer-Identity %[ssl_c_s_dn]
  default_backend app
backend app
  server app ${ADDR.app.host}:${ADDR.app.port}
`),
  );
  const cfg1 = join(dir, 'haproxy1.cfg');
  writeFileSync(
    cfg1,
    haproxyCfg(`frontend plain_in
  bind ${ADDR.haproxy1.host}:${ADDR.haproxy1.port}
  use_backend hop if { path_beg / }
backend hop
  server hop ${ADDR.haproxy2.host}:${ADDR.haproxy2.port} ssl crt ${c.clientHaproxy} ca-file ${c.caFile} verify required verifyhost ${HOP_NAME} sni str(${HOP_NAME}) ssl-min-ver TLSv1.3 alpn http/1.1
`),
  );
  const p2 = start('haproxy2', 'haproxy', ['-db', '-f', cfg2], join(dir, 'haproxy2.log'));
  const p1 = start('haproxy1', 'haproxy', ['-db', '-f', cfg1], join(dir, 'haproxy1.log'));
  await waitListening(p2, ADDR.haproxy2.host, ADDR.haproxy2.port);
  await waitListening(p1, ADDR.haproxy1.host, ADDR.haproxy1.port);
  return {
    name: 'HAProxy pair',
    host: ADDR.haproxy1.host,
    port: ADDR.haproxy1.port,
    hostHeader: HOST_HEADER,
    proxies: [
      { role: '#1', proc: p1 },
      { role: '#2', proc: p2 },
    ],
  };
}

export function directChain(): Chain {
  return { name: 'direct', host: ADDR.app.host, port: ADDR.app.port, hostHeader: HOST_HEADER, proxies: [] };
}

/** One request through the chain must answer 200 with the app's body, or the chain's numbers mean nothing. */
export async function checkChain(ch: Chain): Promise<void> {
  const r = await httpGet(ch.host, ch.port, '/', ch.hostHeader);
  if (r.status !== 200 || r.body !== APP_BODY) {
    throw new Error(`${ch.name}: GET / answered ${r.status} with ${JSON.stringify(r.body.slice(0, 200))}, not the app's 200`);
  }
}

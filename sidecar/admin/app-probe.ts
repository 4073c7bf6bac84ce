// The admin's /app-probe/<container>/<kind>: the kubelet's probe of the app,
// rewritten by the injector to the admin port (plaintext, never intercepted),
// carried out here on the app's port at the pod IP — from the proxy's uid,
// which iptables never redirects, so strict mTLS never refuses it. Only the
// probes the injector listed (WEFT_APP_PROBES) are served. The answer is
// what the kubelet judges: the app's HTTP status for HTTP probes, 200 or 503
// for TCP and gRPC (grpc.health.v1 SERVING) probes.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { AppProbe } from '../../api/index.js';

/** Longest a probe may take here (the kubelet's own timeoutSeconds usually ends it sooner). */
export const APP_PROBE_TIMEOUT_MS = 10_000;

function send(res: ServerResponse, status: number, body: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function probeHttp(p: Extract<AppProbe, { kind: 'http' }>, podIP: string, res: ServerResponse): void {
  const headers: Record<string, string> = { host: p.host ?? hostPort(podIP, p.port), 'user-agent': 'weft-app-probe', accept: '*/*' };
  for (const h of p.headers ?? []) headers[h.name.toLowerCase()] = h.value;
  const opts = { host: podIP, port: p.port, path: p.path, method: 'GET', headers, agent: false as const, timeout: APP_PROBE_TIMEOUT_MS };
  // Like the kubelet: HTTPS probes do not verify the app's certificate.
  const req = p.scheme === 'HTTPS' ? https.request({ ...opts, rejectUnauthorized: false }) : http.request(opts);
  req.on('response', (up: IncomingMessage) => {
    up.resume();
    send(res, up.statusCode ?? 502, `app answered ${up.statusCode}\n`);
  });
  req.on('timeout', () => req.destroy(new Error(`no answer in ${APP_PROBE_TIMEOUT_MS} ms`)));
  req.on('error', (e) => send(res, 503, `app probe failed: ${e.message}\n`));
  req.end();
}

function probeTcp(p: Extract<AppProbe, { kind: 'tcp' }>, podIP: string, res: ServerResponse): void {
  const s = net.connect({ host: podIP, port: p.port });
  s.setTimeout(APP_PROBE_TIMEOUT_MS, () => s.destroy(new Error(`no connection in ${APP_PROBE_TIMEOUT_MS} ms`)));
  s.once('connect', () => {
    s.destroy();
    send(res, 200, `connected to port ${p.port}\n`);
  });
  s.once('error', (e) => send(res, 503, `app port ${p.port}: ${e.message}\n`));
}

/** grpc.health.v1.HealthCheckRequest { string service = 1 }, length-prefixed. */
function healthRequest(service: string | undefined): Buffer {
  const svc = Buffer.from(service ?? '', 'utf8');
  const msg = svc.length ? Buffer.concat([Buffer.from([0x0a]), varint(svc.length), svc]) : Buffer.alloc(0);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(msg.length, 1);
  return Buffer.concat([head, msg]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** HealthCheckResponse { ServingStatus status = 1 }: 1 is SERVING. */
export function healthStatus(frame: Buffer): number | undefined {
  if (frame.length < 5) return undefined;
  const msg = frame.subarray(5, 5 + frame.readUInt32BE(1));
  if (msg.length >= 2 && msg[0] === 0x08) return msg[1]!;
  // An empty message: status left at its default, UNKNOWN (0).
  return msg.length === 0 ? 0 : undefined;
}

function probeGrpc(p: Extract<AppProbe, { kind: 'grpc' }>, podIP: string, res: ServerResponse): void {
  const session = http2.connect(`http://${hostPort(podIP, p.port)}`);
  const done = (status: number, body: string) => {
    send(res, status, body);
    session.close();
  };
  session.on('error', (e) => done(503, `gRPC health on port ${p.port}: ${e.message}\n`));
  session.setTimeout(APP_PROBE_TIMEOUT_MS, () => {
    done(503, `gRPC health on port ${p.port}: no answer in ${APP_PROBE_TIMEOUT_MS} ms\n`);
    session.destroy();
  });
  const stream = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
  const chunks: Buffer[] = [];
  let grpcStatus: string | undefined;
  stream.on('response', (h) => {
    if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
  });
  stream.on('trailers', (h) => {
    if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
  });
  stream.on('data', (c: Buffer) => chunks.push(c));
  stream.on('error', (e) => done(503, `gRPC health on port ${p.port}: ${e.message}\n`));
  stream.on('end', () => {
    const status = healthStatus(Buffer.concat(chunks));
    if (grpcStatus === '0' && status === 1) done(200, 'SERVING\n');
    else done(503, `gRPC health on port ${p.port}: grpc-status ${grpcStatus ?? '?'}, serving status ${status ?? '?'}\n`);
  });
  stream.end(healthRequest(p.service));
}

/** Serves one /app-probe/... request; false when the path is not a listed probe. */
export function serveAppProbe(req: IncomingMessage, res: ServerResponse, path: string, probes: Readonly<Record<string, AppProbe>>, podIP: string): boolean {
  const p = Object.prototype.hasOwnProperty.call(probes, path) ? probes[path] : undefined;
  if (!p) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    send(res, 405, 'GET only\n');
    return true;
  }
  if (p.kind === 'http') probeHttp(p, podIP, res);
  else if (p.kind === 'tcp') probeTcp(p, podIP, res);
  else probeGrpc(p, podIP, res);
  return true;
}

// The webhook's HTTPS edge: POST /mutate (namespaces labelled weft.io/inject=enabled)
// and POST /mutate-pod-opt-in (pods labelled weft.io/inject=enabled elsewhere).
import https from 'node:https';
import { readFileSync, watchFile, unwatchFile } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleReview, type Route } from './admission.js';
import type { InjectOptions } from './proxy-spec.js';

export const MAX_BODY_BYTES = 3 * 1024 * 1024; // the API server's own request limit is 3 MiB

/**
 * Limits of the webhook's HTTPS port (README "Limits"). The API server sends
 * one AdmissionReview per request and gives up after its webhook timeout
 * (10 s by default, 30 s at most), so a client slower than that is not it.
 */
export const WEBHOOK_LIMITS = {
  maxBodyBytes: MAX_BODY_BYTES,
  /** Whole request (head and body) within this, else 408 (node's requestTimeout). */
  requestTimeoutMs: 30_000,
  /** Request head within this (node's headersTimeout). */
  headersTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxHeaders: 100,
} as const;

/** weft_injector_limit_rejections_total{limit}: body_size, request_timeout, headers. */
export type WebhookLimit = 'body_size' | 'request_timeout' | 'headers';

export interface InjectorServerOptions extends InjectOptions {
  host?: string;
  port?: number;
  /** PEM cert (chain) and key, or files to read them from (re-read when they change). */
  certPem?: string;
  keyPem?: string;
  certFile?: string;
  keyFile?: string;
  log?: (line: string) => void;
  /** How often to look at certFile for a new certificate (default 10 s). */
  reloadIntervalMs?: number;
}

export interface InjectorServer {
  port: number;
  address: string;
  /** Requests refused by each limit (also GET /metrics). */
  limitRejections: Record<WebhookLimit, number>;
  close(): Promise<void>;
}

const ROUTES: Record<string, Route> = { '/mutate': 'namespace-enabled', '/mutate-pod-opt-in': 'pod-opt-in' };

export async function startInjector(o: InjectorServerOptions): Promise<InjectorServer> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} injector ${l}\n`));
  const load = () => ({
    cert: o.certPem ?? readFileSync(o.certFile ?? '', 'utf8'),
    key: o.keyPem ?? readFileSync(o.keyFile ?? '', 'utf8'),
  });
  const rejections: Record<WebhookLimit, number> = { body_size: 0, request_timeout: 0, headers: 0 };
  const server = https.createServer(
    {
      ...load(),
      minVersion: 'TLSv1.2',
      requestTimeout: WEBHOOK_LIMITS.requestTimeoutMs,
      headersTimeout: WEBHOOK_LIMITS.headersTimeoutMs,
      connectionsCheckingInterval: 1000,
      maxHeaderSize: WEBHOOK_LIMITS.maxHeaderBytes,
    },
    (req, res) => handle(req, res, o, log, rejections),
  );
  server.maxHeadersCount = WEBHOOK_LIMITS.maxHeaders;
  server.on('tlsClientError', (e) => log(`tls: ${e.message}`));
  // Malformed, oversized or too slow requests: answer what node found, then close (never a crash).
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    const [status, limit] =
      err.code === 'HPE_HEADER_OVERFLOW' ? ['431 Request Header Fields Too Large', 'headers' as const]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? ['408 Request Timeout', 'request_timeout' as const]
      : ['400 Bad Request', undefined];
    if (limit) rejections[limit]++;
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    else socket.destroy();
  });
  // A Secret-mounted cert is swapped in place by the kubelet: pick up the new one.
  const reload = () => {
    try {
      server.setSecureContext({ ...load(), minVersion: 'TLSv1.2' });
      log('reloaded serving certificate');
    } catch (e) {
      log(`keeping the old serving certificate: ${(e as Error).message}`);
    }
  };
  const watched = o.certFile && !o.certPem ? o.certFile : undefined;
  if (watched) watchFile(watched, { interval: o.reloadIntervalMs ?? 10_000 }, reload);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8443, o.host ?? '0.0.0.0', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    port: addr.port,
    address: addr.address,
    limitRejections: rejections,
    close: () =>
      new Promise<void>((resolve) => {
        if (watched) unwatchFile(watched, reload);
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req: IncomingMessage, res: ServerResponse, o: InjectorServerOptions, log: (l: string) => void, rejections: Record<WebhookLimit, number>): void {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (req.method === 'GET' && (path === '/ready' || path === '/live')) return send(res, 200, 'ok\n');
  if (req.method === 'GET' && path === '/metrics') {
    const lines = ['# HELP weft_injector_limit_rejections_total Webhook requests refused by a limit.', '# TYPE weft_injector_limit_rejections_total counter'];
    for (const [limit, n] of Object.entries(rejections)) lines.push(`weft_injector_limit_rejections_total{limit="${limit}"} ${n}`);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return void res.end(lines.join('\n') + '\n');
  }
  const route = ROUTES[path];
  if (!route) return send(res, 404, `no such endpoint ${path}; POST /mutate\n`);
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return send(res, 405, `${path} takes POST\n`);
  }
  const tooLarge = (): void => {
    rejections.body_size++;
    res.setHeader('connection', 'close');
    send(res, 413, `request body over ${MAX_BODY_BYTES} bytes\n`);
    // Stop reading: whatever else the client sends is not worth receiving.
    res.once('finish', () => req.destroy());
  };
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) return tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c: Buffer) => {
    if (tooBig) return;
    size += c.length;
    if (size > MAX_BODY_BYTES) {
      tooBig = true;
      chunks.length = 0;
      tooLarge();
      return;
    }
    chunks.push(c);
  });
  req.on('error', () => {});
  req.on('end', () => {
    if (tooBig) return;
    try {
      const out = handleReview(Buffer.concat(chunks), route, o);
      log(out.summary);
      send(res, out.httpStatus, out.review);
    } catch (e) {
      // handleReview returns errors as values; reaching here is a bug, and still not a crash.
      log(`bug: ${(e as Error).stack ?? String(e)}`);
      send(res, 500, 'internal error\n');
    }
  });
}

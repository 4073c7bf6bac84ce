// One request forwarded upstream with undici's dispatch() handler callbacks:
// no per-request streams, Promises or AbortSignals (perf-baseline.md: these
// are where Node proxies lose). Shared by the outbound hop and the inbound
// leg to the app.
import { ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { splice } from '../hop/opaque.js';
import type { Dispatcher } from 'undici';
import { editResponseHeaders, type CompiledHeaderEdits } from '../route/filters.js';
import type { AttemptGate } from '../retry/resilience.js';
import { classifyUpstreamError, CLIENT_GONE, sendProxyError, TimeoutError, PROXY_ERROR_HEADER } from '../errors/proxy-errors.js';

/** Removes what must not cross a hop (RFC 9110 7.6.1) or that undici refuses; returns whether the request has a body. */
export function prepareRequestHeaders(h: IncomingHttpHeaders): boolean {
  const hasBody = (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
  const conn = h.connection;
  if (conn !== undefined) {
    // Headers the client listed in Connection are hop-by-hop too.
    if (conn.indexOf(',') >= 0 || (conn !== 'keep-alive' && conn !== 'close' && conn !== 'Keep-Alive' && conn !== 'Close')) {
      for (const t of conn.split(',')) {
        const n = t.trim().toLowerCase();
        if (n && n !== 'close' && n !== 'keep-alive' && n !== 'host') delete h[n];
      }
    }
    delete h.connection;
  }
  if (h['keep-alive'] !== undefined) delete h['keep-alive'];
  if (h['transfer-encoding'] !== undefined) delete h['transfer-encoding'];
  if (h['proxy-connection'] !== undefined) delete h['proxy-connection'];
  if (h.upgrade !== undefined) delete h.upgrade;
  if (h.expect !== undefined) delete h.expect;
  if (h.te !== undefined) delete h.te;
  if (h.trailer !== undefined) delete h.trailer;
  return hasBody;
}

function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 10: {
      const n = name.toLowerCase();
      return n === 'connection' || n === 'keep-alive';
    }
    case 17:
      return name.toLowerCase() === 'transfer-encoding';
    case 16:
      return name.toLowerCase() === 'proxy-connection';
    case 7: {
      const n = name.toLowerCase();
      return n === 'upgrade' || n === 'trailer';
    }
    default:
      return false;
  }
}

/** A response header's value from undici's raw list (name lower-case), or undefined. */
function rawHeader(raw: Buffer[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.length === name.length && n.toString('latin1').toLowerCase() === name) return raw[i + 1]!.toString('latin1');
  }
  return undefined;
}

export interface ForwardResult {
  status: number;
  /** Set when the mesh produced the response (upstream failure, timeout). */
  proxyError: string | undefined;
}

export type ForwardDone = (r: ForwardResult) => void;

/**
 * The undici handler of one forwarded request. Writes the upstream's
 * response into `res` as it arrives, with backpressure both ways.
 */
export class ForwardHandler implements Dispatcher.DispatchHandler {
  protected abortFn: ((err?: Error) => void) | undefined;
  private resumeFn: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timedOut: TimeoutError | undefined;
  protected finished = false;
  protected status = 0;
  /** Resilience: asked before a try's outcome is written; a dropped try ends quietly (the router retries). */
  gate: AttemptGate | undefined = undefined;
  /** The request has a body (written after connect: a failure after connect may have sent part of it). */
  hasBody = false;
  private connected = false;
  private sent = false;
  /** True once the sidecar drains: the answer carries `Connection: close` (the caller reconnects elsewhere). */
  draining: (() => boolean) | undefined = undefined;
  constructor(
    protected readonly res: ServerResponse,
    private readonly responseEdits: CompiledHeaderEdits[] | undefined,
    private readonly done: ForwardDone,
    timeoutMs: number,
    timeoutKind: 'request' | 'backendRequest',
  ) {
    res.once('close', this.onClientClose);
    if (timeoutMs > 0) this.timer = setTimeout(this.onTimeout, timeoutMs, timeoutMs, timeoutKind);
  }

  /** Ends this try without answering: the gate decided to try again. */
  private drop(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.res.removeListener('close', this.onClientClose);
    this.abortFn?.(new Error('tried again elsewhere'));
  }

  /** Any byte of the request may have reached the peer. */
  private get requestSent(): boolean {
    return this.sent || (this.hasBody && this.connected);
  }

  onRequestSent(): void {
    this.sent = true;
  }

  onBodySent(): void {
    this.sent = true;
  }

  private readonly onClientClose = (): void => {
    if (!this.finished) {
      // Finish first: the abort makes undici call onError synchronously, and
      // a caller that went away is not an upstream failure.
      this.finish({ status: this.status || 499, proxyError: CLIENT_GONE });
      this.abortFn?.(new Error('client closed the connection'));
    }
  };

  private readonly onTimeout = (ms: number, kind: 'request' | 'backendRequest'): void => {
    this.timer = undefined;
    if (this.finished) return;
    // A try's own timeout (backendRequest, per-try): the gate may try again.
    if (this.gate && kind === 'backendRequest' && this.status === 0 && !this.gate.onError({ timedOut: true, requestSent: true })) {
      this.drop();
      return;
    }
    this.timedOut = new TimeoutError(kind, ms);
    // Answer 504 now, then cancel the upstream request (spec: the backend
    // request is cancelled); its onError finds the request finished.
    const status = sendProxyError(this.res, 504, this.timedOut.message);
    this.finish({ status, proxyError: this.timedOut.message });
    this.abortFn?.(this.timedOut);
  };

  private readonly onDrain = (): void => {
    this.resumeFn?.();
  };

  protected finish(r: ForwardResult): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.res.removeListener('close', this.onClientClose);
    this.done(r);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    this.connected = true;
    if (this.finished) abort(this.timedOut ?? new Error('request no longer wanted'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.finished) return false;
    if (statusCode < 200) return true; // 1xx: node answers 100-continue itself
    if (this.gate && !this.gate.onHead(statusCode, (n) => rawHeader(rawHeaders, n))) {
      this.drop();
      return false;
    }
    this.status = statusCode;
    this.resumeFn = resume;
    let flat: string[] = [];
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = rawHeaders[i]!.toString('latin1');
      if (isHopByHop(name)) continue;
      flat.push(name, rawHeaders[i + 1]!.toString('latin1'));
    }
    const edits = this.responseEdits;
    if (edits) for (let i = 0; i < edits.length; i++) flat = editResponseHeaders(flat, edits[i]!);
    if (this.draining?.()) this.res.setHeader('connection', 'close');
    if (statusText) this.res.writeHead(statusCode, statusText, flat);
    else this.res.writeHead(statusCode, flat);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.finished) return false;
    const ok = this.res.write(chunk);
    if (!ok) this.res.once('drain', this.onDrain);
    return ok;
  }

  onComplete(_trailers: string[] | null): void {
    if (this.finished) return;
    this.res.end();
    this.finish({ status: this.status, proxyError: undefined });
  }

  onError(err: Error): void {
    if (this.finished) return;
    if (this.gate && this.status === 0 && !this.res.headersSent) {
      const e = err as Error & { code?: string };
      if (!this.gate.onError({ code: e.code, message: e.message, requestSent: this.requestSent })) {
        this.drop();
        return;
      }
    }
    const { status, reason } = classifyUpstreamError(err);
    const written = sendProxyError(this.res, status, reason);
    this.finish({ status: this.res.headersSent && this.status ? this.status : written, proxyError: reason });
  }
}

/**
 * An upgrade (WebSocket, h2c upgrade...) forwarded as a request; on 101 the
 * two sockets become an opaque tunnel. Any other answer is a normal response.
 */
export class UpgradeHandler extends ForwardHandler {
  constructor(
    res: ServerResponse,
    done: ForwardDone,
    private readonly client: Socket,
    private readonly head: Buffer,
  ) {
    super(res, undefined, done, 0, 'request');
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, upstream: Duplex): void {
    if (this.finished) {
      upstream.destroy();
      return;
    }
    let head = `HTTP/1.1 ${statusCode} Switching Protocols\r\n`;
    const raw = rawHeaders ?? [];
    for (let i = 0; i < raw.length; i += 2) head += `${raw[i]!.toString()}: ${raw[i + 1]!.toString()}\r\n`;
    head += '\r\n';
    this.status = statusCode;
    this.finish({ status: statusCode, proxyError: undefined });
    this.res.detachSocket(this.client);
    this.client.write(head);
    if (this.head.length) upstream.write(this.head);
    splice(this.client, upstream as Socket);
  }
}

const kUpgrade = Symbol('weft.upgrade');
interface UpgradeInfo {
  socket: Socket;
  head: Buffer;
  protocol: string;
}

/**
 * For node's 'upgrade' event: a ServerResponse on the raw socket, so the
 * routing code answers errors the usual way, and the upgrade details on the
 * request for the forwarding step (upgrades become opaque tunnels).
 */
export function upgradeResponse(req: IncomingMessage, socket: Socket, head: Buffer): ServerResponse {
  (req as IncomingMessage & { [kUpgrade]?: UpgradeInfo })[kUpgrade] = { socket, head, protocol: req.headers.upgrade ?? 'websocket' };
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  socket.on('error', () => {});
  res.once('finish', () => {
    if (res.socket) socket.end();
  });
  return res;
}

export function upgradeOf(req: IncomingMessage): UpgradeInfo | undefined {
  return (req as IncomingMessage & { [kUpgrade]?: UpgradeInfo })[kUpgrade];
}

/** Discards a mirrored request's response (spec: responses from the mirror are ignored). */
export const DISCARD_HANDLER: Dispatcher.DispatchHandler = {
  onConnect() {},
  onHeaders() {
    return true;
  },
  onData() {
    return true;
  },
  onComplete() {},
  onError() {},
};

/**
 * A copy of the request body for a mirror. The mirror must never slow the
 * original, so when it falls behind by more than `limit` bytes it is cut.
 */
export function teeBody(req: IncomingMessage, limit = 1 << 20): PassThrough {
  const copy = new PassThrough();
  let dead = false;
  req.on('data', (c: Buffer) => {
    if (dead) return;
    if (copy.writableLength > limit) {
      dead = true;
      copy.destroy(new Error('mirror fell behind'));
      return;
    }
    copy.write(c);
  });
  req.once('end', () => {
    if (!dead) copy.end();
  });
  req.once('error', () => copy.destroy());
  copy.on('error', () => {});
  return copy;
}

export { PROXY_ERROR_HEADER };

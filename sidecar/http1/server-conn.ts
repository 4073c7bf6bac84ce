// The server side of an HTTP/1.1 connection on a raw net or tls socket.
//
// Heads are parsed from the socket's own reads (one Buffer per head, a view
// when the head came in one read); the request body is handed on in its own
// framing, as the bytes it came in (chunked stays chunked, validated as it
// passes). Responses are written as bytes too, corked per event-loop turn.
// Requests are handled one at a time: bytes of a pipelined next request wait
// (the socket paused) until the current response is complete, so responses
// can never be reordered. Header and keep-alive idle timeouts sit on one
// TimerWheel shared by every connection of a listener.
import type { Socket } from 'node:net';
import { corkedWrite, type Corkable } from './cork.js';
import { ChunkedDecoder } from './body-chunked.js';
import { DEFAULT_LIMITS, HeadReader, isHeadError, type Head, type HeadLimits } from './parser.js';
import { proxyErrorLine, simpleResponse } from './head-write.js';
import { TimerWheel, type WheelEntry } from './timer-wheel.js';

export interface ServerHandler {
  /** A request head (bytes + offsets). Answer with conn.write()/conn.endResponse() now or later. */
  onRequest(conn: ServerConn, head: Head): void;
  /** Request body bytes as they came (chunked framing included), in order. */
  onRequestBody(conn: ServerConn, chunk: Buffer): void;
  /** The request body is complete (called at once for a request without a body). */
  onRequestEnd(conn: ServerConn): void;
  /** The request broke off (client gone, body framing invalid, timeout) after onRequest: abandon it. */
  onRequestAbort(conn: ServerConn, reason: string): void;
  /** A head was refused with 400/431/505 before anything was handed on (for metrics). */
  onReject?(conn: ServerConn, status: number, code: string, reason: string): void;
  /** The socket can take more after write() returned false. */
  onDrain?(conn: ServerConn): void;
}

export interface ServerOptions {
  limits?: HeadLimits;
  /** Most ms between the first byte of a head and its end. Default 10 s. */
  headersTimeoutMs?: number;
  /** Most ms a keep-alive connection waits for its next request. Default 60 s. */
  idleTimeoutMs?: number;
  wheel?: TimerWheel;
  /** True once the sidecar drains: each response is the connection's last (the caller reconnects elsewhere). */
  draining?: () => boolean;
}

const enum St {
  Head,
  BodyLength,
  BodyChunked,
  /** The request is read; waiting for the response to finish. */
  Wait,
  Tunnel,
  Closed,
}

const sharedWheel = new TimerWheel();
const NOT_DRAINING = (): boolean => false;

export class ServerConn implements Corkable, WheelEntry {
  readonly socket: Socket;
  corked = false;
  wheelNext: WheelEntry | null = null;
  wheelPrev: WheelEntry | null = null;
  wheelDeadline = 0;
  wheelSlot = 0;
  /** The request being handled (null between requests). */
  head: Head | null = null;
  /**
   * Free for the handler: e.g. the upstream connection serving this request.
   * Per request: cleared when the exchange is over, so a keep-alive
   * connection waiting for its next request holds nothing of the last one.
   */
  data: unknown = null;
  private readonly handler: ServerHandler;
  private readonly reader: HeadReader;
  private chunked: ChunkedDecoder | null = null;
  private st = St.Head;
  private remaining = 0;
  private held: Buffer | null = null;
  private reqDone = false;
  private resDone = false;
  private resStarted = false;
  private closeAfter = false;
  private readonly wheel: TimerWheel;
  private readonly headersTimeout: number;
  private readonly idleTimeout: number;
  /** See ServerOptions.draining; the relay adds Connection: close to the answer when it is true. */
  readonly draining: () => boolean;
  /** Requests completed on this connection. */
  served = 0;

  constructor(socket: Socket, handler: ServerHandler, opts: ServerOptions = {}) {
    this.socket = socket;
    this.handler = handler;
    this.reader = new HeadReader(true, opts.limits ?? DEFAULT_LIMITS);
    this.wheel = opts.wheel ?? sharedWheel;
    this.headersTimeout = opts.headersTimeoutMs ?? 10_000;
    this.idleTimeout = opts.idleTimeoutMs ?? 60_000;
    this.draining = opts.draining ?? NOT_DRAINING;
    socket.setNoDelay(true);
    socket.on('data', this.dataFn);
    socket.on('end', this.endFn);
    socket.on('error', this.errorFn);
    socket.on('close', this.closeFn);
    socket.on('drain', this.drainFn);
    this.wheel.schedule(this, Date.now() + this.idleTimeout);
  }

  private readonly dataFn = (b: Buffer): void => {
    try {
      this.onData(b);
    } catch {
      // A fault while handling this connection's bytes ends this connection, never the process.
      this.destroy();
    }
  };
  private readonly endFn = (): void => this.onEnd();
  private readonly errorFn = (): void => this.onGone('client reset');
  private readonly closeFn = (): void => this.onGone('client closed');
  private readonly drainFn = (): void => this.handler.onDrain?.(this);
  /** The read being processed and where the current head ended in it (for detach()). */
  private cur: Buffer | null = null;
  private curOff = 0;
  private detached = false;

  /** Bytes read before this connection was made (protocol detection): processed as if just read. */
  feed(buf: Buffer | null): void {
    if (buf && buf.length) this.onData(buf);
  }

  /**
   * Only inside onRequest: the connection stops being this engine's. Returns
   * the bytes of the connection from the current head's first byte on (the
   * head and whatever was read after it); the socket's listeners are removed
   * and nothing more is read or written here — the caller hands the socket on.
   */
  detach(): Buffer {
    const head = this.head;
    const cur = this.cur;
    if (!head || !cur || this.detached) throw new Error('detach() outside onRequest');
    this.detached = true;
    this.st = St.Closed;
    this.wheel.cancel(this);
    const s = this.socket;
    s.removeListener('data', this.dataFn);
    s.removeListener('end', this.endFn);
    s.removeListener('error', this.errorFn);
    s.removeListener('close', this.closeFn);
    s.removeListener('drain', this.drainFn);
    const rest = cur.subarray(this.curOff);
    const held = this.held;
    this.held = null;
    this.head = null;
    const parts = [head.buf];
    if (rest.length) parts.push(rest);
    if (held) parts.push(held);
    return parts.length === 1 ? head.buf : Buffer.concat(parts);
  }

  /** Write response bytes (head or body, as the client should see them). Returns false when the socket is full. */
  write(buf: Buffer | string): boolean {
    if (this.st === St.Closed) return false;
    this.resStarted = true;
    return corkedWrite(this, buf);
  }

  /** The response is complete. keepAlive false (or a request that asked for close) closes the connection after it. */
  endResponse(keepAlive = true): void {
    if (this.st === St.Closed || this.resDone) return;
    this.resDone = true;
    // An answer that ends before its request body was read (a mesh-made 404 to a POST, a 413, or
    // Expect: 100-continue never granted) cannot know where the next request starts: close.
    if (!keepAlive || !this.head?.keepAlive || this.draining() || !this.reqDone) this.closeAfter = true;
    if (this.closeAfter) {
      // Close once the response is out; bytes of a pipelined next request are dropped (RFC 9112 §9.6).
      this.st = St.Closed;
      this.wheel.cancel(this);
      this.socket.end();
      return;
    }
    if (this.reqDone) this.next();
  }

  /** After a 101 or a 2xx to CONNECT: from now on bytes flow both ways unparsed (onRequestBody until the end). */
  startTunnel(): void {
    this.st = St.Tunnel;
    this.wheel.cancel(this);
    const h = this.held;
    this.held = null;
    if (h) this.handler.onRequestBody(this, h);
    this.socket.resume();
  }

  /** Answer with a mesh-made response (e.g. 400, 502) and, if close, close the connection. */
  respond(status: number, body: string, fields: readonly string[] = [], close = false): void {
    this.write(simpleResponse(status, body, fields, close || !this.head?.keepAlive || this.draining()));
    this.endResponse(!close);
  }

  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    if (this.held === null) this.socket.resume();
  }

  destroy(): void {
    this.st = St.Closed;
    this.wheel.cancel(this);
    this.socket.destroy();
  }

  onWheelExpire(): void {
    if (this.st === St.Closed) return;
    if (this.reader.pending && !this.resStarted) {
      // A head that did not arrive in time: 408 (RFC 9110 §15.5.9), then close.
      this.st = St.Closed;
      this.socket.end(simpleResponse(408, 'request header timeout\n', [proxyErrorLine('request header timeout')], true));
      return;
    }
    this.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.st === St.Wait) {
      this.held = this.held ? Buffer.concat([this.held, chunk]) : chunk;
      this.socket.pause();
      return;
    }
    this.process(chunk, 0);
  }

  private process(chunk: Buffer, off: number): void {
    const len = chunk.length;
    while (off < len) {
      switch (this.st) {
        case St.Head: {
          const wasPending = this.reader.pending;
          const got = this.reader.feed(chunk, off);
          if (!got) {
            if (!wasPending) this.wheel.schedule(this, Date.now() + this.headersTimeout);
            return;
          }
          const head = got.head;
          if (isHeadError(head)) {
            this.reject(head.status, head.code, head.reason);
            return;
          }
          off += got.used;
          this.wheel.cancel(this);
          this.head = head;
          this.cur = chunk;
          this.curOff = off;
          this.reqDone = this.resDone = this.resStarted = false;
          if (head.framing === 'chunked') {
            // Validate what came with the head before handing anything on: a
            // malformed body in the same read is refused with nothing forwarded.
            const d = (this.chunked ??= new ChunkedDecoder());
            d.reset();
            const end = d.feed(chunk, off, len);
            if (end < 0) {
              this.reject(400, d.code, `chunked body: ${d.error}`);
              return;
            }
            this.st = St.BodyChunked;
            this.handler.onRequest(this, head);
            this.cur = null;
            if (this.detached) return;
            if (end > off) this.handler.onRequestBody(this, chunk.subarray(off, end));
            off = end;
            if (d.done) this.requestDone(chunk, off);
            if (this.st !== St.BodyChunked) return;
            continue;
          }
          if (head.framing === 'length') {
            this.st = St.BodyLength;
            this.remaining = head.contentLength;
            this.handler.onRequest(this, head);
            this.cur = null;
            if (this.detached) return;
            continue;
          }
          // none, or tunnel (CONNECT): no body until the answer says so. The
          // request is complete before the handler sees it, so an answer made
          // inside onRequest (a mesh-made 404) keeps the connection.
          this.reqDone = true;
          this.st = St.Wait;
          this.handler.onRequest(this, head);
          this.cur = null;
          if (this.detached || (this.st as St) === St.Closed) return;
          this.handler.onRequestEnd(this);
          if ((this.st as St) === St.Head) continue; // answered already: on to the next request in this read
          if ((this.st as St) === St.Wait && off < len) {
            this.held = this.held ? Buffer.concat([this.held, chunk.subarray(off)]) : chunk.subarray(off);
            this.socket.pause();
          }
          return;
        }
        case St.BodyLength: {
          const n = Math.min(this.remaining, len - off);
          this.remaining -= n;
          this.handler.onRequestBody(this, off === 0 && n === len ? chunk : chunk.subarray(off, off + n));
          off += n;
          if (this.remaining === 0) {
            this.requestDone(chunk, off);
            return;
          }
          continue;
        }
        case St.BodyChunked: {
          const d = this.chunked!;
          const end = d.feed(chunk, off, len);
          if (end < 0) {
            this.abort(`chunked body: ${d.error}`, 400);
            return;
          }
          if (end > off) this.handler.onRequestBody(this, off === 0 && end === len ? chunk : chunk.subarray(off, end));
          off = end;
          if (d.done) {
            this.requestDone(chunk, off);
            return;
          }
          continue;
        }
        case St.Tunnel:
          this.handler.onRequestBody(this, off === 0 ? chunk : chunk.subarray(off));
          return;
        case St.Wait:
          this.held = this.held ? Buffer.concat([this.held, chunk.subarray(off)]) : chunk.subarray(off);
          this.socket.pause();
          return;
        default:
          return;
      }
    }
  }

  /** The request is read; bytes from chunk[off..] belong to the next request. */
  private requestDone(chunk: Buffer, off: number): void {
    this.reqDone = true;
    this.st = St.Wait;
    if (off < chunk.length) {
      this.held = chunk.subarray(off);
      this.socket.pause();
    }
    this.handler.onRequestEnd(this);
    if (this.resDone && this.st === St.Wait) this.next();
  }

  private depth = 0;

  private next(): void {
    this.served++;
    this.head = null;
    // An idle connection must not keep its last request's objects alive: held for
    // the whole idle time they outlive every scavenge and end up as old-space garbage.
    this.data = null;
    this.st = St.Head;
    this.wheel.schedule(this, Date.now() + this.idleTimeout);
    if (this.held === null) return;
    // Pipelined requests answered synchronously would recurse once per request; past a few, go on in a fresh turn.
    if (this.depth > 8) {
      setImmediate(() => this.drainHeld());
      return;
    }
    this.depth++;
    this.drainHeld();
    this.depth--;
  }

  private drainHeld(): void {
    const h = this.held;
    if (h === null || this.st !== St.Head) return;
    this.held = null;
    this.process(h, 0);
    if (this.held === null && (this.st as St) !== St.Closed) this.socket.resume();
  }

  private reject(status: number, code: string, reason: string): void {
    this.handler.onReject?.(this, status, code, reason);
    this.st = St.Closed;
    this.wheel.cancel(this);
    // Nothing was handed on; answer and close (RFC 9112 §11.2: a message with bad framing must not be processed further).
    this.socket.end(simpleResponse(status, `${reason}\n`, [proxyErrorLine(`malformed request: ${reason}`)], true));
  }

  private abort(reason: string, status: number): void {
    const started = this.resStarted;
    this.handler.onRequestAbort(this, reason);
    this.st = St.Closed;
    this.wheel.cancel(this);
    if (!started && status) this.socket.end(simpleResponse(status, `${reason}\n`, [proxyErrorLine(`malformed request: ${reason}`)], true));
    else this.socket.destroy();
  }

  private onEnd(): void {
    // The client half-closed: a request in flight may still be answered; a half-read one is abandoned.
    if (this.st === St.BodyLength || this.st === St.BodyChunked) this.abort('client closed mid-body', 0);
    else if (this.st === St.Tunnel) this.handler.onRequestEnd(this);
    else if (this.st === St.Head) this.destroy();
  }

  private onGone(reason: string): void {
    if (this.st === St.Closed) return;
    const inFlight = this.head !== null && !(this.reqDone && this.resDone);
    this.st = St.Closed;
    this.wheel.cancel(this);
    if (inFlight) this.handler.onRequestAbort(this, reason);
  }
}

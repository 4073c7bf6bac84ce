// The client side of an HTTP/1.1 connection on a raw net or tls socket: one
// request at a time. The request head goes out as bytes (forwardHead), the
// body as the bytes the caller relays; the response head is parsed from the
// socket's reads and the body handed on in its own framing, unparsed except
// for finding where it ends (chunked validated, never re-chunked).
import type { Socket } from 'node:net';
import { corkedWrite, type Corkable } from './cork.js';
import { ChunkedDecoder } from './body-chunked.js';
import { DEFAULT_LIMITS, HeadReader, isHeadError, type Head, type HeadLimits } from './parser.js';
import type { WheelEntry } from './timer-wheel.js';

export interface ClientHandler {
  /** A response head; 1xx heads (100 Continue, 103) come first and the final one follows. */
  onResponseHead(conn: ClientConn, head: Head): void;
  onResponseBody(conn: ClientConn, chunk: Buffer): void;
  /** The response is complete. */
  onResponseEnd(conn: ClientConn): void;
  /**
   * The exchange failed: connect error, reset, invalid response, close before
   * the end. `retryable` is true when nothing of a response arrived on a
   * reused connection (the peer closed an idle connection as we wrote).
   */
  onResponseError(conn: ClientConn, reason: string, retryable: boolean): void;
  /** The socket can take more after write() returned false. */
  onDrain?(conn: ClientConn): void;
}

const enum St {
  Idle,
  Head,
  BodyLength,
  BodyChunked,
  BodyClose,
  Tunnel,
  Closed,
}

export class ClientConn implements Corkable, WheelEntry {
  readonly socket: Socket;
  corked = false;
  wheelNext: WheelEntry | null = null;
  wheelPrev: WheelEntry | null = null;
  wheelDeadline = 0;
  wheelSlot = 0;
  /** Set by the pool: where this connection goes back to. */
  release: ((c: ClientConn) => void) | null = null;
  onIdleClose: ((c: ClientConn) => void) | null = null;
  handler: ClientHandler | null = null;
  /** Requests sent on this connection. */
  used = 0;
  connected = false;
  /** The socket's last error (connect refused, TLS, identity): for classifying a failed exchange. */
  lastError: (Error & { code?: string }) | undefined = undefined;
  private readonly reader: HeadReader;
  private chunked: ChunkedDecoder | null = null;
  private st = St.Idle;
  private remaining = 0;
  private keepAlive = true;
  private gotBytes = false;
  private reqDone = true;
  private resDone = true;

  constructor(socket: Socket, limits: HeadLimits = DEFAULT_LIMITS, connected = false) {
    this.socket = socket;
    this.connected = connected;
    this.reader = new HeadReader(false, limits);
    socket.setNoDelay(true);
    socket.on('data', (b: Buffer) => this.onData(b));
    socket.on('end', () => this.onEnd());
    socket.on('error', (e: Error) => {
      this.lastError = e;
      this.onGone(e.message);
    });
    socket.on('close', () => this.onGone('upstream closed'));
    socket.on('drain', () => this.handler?.onDrain?.(this));
  }

  get idle(): boolean {
    return this.st === St.Idle;
  }
  get closed(): boolean {
    return this.st === St.Closed;
  }

  /** Send a request head (bytes ready for the wire) for `method`; the body follows with write(). */
  request(head: Buffer, method: string, handler: ClientHandler, hasBody: boolean): boolean {
    this.handler = handler;
    this.st = St.Head;
    this.used++;
    this.gotBytes = false;
    this.reqDone = !hasBody;
    this.resDone = false;
    this.keepAlive = true;
    this.reader.reset();
    this.reader.requestMethod = method;
    return corkedWrite(this, head);
  }

  /** Request body bytes, framed as the head says. */
  write(chunk: Buffer): boolean {
    if (this.st === St.Closed) return false;
    return corkedWrite(this, chunk);
  }

  /** The request body is complete. */
  endRequest(): void {
    this.reqDone = true;
    if (this.resDone) this.finish();
  }

  /** Give up the exchange: the connection cannot be reused. */
  destroy(): void {
    this.st = St.Closed;
    this.handler = null;
    this.socket.destroy();
  }

  /** After a 101 (or 2xx to CONNECT) was relayed: bytes flow unparsed both ways. */
  startTunnel(): void {
    this.st = St.Tunnel;
  }

  /** Close half of a tunnel. */
  end(): void {
    this.socket.end();
  }

  onWheelExpire(): void {
    if (this.st !== St.Idle) return;
    this.onIdleClose?.(this);
    this.destroy();
  }

  private onData(chunk: Buffer): void {
    this.gotBytes = true;
    let off = 0;
    const len = chunk.length;
    while (off < len) {
      const h = this.handler;
      switch (this.st) {
        case St.Head: {
          const got = this.reader.feed(chunk, off);
          if (!got) return;
          const head = got.head;
          if (isHeadError(head)) return this.fail(`invalid response from upstream: ${head.reason}`);
          off += got.used;
          if (head.status < 200 && head.status !== 101) {
            h?.onResponseHead(this, head); // 100 Continue, 103 Early Hints: the final head follows
            continue;
          }
          this.keepAlive = head.keepAlive;
          if (head.framing === 'length') {
            this.st = St.BodyLength;
            this.remaining = head.contentLength;
            h?.onResponseHead(this, head);
          } else if (head.framing === 'chunked') {
            this.st = St.BodyChunked;
            (this.chunked ??= new ChunkedDecoder()).reset();
            h?.onResponseHead(this, head);
          } else if (head.framing === 'close') {
            this.st = St.BodyClose;
            this.keepAlive = false;
            h?.onResponseHead(this, head);
          } else if (head.framing === 'tunnel') {
            this.st = St.Tunnel;
            this.keepAlive = false;
            h?.onResponseHead(this, head);
          } else {
            h?.onResponseHead(this, head);
            this.responseDone();
            if (off < len) return this.fail('bytes after a response without a body');
            return;
          }
          continue;
        }
        case St.BodyLength: {
          const n = Math.min(this.remaining, len - off);
          this.remaining -= n;
          h?.onResponseBody(this, off === 0 && n === len ? chunk : chunk.subarray(off, off + n));
          off += n;
          if (this.remaining === 0) {
            this.responseDone();
            if (off < len) return this.fail('bytes after the response body');
            return;
          }
          continue;
        }
        case St.BodyChunked: {
          const d = this.chunked!;
          const end = d.feed(chunk, off, len);
          if (end < 0) return this.fail(`invalid chunked response body: ${d.error}`);
          if (end > off) h?.onResponseBody(this, off === 0 && end === len ? chunk : chunk.subarray(off, end));
          off = end;
          if (d.done) {
            this.responseDone();
            if (off < len) return this.fail('bytes after the response body');
            return;
          }
          continue;
        }
        case St.BodyClose:
        case St.Tunnel:
          h?.onResponseBody(this, off === 0 ? chunk : chunk.subarray(off));
          return;
        case St.Idle:
          // A byte from an idle connection is a protocol error (no request is outstanding).
          this.destroy();
          return;
        default:
          return;
      }
    }
  }

  private responseDone(): void {
    this.resDone = true;
    const h = this.handler;
    if (!this.reqDone) {
      // Answered before the request body was sent: the rest will not be read; do not reuse.
      this.keepAlive = false;
    }
    h?.onResponseEnd(this);
    if (this.reqDone) this.finish();
    else this.st = St.Idle;
  }

  private finish(): void {
    if (this.st === St.Closed) return;
    this.handler = null;
    if (!this.keepAlive || !this.release) {
      this.destroy();
      return;
    }
    this.st = St.Idle;
    this.release(this);
  }

  private fail(reason: string): void {
    const h = this.handler;
    this.destroy();
    h?.onResponseError(this, reason, false);
  }

  private onEnd(): void {
    if (this.st === St.BodyClose || this.st === St.Tunnel) {
      const h = this.handler;
      this.st = St.Closed;
      this.handler = null;
      h?.onResponseEnd(this);
      this.socket.end();
      return;
    }
    this.onGone('upstream closed the connection');
  }

  private onGone(reason: string): void {
    if (this.st === St.Closed) return;
    const was = this.st;
    const h = this.handler;
    this.st = St.Closed;
    this.handler = null;
    this.socket.destroy();
    if (was === St.Idle) {
      this.onIdleClose?.(this);
      if (h && !this.resDone) h.onResponseError(this, reason, false);
      return;
    }
    if (was === St.BodyClose || was === St.Tunnel) {
      h?.onResponseEnd(this);
      return;
    }
    h?.onResponseError(this, reason, !this.gotBytes && this.used > 1 && was === St.Head);
  }
}

// weft-mux/1, the weft-to-weft hop measured in bench/h1-engine.ts: HTTP/1.1 exchanges
// multiplexed over ONE mTLS connection (ALPN "weft-mux/1"). Each request's
// head (its HTTP/1.1 bytes, hop-by-hop fields removed) and body chunks (in
// their own framing) travel as frames; every write of one event-loop turn is
// coalesced into one TLS write (corkedWrite). Per-stream flow control: a
// sender may have at most WINDOW bytes of DATA unacknowledged per stream; the
// receiver grants more once it has written them on (its socket not full), in
// batches (consumed()): a small exchange costs no WINDOW_UPDATE frame at all.
//
// frame = length u32 | type u8 | flags u8 | stream u32 | payload
// HEAD (request or response head bytes; flag CLOSE: the response is
// close-delimited), DATA, END (this direction is complete), RST, WINDOW (u32).
// Upgrades and CONNECT are not carried yet (the HEAD is refused with RST).
//
// The edge offers only weft-mux/1; a peer sidecar keeps offering h2 and
// http/1.1 too, so a caller that lacks weft-mux/1 still connects.
import tls from 'node:tls';
import { corkedWrite, type Corkable } from './cork.js';
import { HeadReader, isHeadError, type Head } from './parser.js';
import { forwardHead, proxyErrorLine } from './head-write.js';
import type { ClientConn, ClientHandler } from './client-conn.js';
import type { Pool } from './pool.js';
import type { ServerConn, ServerHandler } from './server-conn.js';
import { CLIENT_GONE } from '../errors/proxy-errors.js';

export const ALPN_MUX = 'weft-mux/1';
export const HEAD = 1;
export const DATA = 2;
export const END = 3;
export const RST = 4;
export const WINDOW_UPDATE = 5;
export const F_CLOSE = 1;
export const WINDOW = 256 * 1024;
const HDR = 10;
const EMPTY = Buffer.alloc(0);

export type FrameSink = (type: number, flags: number, id: number, payload: Buffer) => void;

/** No frame weft sends comes near this (heads are bounded by the head limit, DATA by the window); a larger length ends the connection. */
export const MAX_FRAME = 16 * 1024 * 1024;

/** Reassembles frames from a socket's reads; throws on a frame longer than MAX_FRAME (the caller closes the connection). */
export class FrameReader {
  private acc: Buffer | null = null;
  constructor(private readonly sink: FrameSink) {}
  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.acc) {
      buf = Buffer.concat([this.acc, chunk]);
      this.acc = null;
    }
    let off = 0;
    while (buf.length - off >= HDR) {
      const len = buf.readUInt32BE(off);
      if (len > MAX_FRAME) throw new Error(`weft-mux frame of ${len} bytes (limit ${MAX_FRAME})`);
      if (buf.length - off < HDR + len) break;
      const type = buf[off + 4]!;
      const flags = buf[off + 5]!;
      const id = buf.readUInt32BE(off + 6);
      this.sink(type, flags, id, buf.subarray(off + HDR, off + HDR + len));
      off += HDR + len;
    }
    if (off < buf.length) this.acc = Buffer.from(buf.subarray(off));
  }
}

export class MuxConn implements Corkable {
  corked = false;
  constructor(readonly socket: tls.TLSSocket) {}
  send(type: number, flags: number, id: number, payload: Buffer = EMPTY): void {
    const h = Buffer.allocUnsafe(HDR);
    h.writeUInt32BE(payload.length, 0);
    h[4] = type;
    h[5] = flags;
    h.writeUInt32BE(id, 6);
    corkedWrite(this, h);
    if (payload.length) corkedWrite(this, payload);
  }
  window(id: number, n: number): void {
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(n, 0);
    this.send(WINDOW_UPDATE, 0, id, p);
  }
}

/** Credit owed back to a sender is granted once this much is owed (or when a paused writer drains). */
export const GRANT_BATCH = WINDOW / 4;

/**
 * A stream's DATA of n bytes was written on: owe it back to the sender and
 * grant once GRANT_BATCH is owed. Granting every DATA frame cost each
 * exchange one more TLS record each way (a 36-byte WINDOW_UPDATE after the
 * response, one more read and wake-up on the peer) for credit nobody would
 * use once END followed. The sender keeps at least WINDOW - GRANT_BATCH of
 * credit, and SendWindow splits a chunk larger than its credit, so no chunk
 * size can stall a stream.
 */
export function consumed(mux: MuxConn, st: { readonly id: number; owed: number }, n: number): void {
  st.owed += n;
  if (st.owed >= GRANT_BATCH) {
    mux.window(st.id, st.owed);
    st.owed = 0;
  }
}

/** Outgoing DATA bounded by the peer's window; the source pauses when it is used up. */
export class SendWindow {
  credit = WINDOW;
  queue: Buffer[] = [];
  constructor(private readonly mux: () => MuxConn, private readonly id: number, private readonly pause: () => void, private readonly resume: () => void) {}
  private endQueued = false;
  private onEnd: (() => void) | undefined;
  /** END after every queued DATA frame (frames of one stream stay in order); then onSent. */
  end(onSent?: () => void): void {
    if (this.queue.length === 0) {
      this.mux().send(END, 0, this.id);
      onSent?.();
    } else {
      this.endQueued = true;
      this.onEnd = onSent;
    }
  }
  /** The other side finished the exchange: nothing queued will be wanted. */
  drop(): void {
    this.queue.length = 0;
    this.endQueued = false;
    this.resume();
  }
  data(b: Buffer): void {
    if (this.queue.length === 0) {
      if (b.length <= this.credit) {
        this.credit -= b.length;
        this.mux().send(DATA, 0, this.id, b);
        return;
      }
      // What the window allows goes now; the rest waits for credit.
      if (this.credit > 0) {
        this.mux().send(DATA, 0, this.id, b.subarray(0, this.credit));
        b = b.subarray(this.credit);
        this.credit = 0;
      }
    }
    this.queue.push(b);
    this.pause();
  }
  grant(n: number): boolean {
    this.credit += n;
    while (this.queue.length && this.credit > 0) {
      const b = this.queue[0]!;
      if (b.length <= this.credit) {
        this.queue.shift();
        this.credit -= b.length;
        this.mux().send(DATA, 0, this.id, b);
      } else {
        this.mux().send(DATA, 0, this.id, b.subarray(0, this.credit));
        this.queue[0] = b.subarray(this.credit);
        this.credit = 0;
      }
    }
    if (this.queue.length === 0) {
      if (this.endQueued) {
        this.endQueued = false;
        this.mux().send(END, 0, this.id);
        this.onEnd?.();
      }
      this.resume();
    }
    return this.queue.length === 0;
  }
}

// --- the edge (client) side ----------------------------------------------------

class EdgeStream {
  win: SendWindow;
  owed = 0;
  responded = false;
  ended = false;
  pendingEnd = false;
  constructor(readonly id: number, readonly conn: ServerConn, mux: () => MuxConn) {
    this.win = new SendWindow(mux, id, () => conn.pause(), () => conn.resume());
  }
}

export class MuxClient {
  private mux: MuxConn | null = null;
  private readonly streams = new Map<number, EdgeStream>();
  private nextId = 1;
  private readonly muxFn = (): MuxConn => this.connection();
  constructor(private readonly opts: { host: string; port: number; tls: tls.ConnectionOptions }) {}

  private connection(): MuxConn {
    if (this.mux && !this.mux.socket.destroyed) return this.mux;
    const s = tls.connect({ ...this.opts.tls, host: this.opts.host, port: this.opts.port, ALPNProtocols: ['weft-mux/1'] });
    s.setNoDelay(true);
    const m = new MuxConn(s);
    const reader = new FrameReader((t, f, id, p) => this.onFrame(t, f, id, p));
    s.on('data', (b: Buffer) => {
      try {
        reader.push(b);
      } catch (e) {
        // A frame we cannot take (too long, a short WINDOW): the connection ends, its streams fail.
        s.destroy(e as Error);
      }
    });
    s.on('secureConnect', () => {
      if (s.alpnProtocol !== 'weft-mux/1') s.destroy(new Error(`peer did not take weft-mux/1 (ALPN ${s.alpnProtocol})`));
    });
    const gone = (): void => {
      if (this.mux === m) this.mux = null;
      for (const st of this.streams.values()) {
        if (!st.responded) st.conn.respond(502, 'weft-mux connection lost\n', [proxyErrorLine('upstream failure: weft-mux connection lost')], true);
        else st.conn.destroy();
      }
      this.streams.clear();
    };
    s.on('error', gone);
    s.on('close', gone);
    this.mux = m;
    return m;
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    const st = this.streams.get(id);
    if (!st) return;
    const conn = st.conn;
    switch (type) {
      case HEAD:
        // 1xx heads are relayed too; the final head has status >= 200.
        if (p.length >= 12 && p[9]! >= 0x32) st.responded = true;
        conn.write(p);
        if (flags & F_CLOSE) st.pendingEnd = true;
        break;
      case DATA:
        if (conn.write(p)) consumed(this.connection(), st, p.length);
        else st.owed += p.length;
        break;
      case END:
        this.streams.delete(id);
        st.win.drop();
        conn.endResponse(!st.pendingEnd);
        break;
      case RST:
        this.streams.delete(id);
        if (!st.responded) conn.respond(502, `upstream: ${p.toString()}\n`, [proxyErrorLine(`upstream failure: ${p.toString()}`)], true);
        else conn.destroy();
        break;
      case WINDOW_UPDATE:
        st.win.grant(p.readUInt32BE(0));
        break;
    }
  }

  /** Close the multiplexed connection (streams on it fail). */
  close(): void {
    this.mux?.socket.destroy();
    this.mux = null;
  }

  handler(): ServerHandler {
    return {
      onRequest: (conn, head) => {
        const id = this.nextId;
        this.nextId += 2;
        const st = new EdgeStream(id, conn, this.muxFn);
        this.streams.set(id, st);
        conn.data = st;
        this.connection().send(HEAD, 0, id, forwardHead(head));
      },
      onRequestBody: (conn, chunk) => {
        (conn.data as EdgeStream).win.data(chunk);
      },
      onRequestEnd: (conn) => {
        (conn.data as EdgeStream).win.end();
      },
      onRequestAbort: (conn) => {
        const st = conn.data as EdgeStream | null;
        if (st && this.streams.delete(st.id)) this.connection().send(RST, 0, st.id);
      },
      onDrain: (conn) => {
        const st = conn.data as EdgeStream | null;
        if (st && st.owed) {
          this.connection().window(st.id, st.owed);
          st.owed = 0;
        }
      },
    };
  }
}

// --- the peer (server) side ----------------------------------------------------

/** What the sidecar's inbound adds to each stream (listen-inbound.ts); every hook optional. */
export interface MuxServerHooks {
  /** Before a stream reaches the app: a refusal is answered here (status, with weft-proxy-error: reason) and nothing is forwarded. */
  admit?(head: Head): { status: number; reason: string } | null;
  /** Field names removed from every forwarded request head (a forged identity header). */
  remove?: readonly string[];
  /** True while draining: every response head carries `connection: close`, so the edge opens no new stream on this connection. */
  draining?: () => boolean;
  /** A stream ended (the app's status, 502 when the app failed), with its start (performance.now()). */
  done?(status: number, start: number): void;
  /**
   * Per-stream observation (tap, access log, tracing), asked once per stream
   * before admit(); undefined when nothing watches. Its head edits go into the
   * forwarded head; finish() sees every stream's end, a refused one too.
   */
  watch?(head: Head): StreamWatch | undefined;
}

/** What watch() returns for one stream. */
export interface StreamWatch {
  /** Field lines added to the forwarded request head (e.g. this hop's traceparent). */
  add?: string[] | undefined;
  /** Field names removed from it (the incoming traceparent it replaces). */
  remove?: string[] | undefined;
  /** The stream ended: final status, the weft-proxy-error reason when the mesh answered, request body bytes, response bytes (head + body). */
  finish(status: number, proxyError: string | undefined, bytesIn: number, bytesOut: number): void;
}

class PeerStream implements ClientHandler {
  client: ClientConn | null = null;
  win: SendWindow;
  owed = 0;
  status = 0;
  watch: StreamWatch | undefined = undefined;
  bytesIn = 0;
  bytesOut = 0;
  readonly start = performance.now();
  constructor(readonly id: number, readonly mux: MuxConn, readonly server: MuxServer) {
    this.win = new SendWindow(() => mux, id, () => this.client?.socket.pause(), () => this.client?.socket.resume());
  }
  onResponseHead(_c: ClientConn, head: Head): void {
    if (head.status >= 200) this.status = head.status;
    const draining = head.status >= 200 && this.server.hooks.draining?.() === true;
    const out = draining ? forwardHead(head, { add: ['connection: close'] }) : head.hop ? forwardHead(head) : Buffer.from(head.buf);
    this.bytesOut += out.length;
    this.mux.send(HEAD, head.framing === 'close' ? F_CLOSE : 0, this.id, out);
  }
  onResponseBody(_c: ClientConn, chunk: Buffer): void {
    this.bytesOut += chunk.length;
    this.win.data(chunk);
  }
  onResponseEnd(): void {
    this.win.end(() => this.server.streams.delete(this.id));
    this.server.hooks.done?.(this.status, this.start);
    this.watch?.finish(this.status, undefined, this.bytesIn, this.bytesOut);
    this.watch = undefined;
  }
  onResponseError(_c: ClientConn, reason: string): void {
    this.mux.send(RST, 0, this.id, Buffer.from(reason));
    this.server.streams.delete(this.id);
    this.server.hooks.done?.(502, this.start);
    this.watch?.finish(502, `upstream failure: ${reason}`, this.bytesIn, this.bytesOut);
    this.watch = undefined;
  }
  onDrain(): void {
    if (this.owed) {
      this.mux.window(this.id, this.owed);
      this.owed = 0;
    }
  }
}

export class MuxServer {
  readonly streams = new Map<number, PeerStream>();
  private readonly mux: MuxConn;
  private readonly reader = new HeadReader(true);
  constructor(socket: tls.TLSSocket, private readonly pool: Pool, private readonly addLines: string[], readonly hooks: MuxServerHooks = {}) {
    socket.setNoDelay(true);
    this.mux = new MuxConn(socket);
    const fr = new FrameReader((t, f, id, p) => this.onFrame(t, f, id, p));
    socket.on('data', (b: Buffer) => {
      try {
        fr.push(b);
      } catch {
        // Whatever a peer sends ends at most its own connection, never the sidecar.
        socket.destroy();
      }
    });
    const gone = (): void => {
      for (const st of this.streams.values()) {
        st.client?.destroy();
        // The caller's connection went away mid-stream: recorded as a reset stream is.
        st.watch?.finish(st.status || 499, CLIENT_GONE, st.bytesIn, st.bytesOut);
        st.watch = undefined;
      }
      this.streams.clear();
    };
    socket.on('error', gone);
    socket.on('close', gone);
  }

  private onFrame(type: number, _flags: number, id: number, p: Buffer): void {
    if (type === HEAD) {
      this.reader.reset();
      const got = this.reader.feed(p, 0);
      const st = new PeerStream(id, this.mux, this);
      if (!got || isHeadError(got.head) || got.head.upgrade) {
        this.mux.send(RST, 0, id, Buffer.from(got && isHeadError(got.head) ? got.head.reason : 'unsupported request'));
        return;
      }
      const head = got.head;
      const watch = this.hooks.watch?.(head);
      st.watch = watch;
      const refused = this.hooks.admit?.(head);
      if (refused) {
        // Answered here; DATA frames of this stream find no stream and are dropped.
        const body = Buffer.from(`${refused.reason}\n`);
        const line = proxyErrorLine(refused.reason);
        const respHead = Buffer.from(`HTTP/1.1 ${refused.status} Refused\r\n${line}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n${this.hooks.draining?.() ? 'connection: close\r\n' : ''}\r\n`, 'latin1');
        this.mux.send(HEAD, 0, id, respHead);
        this.mux.send(DATA, 0, id, body);
        this.mux.send(END, 0, id);
        this.hooks.done?.(refused.status, st.start);
        watch?.finish(refused.status, refused.reason, 0, respHead.length + body.length);
        return;
      }
      this.streams.set(id, st);
      const client = this.pool.get();
      st.client = client;
      client.request(forwardHead(head, this.editsOf(watch)), head.method, st, head.framing === 'length' || head.framing === 'chunked');
      return;
    }
    const st = this.streams.get(id);
    if (!st) return;
    switch (type) {
      case DATA:
        st.bytesIn += p.length;
        if (st.client!.write(p)) consumed(this.mux, st, p.length);
        else st.owed += p.length;
        break;
      case END:
        st.client!.endRequest();
        break;
      case RST:
        this.streams.delete(id);
        st.client!.destroy();
        // The caller gave up: recorded as the HTTP/1.1 path records it (499, nothing sent).
        st.watch?.finish(st.status || 499, CLIENT_GONE, st.bytesIn, st.bytesOut);
        st.watch = undefined;
        break;
      case WINDOW_UPDATE:
        st.win.grant(p.readUInt32BE(0));
        break;
    }
  }

  /** The forwarded head's edits: the identity line and forged-field removal, plus what the stream's watcher adds. */
  private editsOf(w: StreamWatch | undefined): { add: string[]; remove?: readonly string[] } {
    const remove = this.hooks.remove;
    if (!w || (!w.add && !w.remove)) return remove ? { add: this.addLines, remove } : { add: this.addLines };
    return { add: w.add ? [...this.addLines, ...w.add] : this.addLines, remove: w.remove ? [...(remove ?? []), ...w.remove] : (remove ?? []) };
  }
}

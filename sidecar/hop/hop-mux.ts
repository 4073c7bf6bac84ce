// The mesh hop over weft-mux/1 (sidecar/http1/mux.ts), client side, behind
// undici's Dispatcher face so the HTTP/1.1 adapter's handlers (ForwardHandler:
// timeouts, response edits, failure answers) carry on unchanged: one mTLS
// connection per (peer IP, hop server name, SPIFFE ID), every request a
// stream on it. The connection offers ALPN weft-mux/1 first and h2 /
// http/1.1 after it; a peer that takes anything else (a sidecar without
// weft-mux/1, during an upgrade) is served from then on by the HTTP/1.1 pool
// `fallback` (the requests that waited for the handshake go there too).
// Upgrades always go to the fallback (weft-mux/1 does not carry them).
//
// The peer's SPIFFE ID is checked in checkServerIdentity AND again on every
// secureConnect (Node skips checkServerIdentity on a resumed TLS session).
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { spiffeIdOfCert } from '../../certs/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';
import { PeerIdentityError, type ConnectionSink } from './hop.js';
import { ALPN_MUX, DATA, END, F_CLOSE, FrameReader, HEAD, MuxConn, RST, SendWindow, WINDOW_UPDATE, consumed } from '../http1/mux.js';
import { ChunkedDecoder, HeadReader, isHeadError, type Head } from '../http1/index.js';

const CONNECT_TIMEOUT_MS = 5_000;
const CHUNK_END = Buffer.from('0\r\n\r\n');
const CRLF = Buffer.from('\r\n');

type Handler = Dispatcher.DispatchHandler;
type Opts = Dispatcher.DispatchOptions;

class HopStream {
  win: SendWindow;
  chunked: ChunkedDecoder | null = null;
  started = false;
  finished = false;
  paused = false;
  owed = 0;
  body: Readable | null = null;
  constructor(readonly id: number, readonly hop: MuxHop, readonly conn: Link, readonly handler: Handler) {
    this.win = new SendWindow(() => conn.mux, id, () => this.body?.pause(), () => this.body?.resume());
  }
}

/**
 * The raw entry (the engine's HTTP/1.1 adapter, outbound-engine.ts): the
 * request head as bytes ready for the wire, the body in its own framing; the
 * response head parsed, its body relayed as it came (no re-chunking).
 */
export interface RawHopHandler {
  /** The final response head (1xx heads are not passed on). */
  onHead(head: Head, close: boolean): void;
  /** Response body bytes in their framing; false: stop granting window until resume(). */
  onData(chunk: Buffer): boolean;
  onEnd(): void;
  /** The exchange failed (codes as the HTTP/1.1 pool's: ECONNRESET, UND_ERR_SOCKET, WEFT_NO_CERT, ...). */
  onError(err: Error & { code?: string }, requestSent: boolean): void;
  /** The peer has no weft-mux/1: nothing was sent; carry the request another way (`queued`: the body written so far). */
  onFallback(queued: Buffer[]): void;
  /** Request body backpressure: the peer's window is used up / open again. */
  pauseBody(): void;
  resumeBody(): void;
}

/** One request on the raw entry. write()/end() before the stream starts are queued. */
export class RawHopStream {
  id = 0;
  link: Link | null = null;
  win: SendWindow | null = null;
  finished = false;
  started = false;
  paused = false;
  sent = false;
  owed = 0;
  private pre: Buffer[] | null = [];
  private preEnd = false;
  constructor(readonly hop: MuxHop, readonly head: Buffer, readonly h: RawHopHandler) {}
  /** Request body bytes, framed as the head says. */
  write(b: Buffer): void {
    if (this.finished) return;
    if (this.win) this.win.data(b);
    else this.pre!.push(b);
  }
  /** The request body is complete. */
  end(): void {
    if (this.finished) return;
    if (this.win) this.win.end();
    else this.preEnd = true;
  }
  /** Give up the exchange (the caller went away, a timeout, a dropped try): RST to the peer. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    const l = this.link;
    if (l && l.streams.delete(this.id)) {
      l.mux.send(RST, 0, this.id);
      this.hop.settleLink(l);
    }
    this.hop.unwait(this);
  }
  /** The caller can take more response bytes: grant what was held back. */
  resume(): void {
    this.paused = false;
    const l = this.link;
    if (this.owed && l && l.streams.has(this.id)) {
      l.mux.window(this.id, this.owed);
      this.owed = 0;
    }
  }
  /** Body bytes written and not yet sent (waiting for the handshake or for the peer's window). */
  get queued(): number {
    let n = 0;
    const q = this.win ? this.win.queue : (this.pre ?? []);
    for (let i = 0; i < q.length; i++) n += q[i]!.length;
    return n;
  }
  /** The body written before the stream started (handed back on fallback). */
  takeQueued(): Buffer[] {
    const q = this.pre ?? [];
    this.pre = [];
    this.finished = true;
    return q;
  }
  /** On the link, id assigned: the head and what was queued go out. */
  begin(l: Link, id: number): void {
    this.link = l;
    this.id = id;
    this.win = new SendWindow(() => l.mux, id, () => this.h.pauseBody(), () => this.h.resumeBody());
    l.mux.send(HEAD, 0, id, this.head);
    this.sent = true;
    const pre = this.pre!;
    this.pre = null;
    for (const b of pre) this.win.data(b);
    if (this.preEnd) this.win.end();
  }
}

/** One weft-mux/1 connection and its streams. */
class Link {
  readonly mux: MuxConn;
  readonly streams = new Map<number, HopStream | RawHopStream>();
  ready = false;
  /** No new streams (the peer drains, or the pool closes); destroyed once empty. */
  retired = false;
  nextId = 1;
  readonly reader = new HeadReader(false);
  constructor(readonly socket: TLSSocket) {
    this.mux = new MuxConn(socket);
  }
  get dead(): boolean {
    return this.socket.destroyed;
  }
}

export class MuxHop {
  private link: Link | null = null;
  private readonly waiting: [Opts, Handler][] = [];
  private readonly rawWaiting: RawHopStream[] = [];
  /** The peer did not take weft-mux/1: everything goes to the fallback pool. */
  private fallbackOnly = false;
  closed = false;
  destroyed = false;

  constructor(
    private readonly identity: IdentityHolder,
    private readonly ip: string,
    private readonly port: number,
    private readonly serverName: string,
    private readonly expectSpiffe: string,
    private readonly fallback: () => Dispatcher,
    private readonly count?: ConnectionSink,
  ) {}

  get stats(): { running: number; pending: number; queued: number } {
    return { running: this.link?.streams.size ?? 0, pending: 0, queued: this.waiting.length + this.rawWaiting.length };
  }

  /**
   * The raw entry: one request as head bytes (hop-by-hop fields already
   * gone) on a weft-mux/1 stream. null: the peer has no weft-mux/1 (known
   * already); the caller carries the request another way. A stream waiting
   * for the handshake gets onFallback() if the peer turns out to lack it.
   */
  openRaw(head: Buffer, h: RawHopHandler): RawHopStream | null {
    if (this.fallbackOnly) return null;
    const st = new RawHopStream(this, head, h);
    const l = this.current();
    if (!l) {
      this.rawWaiting.push(st);
      return st;
    }
    if (!l.ready) this.rawWaiting.push(st);
    else this.startRaw(l, st);
    return st;
  }

  /** True once the peer was found to lack weft-mux/1. */
  get fallsBack(): boolean {
    return this.fallbackOnly;
  }

  unwait(st: RawHopStream): void {
    const i = this.rawWaiting.indexOf(st);
    if (i >= 0) this.rawWaiting.splice(i, 1);
  }

  private startRaw(l: Link, st: RawHopStream): void {
    if (st.finished) return;
    const id = l.nextId;
    l.nextId += 2;
    l.streams.set(id, st);
    st.begin(l, id);
  }

  settleLink(l: Link): void {
    this.settle(l);
  }

  dispatch(opts: Opts, handler: Handler): boolean {
    if (this.fallbackOnly || opts.upgrade) return this.fallback().dispatch(opts, handler);
    const l = this.current();
    if (!l) return true;
    if (!l.ready) {
      this.waiting.push([opts, handler]);
      return true;
    }
    this.start(l, opts, handler);
    return true;
  }

  private current(): Link | null {
    const l = this.link;
    if (l && !l.dead && !l.retired) return l;
    return this.open();
  }

  private open(): Link | null {
    const id = this.identity.current;
    if (!id) {
      // Answered like the HTTP/1.1 pool's connector: no certificate yet.
      queueMicrotask(() => this.failWaiting(Object.assign(new Error('no mesh certificate yet'), { code: 'WEFT_NO_CERT' })));
      return null;
    }
    const expect = this.expectSpiffe;
    const ip = this.ip;
    const s = tlsConnect({
      host: ip,
      port: this.port,
      servername: this.serverName,
      secureContext: id.context,
      ALPNProtocols: [ALPN_MUX, 'h2', 'http/1.1'],
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const got = spiffeIdOfCert(cert);
        return got === expect ? undefined : new PeerIdentityError(`peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expect}`);
      },
    });
    s.setNoDelay(true);
    s.setKeepAlive(true, 60_000);
    const l = new Link(s);
    this.link = l;
    const timer = setTimeout(() => s.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
    const reader = new FrameReader((t, f, sid, p) => this.onFrame(l, t, f, sid, p));
    s.on('data', (b: Buffer) => {
      try {
        reader.push(b);
      } catch (e) {
        // A frame we cannot take (too long, a short WINDOW): the connection ends, its streams fail.
        s.destroy(e as Error);
      }
    });
    s.once('secureConnect', () => {
      clearTimeout(timer);
      // Every secure connect, resumed or not: the peer must be the endpoint we chose.
      const got = spiffeIdOfCert(s.getPeerCertificate());
      if (got !== expect) {
        s.destroy(new PeerIdentityError(`peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expect}`));
        return;
      }
      if (s.alpnProtocol !== ALPN_MUX) {
        // A peer without weft-mux/1: this connection is not used; the HTTP/1.1 pool serves from now on.
        this.fallbackOnly = true;
        if (this.link === l) this.link = null;
        s.destroy();
        const w = this.waiting.splice(0);
        for (const [o, h] of w) this.fallback().dispatch(o, h);
        for (const st of this.rawWaiting.splice(0)) if (!st.finished) st.h.onFallback(st.takeQueued());
        return;
      }
      this.count?.(s, expect, true);
      l.ready = true;
      const w = this.waiting.splice(0);
      for (const [o, h] of w) this.start(l, o, h);
      for (const st of this.rawWaiting.splice(0)) this.startRaw(l, st);
    });
    const gone = (e?: Error): void => {
      clearTimeout(timer);
      if (this.link === l) this.link = null;
      const err = e ?? Object.assign(new Error('upstream connection reset'), { code: 'ECONNRESET' });
      if (!l.ready && !this.fallbackOnly) this.failWaiting(err);
      for (const st of l.streams.values()) this.fail(st, err);
      l.streams.clear();
    };
    s.on('error', gone);
    s.on('close', () => gone());
    return l;
  }

  private failWaiting(err: Error): void {
    for (const st of this.rawWaiting.splice(0)) {
      if (st.finished) continue;
      st.finished = true;
      st.h.onError(err, false);
    }
    const w = this.waiting.splice(0);
    for (const [, h] of w) {
      try {
        h.onError?.(err);
      } catch {
        // a handler's failure is its own
      }
    }
  }

  private fail(st: HopStream | RawHopStream, err: Error): void {
    if (st.finished) return;
    st.finished = true;
    if (st instanceof RawHopStream) {
      st.h.onError(err, st.sent);
      return;
    }
    st.body?.destroy();
    st.handler.onError?.(err);
  }

  private start(l: Link, opts: Opts, handler: Handler): void {
    const id = l.nextId;
    l.nextId += 2;
    const st = new HopStream(id, this, l, handler);
    l.streams.set(id, st);
    handler.onConnect?.((err?: Error) => {
      if (st.finished) return;
      if (l.streams.delete(id)) l.mux.send(RST, 0, id);
      this.fail(st, err ?? new Error('aborted'));
      this.settle(l);
    });
    if (st.finished) return;
    // The head: request line and fields as the adapter prepared them (hop-by-hop fields already gone).
    let head = `${opts.method} ${opts.path} HTTP/1.1\r\n`;
    let length = false;
    const h = opts.headers as Record<string, string | string[] | undefined> | null | undefined;
    if (h) {
      for (const k in h) {
        const v = h[k];
        if (v === undefined) continue;
        if (k.length === 14 && k.toLowerCase() === 'content-length') length = true;
        if (Array.isArray(v)) for (const x of v) head += `${k}: ${x}\r\n`;
        else head += `${k}: ${v}\r\n`;
      }
    }
    const body = opts.body as Readable | null | undefined;
    const streamed = body !== null && body !== undefined && typeof (body as Readable).on === 'function';
    if (streamed && !length) head += 'transfer-encoding: chunked\r\n';
    head += '\r\n';
    l.mux.send(HEAD, 0, id, Buffer.from(head, 'latin1'));
    if (!streamed) {
      if (body !== null && body !== undefined) {
        const b = typeof body === 'string' ? Buffer.from(body) : Buffer.from(body as unknown as Uint8Array);
        if (b.length) st.win.data(b);
      }
      st.win.end();
      return;
    }
    st.body = body;
    body.on('data', (c: Buffer) => {
      if (st.finished) return;
      if (length) st.win.data(c);
      else if (c.length) {
        st.win.data(Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'));
        st.win.data(c);
        st.win.data(CRLF);
      }
    });
    body.once('end', () => {
      if (st.finished) return;
      if (!length) st.win.data(CHUNK_END);
      st.win.end();
    });
    body.once('error', (e: Error) => {
      if (st.finished) return;
      if (l.streams.delete(id)) l.mux.send(RST, 0, id);
      this.fail(st, e);
    });
  }

  private onFrame(l: Link, type: number, flags: number, id: number, p: Buffer): void {
    const st = l.streams.get(id);
    if (!st) return;
    if (st instanceof RawHopStream) return this.onRawFrame(l, st, type, flags, id, p);
    switch (type) {
      case HEAD: {
        l.reader.reset();
        const got = l.reader.feed(p, 0);
        if (!got || isHeadError(got.head)) {
          l.streams.delete(id);
          l.mux.send(RST, 0, id);
          this.fail(st, Object.assign(new Error('invalid response head from peer'), { code: 'UND_ERR_SOCKET' }));
          return;
        }
        const head = got.head;
        if (head.status < 200) return;
        // `Connection: close` on a stream's answer: the peer drains, no new streams on this connection.
        if (/\bclose\b/i.test(head.get('connection') ?? '')) l.retired = true;
        if (head.framing === 'chunked') st.chunked = new ChunkedDecoder();
        const raw: Buffer[] = [];
        for (let i = 0; i < head.count; i++) raw.push(Buffer.from(head.name(i), 'latin1'), Buffer.from(head.value(i), 'latin1'));
        st.started = true;
        const text = head.buf.toString('latin1', head.reasonStart, head.reasonEnd);
        const ok = st.handler.onHeaders?.(head.status, raw, () => this.resume(l, st), text);
        if (ok === false) st.paused = true;
        return;
      }
      case DATA: {
        if (st.finished) return;
        let ok = true;
        if (st.chunked) {
          const r = st.chunked.feed(p, 0, p.length, (b, s, e) => {
            if (e > s && st.handler.onData?.(b.subarray(s, e)) === false) ok = false;
          });
          if (r < 0) {
            l.streams.delete(id);
            l.mux.send(RST, 0, id);
            this.fail(st, Object.assign(new Error(`invalid chunked body from peer: ${st.chunked.error}`), { code: 'UND_ERR_SOCKET' }));
            return;
          }
        } else if (p.length) ok = st.handler.onData?.(p) !== false;
        if (ok && !st.paused) consumed(l.mux, st, p.length);
        else {
          st.paused = true;
          st.owed += p.length;
        }
        return;
      }
      case END:
        l.streams.delete(id);
        st.win.drop();
        if (!st.finished) {
          st.finished = true;
          if (!st.started) st.handler.onError?.(Object.assign(new Error('peer ended the stream without a response'), { code: 'UND_ERR_SOCKET' }));
          else st.handler.onComplete?.(null);
        }
        this.settle(l);
        return;
      case RST:
        l.streams.delete(id);
        st.win.drop();
        this.fail(st, Object.assign(new Error(`upstream error: ${p.toString()}`), { code: 'UND_ERR_SOCKET' }));
        this.settle(l);
        return;
      case WINDOW_UPDATE:
        st.win.grant(p.readUInt32BE(0));
        return;
    }
  }

  private onRawFrame(l: Link, st: RawHopStream, type: number, flags: number, id: number, p: Buffer): void {
    switch (type) {
      case HEAD: {
        l.reader.reset();
        const got = l.reader.feed(p, 0);
        if (!got || isHeadError(got.head)) {
          l.streams.delete(id);
          l.mux.send(RST, 0, id);
          this.fail(st, Object.assign(new Error('invalid response head from peer'), { code: 'UND_ERR_SOCKET' }));
          this.settle(l);
          return;
        }
        const head = got.head;
        if (head.status < 200 || st.finished) return;
        // `Connection: close` on a stream's answer: the peer drains, no new streams on this connection.
        if (head.hop && /\bclose\b/i.test(head.get('connection') ?? '')) l.retired = true;
        st.started = true;
        st.h.onHead(head, (flags & F_CLOSE) !== 0);
        return;
      }
      case DATA: {
        if (st.finished) return;
        const ok = p.length === 0 || st.h.onData(p);
        if (ok && !st.paused) consumed(l.mux, st, p.length);
        else {
          st.paused = true;
          st.owed += p.length;
        }
        return;
      }
      case END:
        l.streams.delete(id);
        st.win?.drop();
        if (!st.finished) {
          st.finished = true;
          if (!st.started) st.h.onError(Object.assign(new Error('peer ended the stream without a response'), { code: 'UND_ERR_SOCKET' }), true);
          else st.h.onEnd();
        }
        this.settle(l);
        return;
      case RST:
        l.streams.delete(id);
        st.win?.drop();
        this.fail(st, Object.assign(new Error(`upstream error: ${p.toString()}`), { code: 'UND_ERR_SOCKET' }));
        this.settle(l);
        return;
      case WINDOW_UPDATE:
        st.win?.grant(p.readUInt32BE(0));
        return;
    }
  }

  private resume(l: Link, st: HopStream): void {
    st.paused = false;
    if (st.owed && l.streams.has(st.id)) {
      l.mux.window(st.id, st.owed);
      st.owed = 0;
    }
  }

  /** A retired connection closes once its last stream is done. */
  private settle(l: Link): void {
    if (l.retired && l.streams.size === 0 && !l.dead) l.socket.end();
  }

  close(): Promise<void> {
    this.closed = true;
    const l = this.link;
    if (l) {
      l.retired = true;
      this.settle(l);
    }
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    this.destroyed = true;
    this.closed = true;
    this.link?.socket.destroy();
    this.link = null;
    return Promise.resolve();
  }
}

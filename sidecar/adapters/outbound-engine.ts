// The HTTP/1.1 adapter of the outbound listener on weft's byte-level engine
// (sidecar/http1/): a ServerConn per connection; each request head becomes
// the request value (requestOfHead) and a Carrier, and goes to the SAME
// router as every other adapter (outbound-route.ts: lookup → decide). It has
// no routing decision of its own. A forward is carried as bytes: the head as
// it came minus hop-by-hop fields, with the decision's header edits, URL
// rewrite and authority applied as head edits; the body in its own framing
// (chunked stays chunked) — over a weft-mux/1 stream to the peer's inbound
// (MuxHop.openRaw), or over an engine pool (sidecar/http1/pool.ts): plain TCP
// to an endpoint without a sidecar, mTLS HTTP/1.1 to a peer without weft-mux/1
// (or WEFT_HOP=http1). The response head is parsed, edited (response header
// edits, the session cookie, `connection: close` while draining) and relayed;
// its body as it came. Per-try and request timeouts sit on the listener's
// timer wheel (no per-request setTimeout); failures are classified by the one
// errors module (classifyUpstreamError → status + weft-proxy-error).
//
// Request mirrors, retries (the body kept up to 64 KiB for replay, as node's
// adapter keeps it), session persistence, timeouts and BackendTLSPolicy
// origins (an engine pool with the policy's verification) are carried here.
// What the engine does not carry goes to the node:http adapter
// (outbound-http1.ts) with the connection: HTTP/1.1 Upgrade (WebSocket),
// CONNECT, and destinations outside the mesh. That is decided from the head
// (and, for an external host, the service lookup) BEFORE the router is
// called and before any of the body is read — no decide() — so each request
// is routed once, by whichever adapter carries it; the socket and the bytes
// read so far (the head and what followed it) are handed to the node:http
// server (handoff.ts) and the connection continues there.
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import type { EndpointRt } from '../config/config-apply.js';
import type { BackendTlsOrigin } from '../hop/backend-tls.js';
import { attemptTimeout, type Forward } from '../route/decide.js';
import type { CompiledHeaderEdits } from '../route/filters.js';
import { editResponseHeaders } from '../route/filters.js';
import type { OriginalDst } from '../detect/original-dst.js';
import { SUBSCRIBE_WAIT_MS, type Carrier, type Done, type OutboundDeps, type OutboundRouter } from '../route/outbound-route.js';
import { classifyUpstreamError, CLIENT_GONE, TimeoutError, type Answerer, type Outcome } from '../errors/proxy-errors.js';
import type { MeshRequest } from '../route/request.js';
import type { KeptBody, TryContext } from '../retry/resilience.js';
import { REPLAY_LIMIT } from '../retry/retry-body.js';
import { beginOnFields, ioMark, type IoMark } from '../observe/observe.js';
import type { SpanStart } from '../observe/trace.js';
import { lookupRequest, type Lookup } from '../route/service-lookup.js';
import { handToHttp } from '../listen/handoff.js';
import { ServerConn, type ServerHandler } from '../http1/server-conn.js';
import type { Head, HeadLimits } from '../http1/parser.js';
import { forwardHead, proxyErrorLine, type HeadEdits } from '../http1/head-write.js';
import { engineAnswerer, requestOfHead } from '../http1/carrier-parts.js';
import { TimerWheel, type WheelEntry } from '../http1/timer-wheel.js';
import type { ClientConn, ClientHandler } from '../http1/client-conn.js';
import { Pool as EnginePool } from '../http1/pool.js';
import { MuxHop, type RawHopHandler, type RawHopStream } from '../hop/hop-mux.js';

export interface EngineAdapterOptions {
  limits: HeadLimits;
  /** The original destination of the request's connection. */
  dstOf: (socket: Socket) => OriginalDst | undefined;
  /** The node:http adapter's server: what the engine does not carry continues there. */
  http: HttpServer;
  /** A request head is complete (the request-head guard is disarmed). */
  onHead?: (socket: Socket) => void;
  /** Keep-alive idle timeout (ms). */
  idleTimeoutMs?: number;
}

export interface EngineAdapter {
  /** A connection detection found to be HTTP/1.x (its first bytes still buffered on the socket). */
  accept(socket: Socket): void;
  /** Requests being answered right now (drain). */
  inFlight(): number;
  readonly wheel: TimerWheel;
  /** Request heads carried by the engine, and connections handed to node:http (for tests and the bench). */
  readonly stats: { carried: number; handedOff: number };
}

const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const kWaited = Symbol('weft.engineWaited');
type WaitedSocket = Socket & { [kWaited]?: boolean };

/** Hop-by-hop response fields (RFC 9110 §7.6.1): never relayed; the engine adds its own Connection. */
function hopByHop(lower: string): boolean {
  return lower === 'connection' || lower === 'keep-alive' || lower === 'proxy-connection' || lower === 'te' || lower === 'trailer' || lower === 'upgrade';
}

/**
 * One request on a connection, and its Carrier for the router: its body
 * (kept for retries while small), its current try. The carrier's parts are
 * this class's methods, not closures made per request (the router holds the
 * carrier for the request's life; a dozen closures and their contexts were a
 * third of what a request allocated here).
 */
class Req implements KeptBody, Carrier, Answerer {
  readonly hasBody: boolean;
  ended = false;
  /** The caller went away (nothing left to answer). */
  left = false;
  /** Some of a forwarded response was written to the client. */
  started = false;
  settled = false;
  /** Body chunks not yet given to a try, and (keep) every chunk while the body is small enough to send again. */
  chunks: Buffer[] = [];
  buffered = 0;
  size = 0;
  keep = false;
  overflow = false;
  cur: Try | null = null;
  /** Request mirrors of the first try: fed the same body bytes; never slow the original. */
  mirrors: MirrorTry[] | null = null;
  traceHeaders: Record<string, unknown> | undefined;
  // --- Carrier ---
  readonly start = performance.now();
  readonly answer: Answerer = this;
  readonly io: IoMark | undefined;
  span: SpanStart | undefined = undefined;
  /** Observers were listening when the request came (its forwards carry trace context while they still are). */
  private readonly observing: boolean;
  private answerer: Answerer | null = null;
  constructor(readonly a: Engine, readonly conn: ServerConn, readonly head: Head, readonly req: MeshRequest) {
    this.hasBody = (head.framing === 'length' && head.contentLength > 0) || head.framing === 'chunked';
    this.observing = a.deps.observers?.active === true;
    this.io = this.observing ? ioMark(conn.socket, head.get('content-length')) : undefined;
  }
  get headers(): Record<string, unknown> {
    return this.traceObj();
  }
  gone(): boolean {
    return this.left;
  }
  fail(status: number, reason: string): Outcome {
    this.settle();
    return this.answers().fail(status, reason);
  }
  redirect(status: number, location: string): Outcome {
    this.settle();
    return this.answers().redirect(status, location);
  }
  /** The engine's mesh-made answers, made when the first one is needed (most requests never need one). */
  private answers(): Answerer {
    return (this.answerer ??= engineAnswerer(this.conn, () => this.started));
  }
  private tracing(): boolean {
    return this.observing && this.a.deps.observers!.active;
  }
  forward(d: Forward, done: Done, tc?: TryContext): void {
    const head = this.head;
    // Once per request: the body kept for retries (as node's adapter keeps it: up to 64 KiB).
    if (tc && tc.index === 0 && this.hasBody) {
      if (head.framing === 'length' && head.contentLength > REPLAY_LIMIT) tc.body = 'unkept';
      else {
        this.keep = this.size <= REPLAY_LIMIT;
        this.overflow = !this.keep;
        tc.body = this;
      }
    }
    // Mirrors copy the request as the rule sends it (the rule's edits, not the backendRef's), with the first try only.
    if ((!tc || tc.index === 0) && d.mirrors.length) {
      const ms: MirrorTry[] = [];
      for (const m of d.mirrors) {
        const mt = new MirrorTry(this, m.endpoint, forwardHead(head, requestEdits(this, m.requestEdits, m.authority, m.path, false)), m.backend.tlsOrigin);
        mt.start();
        ms.push(mt);
      }
      this.mirrors = ms;
    }
    const t = attemptTimeout(d.timeouts, performance.now() - this.start);
    const out = forwardHead(head, requestEdits(this, d.requestEdits, d.authority, d.path, this.tracing()));
    const origin = d.backend.tlsOrigin;
    new Try(this, d.endpoint, out, done, tc, d.responseEdits, t.ms, t.kind).start(origin ? originVia(this.a, origin, d.endpoint) : undefined);
  }
  /** Straight to a meshed pod addressed by IP (no route table). */
  pod(ep: EndpointRt, done: Done): void {
    const out = forwardHead(this.head, requestEdits(this, [], this.req.authority, this.target(), this.tracing()));
    new Try(this, ep, out, done, undefined, undefined, 0, 'request').start();
  }
  /** Out of the mesh, untouched. */
  external(host: string, port: number, done: Done): void {
    const out = forwardHead(this.head, requestEdits(this, [], '', this.target(), this.tracing()));
    new Try(this, undefined, out, done, undefined, undefined, 0, 'request').start({ pool: this.a.external(host, port), tls: false });
  }
  private target(): string {
    const req = this.req;
    return req.query ? `${req.path}?${req.query}` : req.path;
  }
  get replayable(): boolean {
    return !this.overflow;
  }
  close(): void {
    this.keep = false;
    if (this.cur?.live) {
      this.chunks = [];
      this.buffered = 0;
    }
  }
  body(chunk: Buffer): void {
    this.size += chunk.length;
    const m = this.mirrors;
    if (m) for (let i = 0; i < m.length; i++) m[i]!.write(chunk);
    const t = this.cur;
    const live = t !== null && t.live;
    if (live) t.write(chunk);
    if (this.keep && this.size > REPLAY_LIMIT) {
      this.overflow = true;
      this.keep = false;
      if (live) {
        this.chunks = [];
        this.buffered = 0;
      }
    }
    if (!live || this.keep) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      // Nothing reads it yet (routing, a retry's backoff): bounded, the client waits.
      if (!live && this.buffered > REPLAY_LIMIT) this.conn.pause();
    }
  }
  end(): void {
    this.ended = true;
    const m = this.mirrors;
    if (m) for (let i = 0; i < m.length; i++) m[i]!.endBody();
    if (this.cur?.live) this.cur.endBody();
  }
  /** The request is over for drain's count (answered, or the caller went away). */
  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.a.inflight--;
  }
  /** The trace headers as this request carries them (begin() writes this hop's traceparent into them). */
  traceObj(): Record<string, unknown> {
    if (!this.traceHeaders) {
      const o: Record<string, unknown> = {};
      const tp = this.head.get('traceparent');
      const ts = this.head.get('tracestate');
      if (tp !== undefined) o.traceparent = tp;
      if (ts !== undefined) o.tracestate = ts;
      this.traceHeaders = o;
    }
    return this.traceHeaders;
  }
}

/** One upstream try of a request: a weft-mux/1 stream or an engine pool connection. */
class Try implements RawHopHandler, ClientHandler, WheelEntry {
  wheelNext: WheelEntry | null = null;
  wheelPrev: WheelEntry | null = null;
  wheelDeadline = 0;
  wheelSlot = 0;
  stream: RawHopStream | null = null;
  client: ClientConn | null = null;
  pool: EnginePool | null = null;
  /** The request head and body go out (body chunks are written as they come). */
  live = false;
  finished = false;
  headWritten = false;
  status = 0;
  closeAfter = false;
  connected = false;
  retriedIdle = false;
  /** A pool given by the caller (a BackendTLSPolicy origin, a host outside the mesh) instead of the endpoint's hop. */
  private via: Via | undefined;
  constructor(
    readonly r: Req,
    readonly ep: EndpointRt | undefined,
    readonly out: Buffer,
    readonly done: Done,
    readonly tc: TryContext | undefined,
    readonly responseEdits: CompiledHeaderEdits[] | undefined,
    readonly timeoutMs: number,
    readonly timeoutKind: 'request' | 'backendRequest',
  ) {}

  start(via?: Via): void {
    const a = this.r.a;
    this.r.cur = this;
    if (this.timeoutMs > 0) a.wheel.schedule(this, Date.now() + this.timeoutMs);
    this.via = via;
    if (via) {
      this.pool = via.pool;
      return this.send(via.pool.get());
    }
    const ep = this.ep!;
    const hop = a.deps.pools.engineHop(ep);
    if (hop instanceof MuxHop) {
      const s = hop.openRaw(this.out, this);
      if (s) {
        this.stream = s;
        this.goLive();
        return;
      }
      return this.viaPool(a.deps.pools.enginePool(ep));
    }
    this.viaPool(hop);
  }

  /** The peer turned out to lack weft-mux/1 (nothing was sent; `queued` is the body given to the stream): the mTLS HTTP/1.1 hop instead. */
  onFallback(queued: Buffer[]): void {
    if (this.finished) return;
    this.stream = null;
    this.live = false;
    const r = this.r;
    // Kept, the body is replayed from the request's own copy; else the stream's queue is all of it so far.
    if (!r.keep) {
      r.chunks = queued;
      r.buffered = 0;
      for (const b of queued) r.buffered += b.length;
    }
    this.viaPool(this.r.a.deps.pools.enginePool(this.ep!));
  }

  private viaPool(pool: EnginePool): void {
    if (this.ep?.identity && !this.r.a.deps.identity.current) {
      // As the other hops answer it: no certificate yet.
      queueMicrotask(() => this.fail(Object.assign(new Error('no mesh certificate yet'), { code: 'WEFT_NO_CERT' }), false));
      return;
    }
    this.pool = pool;
    this.send(pool.get());
  }

  private send(c: ClientConn): void {
    this.client = c;
    if (c.used === 0) {
      this.connected = false;
      const tls = this.via ? this.via.tls : this.ep?.identity !== undefined;
      c.socket.once(tls ? 'secureConnect' : 'connect', () => (this.connected = true));
    } else this.connected = true;
    c.request(this.out, this.r.head.method, this, this.r.hasBody);
    this.goLive();
  }

  /** The head is on its way: what the body has so far follows, then the rest as it comes. */
  private goLive(): void {
    const r = this.r;
    this.live = true;
    const chunks = r.chunks;
    for (let i = 0; i < chunks.length; i++) this.write(chunks[i]!);
    if (!r.keep) {
      r.chunks = [];
      r.buffered = 0;
    }
    if (r.ended) this.endBody();
    r.conn.resume();
  }

  write(b: Buffer): void {
    if (this.finished) return;
    if (this.stream) this.stream.write(b);
    else if (this.client && !this.client.write(b)) this.r.conn.pause();
  }

  endBody(): void {
    if (this.finished) return;
    if (this.stream) this.stream.end();
    else this.client?.endRequest();
  }

  // --- request body backpressure (mux window / upstream socket) ---
  pauseBody(): void {
    this.r.conn.pause();
  }
  resumeBody(): void {
    this.r.conn.resume();
  }
  onDrain(): void {
    this.r.conn.resume();
  }

  // --- the response ---
  onHead(head: Head, close: boolean): void {
    this.respondHead(head, close);
  }

  onResponseHead(_c: ClientConn, head: Head): void {
    if (head.status < 200) return; // 100 Continue was answered here; 103 is not relayed (as node:http)
    this.respondHead(head, head.framing === 'close');
  }

  private respondHead(head: Head, close: boolean): void {
    if (this.finished) return;
    const tc = this.tc;
    if (tc && !tc.gate.onHead(head.status, (n) => head.get(n))) {
      this.drop();
      return;
    }
    const r = this.r;
    const conn = r.conn;
    this.status = head.status;
    this.closeAfter = close || conn.draining() || !r.head.keepAlive;
    let extra: string | undefined;
    if (this.closeAfter) extra = 'connection: close';
    else if (r.head.minor === 0) extra = 'connection: keep-alive';
    const edits = this.responseEdits;
    let buf: Buffer;
    if (edits && edits.length) buf = editedResponse(head, edits, extra);
    else if (extra) buf = forwardHead(head, { add: [extra] });
    else buf = head.hop ? forwardHead(head) : head.buf;
    this.headWritten = true;
    r.started = true;
    conn.write(buf);
  }

  onData(chunk: Buffer): boolean {
    if (this.finished) return false;
    return this.r.conn.write(chunk);
  }

  onResponseBody(c: ClientConn, chunk: Buffer): void {
    if (this.finished) return;
    if (!this.r.conn.write(chunk)) c.socket.pause();
  }

  /** The client's socket can take more: let the upstream send again. */
  clientDrained(): void {
    this.stream?.resume();
    this.client?.socket.resume();
  }

  onEnd(): void {
    this.complete();
  }
  onResponseEnd(): void {
    this.complete();
  }

  private complete(): void {
    if (this.finished) return;
    const close = this.closeAfter;
    this.finish({ status: this.status, grpcStatus: '', proxyError: undefined });
    this.r.conn.endResponse(!close);
  }

  onError(err: Error & { code?: string }, requestSent: boolean): void {
    this.fail(err, requestSent);
  }

  onResponseError(c: ClientConn, reason: string, retryable: boolean): void {
    if (this.finished) return;
    if (retryable && !this.retriedIdle && !this.r.hasBody && this.pool) {
      // The peer closed an idle connection as the request went out: once more on a fresh one.
      this.retriedIdle = true;
      this.send(this.pool.connect());
      return;
    }
    let err: Error & { code?: string } = c.lastError ?? Object.assign(new Error(reason), { code: /invalid|bytes after/.test(reason) ? 'UND_ERR_SOCKET' : 'ECONNRESET' });
    const wrap = this.via?.connectError;
    if (wrap && !this.connected) err = wrap(err);
    this.fail(err, this.connected);
  }

  fail(err: Error & { code?: string }, requestSent: boolean): void {
    if (this.finished) return;
    const tc = this.tc;
    if (tc && this.status === 0 && !this.headWritten && !tc.gate.onError({ code: err.code, message: err.message, requestSent })) {
      this.drop();
      return;
    }
    const { status, reason } = classifyUpstreamError(err);
    this.answer(status, reason);
  }

  /** A mesh-made answer for this try (failure, timeout); a started response is cut instead. */
  private answer(status: number, reason: string): void {
    const started = this.headWritten;
    const conn = this.r.conn;
    this.finish({ status: started && this.status ? this.status : status, grpcStatus: '', proxyError: reason });
    this.abortUpstream();
    if (started) conn.destroy();
    else conn.respond(status, `${reason}\n`, [proxyErrorLine(reason)]);
  }

  onWheelExpire(): void {
    if (this.finished) return;
    const tc = this.tc;
    // A try's own timeout (backendRequest, per-try): the gate may try again.
    if (tc && this.timeoutKind === 'backendRequest' && this.status === 0 && !tc.gate.onError({ timedOut: true, requestSent: true })) {
      this.drop();
      return;
    }
    const e = new TimeoutError(this.timeoutKind, this.timeoutMs);
    if (this.headWritten) {
      this.finish({ status: 504, grpcStatus: '', proxyError: e.message });
      this.abortUpstream();
      this.r.conn.destroy();
      return;
    }
    this.answer(504, e.message);
  }

  /** The caller went away: counted as 499 (not an upstream failure). */
  clientGone(): void {
    if (this.finished) return;
    this.finish({ status: this.status || 499, grpcStatus: '', proxyError: CLIENT_GONE });
    this.abortUpstream();
  }

  /** The gate tries again elsewhere: this try ends quietly (no answer, no done). */
  private drop(): void {
    this.finished = true;
    this.r.a.wheel.cancel(this);
    if (this.r.cur === this) this.r.cur = null;
    this.abortUpstream();
  }

  private abortUpstream(): void {
    const s = this.stream;
    this.stream = null;
    s?.abort();
    const c = this.client;
    this.client = null;
    if (c && !c.idle) c.destroy();
  }

  private finish(o: { status: number; grpcStatus: string; proxyError: string | undefined }): void {
    if (this.finished) return;
    this.finished = true;
    this.r.a.wheel.cancel(this);
    if (this.r.cur === this) this.r.cur = null;
    this.r.settle();
    this.done(o);
  }
}

/** A pool chosen by the carrier instead of the endpoint's hop. */
interface Via {
  pool: EnginePool;
  tls: boolean;
  /** Says a failure before the connection was up the way that pool's undici connector says it (BackendTLSPolicy). */
  connectError?: (e: Error & { code?: string }) => Error;
}

/** A BackendTLSPolicy backend's pool: TLS originated to the endpoint, verified against the policy. */
function originVia(a: Engine, origin: BackendTlsOrigin, ep: EndpointRt): Via {
  return { pool: origin.enginePool(ep, a.wheel), tls: true, connectError: (e) => origin.engineError(ep, e) };
}

/** How much a mirror may fall behind before it is cut (as node's adapter's teeBody). */
const MIRROR_LAG = 1 << 20;

/**
 * RequestMirror: the same request to one endpoint of the mirror backend; its
 * answer is read and dropped, and it never slows the original (no
 * backpressure on the client; cut once it falls MIRROR_LAG behind).
 */
class MirrorTry implements RawHopHandler, ClientHandler {
  stream: RawHopStream | null = null;
  client: ClientConn | null = null;
  dead = false;
  constructor(
    readonly r: Req,
    readonly ep: EndpointRt,
    readonly out: Buffer,
    readonly origin: BackendTlsOrigin | undefined,
  ) {}
  start(): void {
    const pools = this.r.a.deps.pools;
    try {
      const via = this.origin ? this.origin.enginePool(this.ep, this.r.a.wheel) : pools.engineHop(this.ep);
      const s = via instanceof MuxHop ? via.openRaw(this.out, this) : null;
      if (s) this.stream = s;
      else this.viaPool(via instanceof MuxHop ? pools.enginePool(this.ep) : via);
    } catch {
      this.dead = true;
      return;
    }
    // What the body has so far (the first try has not taken it yet), then the rest as it comes.
    for (const b of this.r.chunks) this.write(b);
    if (this.r.ended) this.endBody();
  }
  private viaPool(pool: EnginePool): void {
    if (!this.origin && this.ep.identity && !this.r.a.deps.identity.current) {
      this.dead = true;
      return;
    }
    const c = pool.get();
    this.client = c;
    c.request(this.out, this.r.head.method, this, this.r.hasBody);
  }
  write(b: Buffer): void {
    if (this.dead) return;
    const lag = this.stream ? this.stream.queued : (this.client?.socket.writableLength ?? 0);
    if (lag > MIRROR_LAG) return this.kill();
    if (this.stream) this.stream.write(b);
    else this.client?.write(b);
  }
  endBody(): void {
    if (this.dead) return;
    if (this.stream) this.stream.end();
    else this.client?.endRequest();
  }
  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.stream?.abort();
    this.client?.destroy();
  }
  onHead(): void {}
  onData(): boolean {
    return true;
  }
  onEnd(): void {
    this.dead = true;
  }
  onError(): void {
    this.dead = true;
  }
  onFallback(queued: Buffer[]): void {
    if (this.dead) return;
    this.stream = null;
    this.viaPool(this.r.a.deps.pools.enginePool(this.ep));
    for (const b of queued) this.client?.write(b);
    if (this.r.ended) this.endBody();
  }
  pauseBody(): void {}
  resumeBody(): void {}
  onResponseHead(): void {}
  onResponseBody(): void {}
  onResponseEnd(): void {
    this.dead = true;
  }
  onResponseError(): void {
    this.dead = true;
  }
}

/** The response head with response header edits applied (filters.ts semantics, on the flat field list). */
function editedResponse(head: Head, edits: CompiledHeaderEdits[], extra: string | undefined): Buffer {
  let flat: string[] = [];
  for (let i = 0; i < head.count; i++) {
    const n = head.name(i);
    if (hopByHop(n.toLowerCase())) continue;
    flat.push(n, head.value(i));
  }
  for (let i = 0; i < edits.length; i++) flat = editResponseHeaders(flat, edits[i]!);
  let s = '';
  for (let i = 0; i < flat.length; i += 2) s += `${flat[i]}: ${flat[i + 1]!.replace(/[\r\n]/g, ' ')}\r\n`;
  if (extra) s += `${extra}\r\n`;
  return Buffer.concat([head.buf.subarray(0, head.fieldsStart), Buffer.from(s + '\r\n', 'latin1')]);
}

/**
 * The request head's edits for one try: the rule's header edits (filters.ts
 * semantics: set replaces, add appends with ",", remove drops), the upstream
 * authority as Host, the rewritten target, Expect dropped (answered here),
 * and this hop's trace context (observers.begin on the trace fields).
 */
function requestEdits(r: Req, edits: CompiledHeaderEdits[], authority: string, target: string, trace: boolean): HeadEdits | undefined {
  const head = r.head;
  // The common case: nothing to change but (maybe) the target; forwardHead then sends the head's own bytes.
  if (edits.length === 0 && !trace && (!authority || head.host === authority) && !head.expectContinue && head.indexOf('expect') < 0) {
    return target !== head.target ? { target } : undefined;
  }
  const ov = new Map<string, string | null>();
  const cur = (n: string): string | undefined => (ov.has(n) ? (ov.get(n) ?? undefined) : head.get(n));
  for (let i = 0; i < edits.length; i++) {
    const e = edits[i]!;
    for (const [n, v] of e.set) ov.set(n, v);
    for (const [n, v] of e.add) {
      const c = cur(n);
      ov.set(n, c === undefined ? v : `${c},${v}`);
    }
    for (const n of e.remove) ov.set(n, null);
  }
  if (authority && cur('host') !== authority) ov.set('host', authority);
  if (head.expectContinue || head.indexOf('expect') >= 0) ov.set('expect', null);
  if (trace) {
    const te = beginOnFields(r.a.deps.observers!, cur, 'outbound', '1.1');
    r.span = te.span;
    if (te.traceparent !== undefined) ov.set('traceparent', te.traceparent);
    if (te.tracestate !== undefined) ov.set('tracestate', te.tracestate);
  }
  const out: HeadEdits = {};
  if (target !== head.target) out.target = target;
  if (ov.size) {
    const remove: string[] = [];
    const add: string[] = [];
    for (const [n, v] of ov) {
      remove.push(n);
      if (v !== null) add.push(`${n}: ${v.replace(/[\r\n]/g, ' ')}`);
    }
    out.remove = remove;
    out.add = add;
  }
  return out;
}

class Engine {
  inflight = 0;
  readonly stats = { carried: 0, handedOff: 0 };
  readonly wheel = new TimerWheel(10, 1024);
  /** Engine pools for hosts outside the mesh (only reached when the hand-off was not possible: see where()). */
  private readonly externals = new Map<string, EnginePool>();
  readonly handler: ServerHandler;

  constructor(
    readonly router: OutboundRouter,
    readonly deps: OutboundDeps,
    readonly o: EngineAdapterOptions,
  ) {
    deps.pools.engineWheel ??= this.wheel;
    this.handler = {
      onRequest: (conn, head) => this.onRequest(conn, head),
      onRequestBody: (conn, chunk) => (conn.data as Req | null)?.body(chunk),
      onRequestEnd: (conn) => (conn.data as Req | null)?.end(),
      onRequestAbort: (conn) => {
        const r = conn.data as Req | null;
        if (!r) return;
        r.left = true;
        r.cur?.clientGone();
        // A mirror of a request that broke off must not look complete to its endpoint.
        if (r.mirrors) for (const m of r.mirrors) m.kill();
        r.settle();
      },
      onDrain: (conn) => (conn.data as Req | null)?.cur?.clientDrained(),
    };
  }

  accept(socket: Socket): void {
    const buffered = socket.read() as Buffer | null;
    this.attach(socket, buffered);
  }

  private attach(socket: Socket, bytes: Buffer | null): void {
    const c = new ServerConn(socket, this.handler, {
      limits: this.o.limits,
      wheel: this.wheel,
      // The first head's deadline is the listener's head guard (counted); later heads get node's 60 s.
      headersTimeoutMs: 60_000,
      idleTimeoutMs: this.o.idleTimeoutMs ?? 65_000,
      ...(this.deps.draining ? { draining: this.deps.draining } : {}),
    });
    c.feed(bytes);
    socket.resume();
  }

  /** The lookup the last where() made, for the router (read at once by onRequest: nothing runs in between). */
  private looked: Lookup | undefined;

  /**
   * Who carries this request: the engine, node:http, or (a promise) not
   * known until the directory or the Service's first config arrives.
   */
  private where(head: Head, req: MeshRequest, dst: OriginalDst | undefined, waited: boolean): 'engine' | 'node' | Promise<unknown> {
    this.looked = undefined;
    if (head.upgrade || head.method === 'CONNECT') return 'node';
    const { state, stream, self } = this.deps;
    if (!state.directory) return waited ? 'engine' : state.waitForDirectory(SUBSCRIBE_WAIT_MS);
    const t = lookupRequest(state, self.namespace, dst, req.authority, this.deps.selfAddress());
    if (t.kind === 'external') return 'node';
    this.looked = t;
    if (t.kind !== 'service') return 'engine';
    const key = `${t.entry.namespace}/${t.entry.name}`;
    const svc = state.services.get(key);
    if (!svc) {
      if (waited) return 'engine';
      stream.subscribe(key);
      return state.waitFor(key, SUBSCRIBE_WAIT_MS);
    }
    return 'engine';
  }

  private onRequest(conn: ServerConn, head: Head): void {
    const socket = conn.socket as WaitedSocket;
    this.o.onHead?.(socket);
    const dst = this.o.dstOf(socket);
    const req = requestOfHead(head);
    const w = this.where(head, req, dst, socket[kWaited] === true);
    socket[kWaited] = false;
    if (w === 'node') {
      this.stats.handedOff++;
      conn.data = null;
      handToHttp(this.o.http, socket, conn.detach());
      return;
    }
    if (w !== 'engine') {
      // Not known yet: the connection waits (paused, nothing read on) and starts over on this head.
      conn.data = null;
      const bytes = conn.detach();
      socket.pause();
      void w.then(() => {
        if (socket.destroyed) return;
        socket[kWaited] = true;
        this.attach(socket, bytes);
      });
      return;
    }
    if (head.expectContinue) conn.write(CONTINUE);
    this.stats.carried++;
    const r = new Req(this, conn, head, req);
    conn.data = r;
    this.inflight++;
    // The lookup where() made is the router's too (a request is looked up once).
    const t = this.looked;
    this.looked = undefined;
    this.router.route(r, dst, t);
  }

  external(host: string, port: number): EnginePool {
    const key = `${host}:${port}`;
    let p = this.externals.get(key);
    if (!p || p.isClosed) {
      if (this.externals.size >= 256) {
        for (const q of this.externals.values()) q.close();
        this.externals.clear();
      }
      p = new EnginePool({ host, port, wheel: this.wheel, idleTimeoutMs: 10_000, connectTimeoutMs: 5_000 });
      this.externals.set(key, p);
    }
    return p;
  }
}

export function createEngineAdapter(router: OutboundRouter, deps: OutboundDeps, o: EngineAdapterOptions): EngineAdapter {
  const e = new Engine(router, deps, o);
  return {
    accept: (s) => e.accept(s),
    inFlight: () => e.inflight,
    wheel: e.wheel,
    stats: e.stats,
  };
}

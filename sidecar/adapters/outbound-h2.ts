// The HTTP/2 adapter of the outbound listener: h2c prior knowledge (so
// gRPC) detected on 7001. Parse and write only: each stream becomes the
// request value, goes through the same router and decide() as an HTTP/1.1
// request, and the decision is carried out over a multiplexed HTTP/2 mesh
// hop (mTLS, ALPN h2) to the peer's inbound, h2c to an endpoint without a
// sidecar, or HTTP/2 over TLS to a BackendTLSPolicy backend.
//
// gRPC specifics: mesh-made errors are trailers-only responses (proxy-errors.ts);
// `grpc-timeout` is enforced here with the rule's timeouts (the shorter wins)
// and the time left is sent on; a caller's RST_STREAM cancels the upstream
// stream. Metrics carry grpc_status from the trailers.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream, type Http2Server } from 'node:http2';
import type { Socket } from 'node:net';
import { hopServerName } from '../../api/index.js';
import type { EndpointRt } from '../config/config-apply.js';
import { attemptTimeout, type Forward, type Mirror } from '../route/decide.js';
import { editRequestHeaders, type CompiledHeaderEdits } from '../route/filters.js';
import { formatGrpcTimeout, isGrpc, parseGrpcTimeout } from '../errors/grpc-status.js';
import { createH2Server, forwardH2, upstreamHeaders, type H2ForwardOptions } from '../hop/hop-h2.js';
import type { OriginalDst } from '../detect/original-dst.js';
import type { Carrier, Done, OutboundDeps, OutboundRouter } from '../route/outbound-route.js';
import { h2Answerer, type Answerer } from '../errors/proxy-errors.js';
import { requestOfH2, type MeshRequest } from '../route/request.js';
import type { SpanStart } from '../observe/trace.js';
import type { TryContext } from '../retry/resilience.js';
import { BodyReplay, keepsBody } from '../retry/retry-body.js';
import type { Readable } from 'node:stream';
import { contentLength } from '../observe/observe.js';

export interface H2Adapter {
  server: Http2Server;
  /** An h2c connection (its preface still unread in the socket). */
  accept(socket: Socket, dst: OriginalDst | undefined): void;
  /** GOAWAY to every caller session (in-flight streams finish; callers open new connections elsewhere). */
  goaway(): void;
}

const noop = (): void => {};

export function createH2Adapter(router: OutboundRouter, deps: OutboundDeps): H2Adapter {
  const { pools } = deps;
  const sessions = pools.h2Mesh;
  const dsts = new WeakMap<ServerHttp2Session, OriginalDst | undefined>();
  const live = new Set<ServerHttp2Session>();
  const server = createH2Server(onStream);

  function accept(socket: Socket, dst: OriginalDst | undefined): void {
    // The session reads bytes already buffered in the socket (the preface
    // that detection put back) before it reads from the handle; it is made
    // synchronously, so the listener tags exactly this connection's session.
    const tag = (s: ServerHttp2Session) => {
      dsts.set(s, dst);
      live.add(s);
      s.once('close', () => live.delete(s));
    };
    server.once('session', tag);
    server.emit('connection', socket);
    server.removeListener('session', tag);
  }

  function goawaySession(s: ServerHttp2Session): void {
    if (!s.closed && !s.destroyed) s.close();
  }

  /** The upstream session of an endpoint: the mesh hop for a meshed one, h2c for one without a sidecar. */
  function sessionOf(ep: EndpointRt): () => ClientHttp2Session {
    return ep.identity && ep.spiffe
      ? () => sessions.mesh(ep.ip, pools.inboundPort, hopServerName(ep.port, ep.identity!.serviceAccount, ep.identity!.namespace), ep.spiffe!)
      : () => sessions.plain(ep.ip, ep.port);
  }

  /**
   * One stream and its Carrier for the router. The carrier's parts are this
   * class's methods, not closures made per stream (the HTTP/1.1 engine's Req
   * says why: closures held for a request's life outlived every scavenge).
   */
  class H2Call implements Carrier {
    readonly start = performance.now();
    readonly grpc: boolean;
    readonly grpcTimeoutMs: number;
    readonly req: MeshRequest;
    readonly answer: Answerer;
    readonly bytesIn: number | undefined;
    span: SpanStart | undefined = undefined;
    constructor(
      readonly stream: ServerHttp2Stream,
      readonly headers: IncomingHttpHeaders,
    ) {
      this.grpc = isGrpc(headers['content-type']);
      this.grpcTimeoutMs = parseGrpcTimeout(headers['grpc-timeout']) ?? 0;
      this.req = requestOfH2(headers, this.grpc);
      this.answer = h2Answerer(stream, this.grpc);
      this.bytesIn = deps.observers?.active ? contentLength(headers['content-length']) : undefined;
    }
    gone(): boolean {
      return this.stream.destroyed;
    }
    forward(d: Forward, done: Done, tc?: TryContext): void {
      const { stream, headers } = this;
      const first = !tc || tc.index === 0;
      if (first && d.mirrors.length) for (const m of d.mirrors) mirror(stream, headers, m);
      // The body is kept for retries (up to 64 KiB; a gRPC unary call fits) from the first try on.
      if (tc && first && !stream.endAfterHeaders && !stream.readableEnded) tc.body = keepsBody(headers['content-length'] as string | undefined, true) ? new BodyReplay(stream) : 'unkept';
      const out = upstreamHeaders(headers, d.path, d.authority);
      for (let i = 0; i < d.requestEdits.length; i++) editRequestHeaders(out as IncomingHttpHeaders, d.requestEdits[i]!);
      const t = attemptTimeout(d.timeouts, performance.now() - this.start, this.grpcTimeoutMs);
      // BackendTLSPolicy: HTTP/2 over TLS (ALPN h2) to the endpoint, verified like the HTTP/1 path.
      const origin = d.backend.tlsOrigin;
      const ep = d.endpoint;
      // Without a try context the stream itself is relayed; with one: no body, the kept one, or (too large) the stream once.
      const kept = tc?.body as BodyReplay | 'unkept' | undefined;
      const body = !tc ? undefined : kept === undefined ? null : kept === 'unkept' ? undefined : (kept.body() ?? null);
      this.relay(origin ? () => origin.h2Session(ep) : sessionOf(ep), out, t.ms, d.responseEdits, done, tc, t.kind, body);
    }
    pod(ep: EndpointRt, done: Done): void {
      this.relay(sessionOf(ep), upstreamHeaders(this.headers, this.url(), this.req.authority), this.grpcTimeoutMs, undefined, done);
    }
    external(host: string, port: number, done: Done): void {
      this.relay(() => sessions.plain(host, port), upstreamHeaders(this.headers, this.url(), this.req.authority), this.grpcTimeoutMs, undefined, done);
    }
    private url(): string {
      return (this.headers[':path'] as string | undefined) ?? '/';
    }
    private relay(session: () => ClientHttp2Session, out: OutgoingHttpHeaders, timeoutMs: number, edits: CompiledHeaderEdits[] | undefined, done: Done, tc?: TryContext, kind?: 'request' | 'backendRequest', body?: Readable | Buffer | null): void {
      const grpc = this.grpc;
      if (timeoutMs > 0 && grpc) out['grpc-timeout'] = formatGrpcTimeout(timeoutMs);
      // observe (tap, access log, tracing): trace context into the forwarded headers; a record in the router's finish.
      const observers = deps.observers;
      const observing = observers?.active === true;
      if (observing) this.span = observers!.begin(out, 'outbound', '2');
      const o: H2ForwardOptions = { session, headers: out, grpc, timeoutMs, responseEdits: edits, done, countBytes: observing };
      if (tc) {
        o.gate = tc.gate;
        o.timeoutKind = kind;
        if (body !== undefined) o.body = body;
      }
      forwardH2(this.stream, o);
    }
  }

  function onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', noop);
    const session = stream.session as ServerHttp2Session;
    // Draining: this stream is served, then the caller's session goes away (GOAWAY);
    // a session busy when draining began gets it as its stream ends.
    if (deps.draining) {
      if (deps.draining()) goawaySession(session);
      else stream.once('close', () => deps.draining!() && goawaySession(session));
    }
    router.route(new H2Call(stream, headers), dsts.get(session));
  }

  /** RequestMirror: the same request to one endpoint of the mirror backend (over TLS for a BackendTLSPolicy backend); its answer is dropped and it never slows the original. */
  function mirror(down: ServerHttp2Stream, headers: IncomingHttpHeaders, m: Mirror): void {
    try {
      const ep = m.endpoint;
      const origin = m.backend.tlsOrigin;
      const s = origin ? origin.h2Session(ep) : sessionOf(ep)();
      const out = upstreamHeaders(headers, m.path, m.authority);
      for (let i = 0; i < m.requestEdits.length; i++) editRequestHeaders(out as IncomingHttpHeaders, m.requestEdits[i]!);
      const ended = down.endAfterHeaders;
      const copy = s.request(out, { endStream: ended });
      copy.on('error', noop);
      copy.on('response', () => copy.resume());
      copy.resume();
      if (!ended) {
        down.on('data', (c: Buffer) => {
          if (copy.writableLength > 1 << 20) copy.close(http2.constants.NGHTTP2_CANCEL);
          else if (!copy.closed) copy.write(c);
        });
        down.once('end', () => {
          if (!copy.closed) copy.end();
        });
        down.once('close', () => {
          if (!copy.closed && !copy.writableEnded) copy.close(http2.constants.NGHTTP2_CANCEL);
        });
      }
    } catch {
      // A mirror never affects the original request.
    }
  }

  return {
    server,
    accept,
    goaway() {
      for (const s of live) goawaySession(s);
    },
  };
}

// The HTTP/2 mesh hop and the h2c leg to an app: one multiplexed client
// session per (endpoint, hop server name, identity) reused by every stream,
// and forwardH2(), which relays one stream both ways with backpressure
// (pipe), trailers, resets and a deadline.
//
// Mesh sessions are mutual TLS with ALPN `h2` to the peer's inbound port;
// the peer must present exactly the endpoint's SPIFFE ID (as hop.ts).
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { spiffeIdOfCert } from '../../certs/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';
import type { EndpointPools } from './endpoint-pool.js';
import { editResponseHeaders, type CompiledHeaderEdits } from '../route/filters.js';
import { PeerIdentityError } from './hop.js';
import { grpcStatusOf } from '../errors/grpc-status.js';
import { classifyH2Close, classifyUpstreamError, CLIENT_GONE, GRPC, sendH2MeshError } from '../errors/proxy-errors.js';
import type { AttemptGate } from '../retry/resilience.js';
import type { AttemptError } from '../retry/retry-policy.js';
import type { Readable } from 'node:stream';

const C = http2.constants;

/** Flow-control windows: large enough for 4 MiB messages without a round trip per 64 KiB, small enough to push back. */
export const H2_SETTINGS: http2.Settings = { initialWindowSize: 1 << 20, maxConcurrentStreams: 10_000, enablePush: false };
const SESSION_WINDOW = 16 << 20;
/** A client session without any frame for this long is closed (like the HTTP/1 pools' keep-alive timeout). */
export const SESSION_IDLE_MS = 120_000;

/**
 * An h2 server for the sidecar's listeners (outbound h2c, inbound over the
 * mTLS hop): every stream goes to onStream; each session gets a 16 MiB
 * receive window (so one slow stream does not stall the connection) and
 * session errors end only that session.
 */
export function createH2Server(onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): http2.Http2Server {
  const server = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: 64 });
  server.on('stream', onStream);
  server.on('session', (s: http2.ServerHttp2Session) => {
    s.on('error', () => {});
    try {
      s.setLocalWindowSize(16 << 20);
    } catch {
      /* closed */
    }
  });
  server.on('sessionError', () => {});
  return server;
}

/** Headers that must not cross an HTTP/2 hop (RFC 9113 8.2.2) or that the next hop sets itself. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'host']);

/**
 * The request headers for the next hop: pseudo-headers rebuilt, connection
 * headers dropped, `te: trailers` kept (gRPC needs it).
 */
export function upstreamHeaders(h: IncomingHttpHeaders, path: string, authority: string): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':method': h[':method'] ?? 'GET', ':path': path, ':authority': authority, ':scheme': 'http' };
  for (const k of Object.keys(h)) {
    if (k.charCodeAt(0) === 58 /* ':' */ || CONNECTION_SPECIFIC.has(k)) continue;
    if (k === 'te' && h[k] !== 'trailers') continue;
    out[k] = h[k];
  }
  return out;
}

function downstreamHeaders(h: IncomingHttpHeaders, edits: CompiledHeaderEdits[] | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const k of Object.keys(h)) {
    if (k.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(k)) continue;
    out[k] = h[k];
  }
  if (edits?.length) {
    let flat: string[] = [];
    for (const k of Object.keys(out)) {
      const v = out[k];
      if (Array.isArray(v)) for (const x of v) flat.push(k, String(x));
      else if (v !== undefined) flat.push(k, String(v));
    }
    for (const e of edits) flat = editResponseHeaders(flat, e);
    const edited: OutgoingHttpHeaders = {};
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i]!.toLowerCase();
      const cur = edited[k];
      if (cur === undefined) edited[k] = flat[i + 1]!;
      else edited[k] = Array.isArray(cur) ? [...cur, flat[i + 1]!] : [String(cur), flat[i + 1]!];
    }
    return edited;
  }
  return out;
}

/** Client sessions by key; a closed or going-away session is replaced on next use. */
export class H2Sessions {
  private readonly sessions = new Map<string, ClientHttp2Session>();
  /** Sessions opened so far (tests and the report count them). */
  opened = 0;

  constructor(private readonly identity: IdentityHolder | undefined) {}

  private keep(key: string, s: ClientHttp2Session): ClientHttp2Session {
    this.opened++;
    this.sessions.set(key, s);
    const drop = () => {
      if (this.sessions.get(key) === s) this.sessions.delete(key);
    };
    s.on('error', drop);
    s.once('close', drop);
    s.once('goaway', drop);
    // An idle session (endpoint gone, caller quiet) is closed gracefully: streams in flight finish, new ones get a new session.
    s.setTimeout(SESSION_IDLE_MS, () => {
      drop();
      s.close();
    });
    s.on('frameError', () => {});
    s.once('connect', () => {
      try {
        s.setLocalWindowSize(SESSION_WINDOW);
      } catch {
        /* closed meanwhile */
      }
    });
    return s;
  }

  /** The session to a meshed endpoint's inbound (mTLS, ALPN h2, identity checked). */
  mesh(ip: string, inboundPort: number, serverName: string, expectSpiffe: string): ClientHttp2Session {
    const key = `${ip}|${serverName}|${expectSpiffe}`;
    const cur = this.sessions.get(key);
    if (cur && !cur.closed && !cur.destroyed) return cur;
    const id = this.identity?.current;
    if (!id) throw Object.assign(new Error('no mesh certificate yet'), { code: 'WEFT_NO_CERT' });
    const host = ip.includes(':') ? `[${ip}]` : ip;
    const s = http2.connect(`https://${host}:${inboundPort}`, {
      settings: H2_SETTINGS,
      createConnection: () => {
        // Our own TCP socket, so TCP_NODELAY is surely set on it (small frames of many streams must not wait).
        const tcp = netConnect({ host: ip, port: inboundPort, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
        const sock = tlsConnect({
          socket: tcp,
          servername: serverName,
          secureContext: id.context,
          ALPNProtocols: ['h2'],
          rejectUnauthorized: true,
          checkServerIdentity: (_h: string, cert: PeerCertificate) => {
            const got = spiffeIdOfCert(cert);
            return got === expectSpiffe ? undefined : new PeerIdentityError(`peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expectSpiffe}`);
          },
        });
        tcp.once('error', (e) => sock.destroy(e));
        return sock;
      },
    });
    return this.keep(key, s);
  }

  /** An h2c (prior knowledge) session to a plain endpoint or the app behind the inbound. */
  plain(ip: string, port: number): ClientHttp2Session {
    const key = `${ip}:${port}`;
    const cur = this.sessions.get(key);
    if (cur && !cur.closed && !cur.destroyed) return cur;
    const host = ip.includes(':') ? `[${ip}]` : ip;
    return this.keep(
      key,
      http2.connect(`http://${host}:${port}`, {
        settings: H2_SETTINGS,
        createConnection: () => netConnect({ host: ip, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 }),
      }),
    );
  }

  get size(): number {
    return this.sessions.size;
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
  }
}

export interface H2Result {
  status: number;
  /** grpc-status from the trailers (or a trailers-only response, or the mesh's own answer); '' when none. */
  grpcStatus: string;
  /** Set when the mesh produced the answer (upstream failure, timeout, client gone). */
  proxyError: string | undefined;
  /** Response body bytes relayed (only with countBytes). */
  bytesOut?: number | undefined;
}

export interface H2ForwardOptions {
  /** Opens (or reuses) the upstream session; may throw (no certificate yet). */
  session: () => ClientHttp2Session;
  headers: OutgoingHttpHeaders;
  grpc: boolean;
  /** 0: none. On expiry: 504 / DEADLINE_EXCEEDED, and the upstream stream is cancelled. */
  timeoutMs: number;
  responseEdits: CompiledHeaderEdits[] | undefined;
  done: (r: H2Result) => void;
  /** Which timeout `timeoutMs` is: a try's own (backendRequest) may be retried by the gate. */
  timeoutKind?: 'request' | 'backendRequest';
  /** Resilience: asked before a try's outcome is written; a dropped try ends quietly (the router retries). */
  gate?: AttemptGate;
  /** The request body of this try (retry-body.ts); null: none; undefined: relay `down` itself. */
  body?: Readable | Buffer | null;
  /** Count the response body bytes for the record (observers on): one more 'data' listener, only then. */
  countBytes?: boolean;
}

const noop = (): void => {};

/** Relays `down` to a new stream on the upstream session and back. */
export function forwardH2(down: ServerHttp2Stream, o: H2ForwardOptions): void {
  let finished = false;
  let status = 0;
  let grpcStatus = '';
  let trailers: OutgoingHttpHeaders | undefined;
  let timer: NodeJS.Timeout | undefined;
  let up: ClientHttp2Stream | undefined;
  let dropped = false;
  let bytesOut = 0;

  const finish = (r: H2Result) => {
    if (finished) return;
    finished = true;
    if (timer) clearTimeout(timer);
    if (o.countBytes) r.bytesOut = bytesOut;
    o.done(r);
  };
  /** The gate tries again: end this try without a word to the caller. */
  const drop = () => {
    finished = true;
    dropped = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    const u = up;
    if (u) {
      down.unpipe(u);
      u.unpipe(down);
      if (!u.closed) u.close(C.NGHTTP2_CANCEL);
    }
  };
  const meshError = (httpStatus: number, reason: string) => {
    const g = sendH2MeshError(down, o.grpc, httpStatus, reason);
    finish({ status: down.headersSent && status ? status : o.grpc ? 200 : httpStatus, grpcStatus: g, proxyError: reason });
  };

  down.on('error', noop);
  // The caller went away (RST_STREAM or connection lost): cancel upstream.
  down.once('close', () => {
    if (!finished) {
      finish({ status: status || 499, grpcStatus: o.grpc ? String(GRPC.CANCELLED) : '', proxyError: CLIENT_GONE });
      if (up && !up.closed) up.close(C.NGHTTP2_CANCEL);
    }
  });
  down.on('wantTrailers', () => {
    if (dropped) return;
    try {
      down.sendTrailers(trailers ?? {});
    } catch {
      down.close(C.NGHTTP2_INTERNAL_ERROR);
    }
  });

  const body = o.body;
  try {
    up = o.session().request(o.headers, { endStream: body === undefined ? down.endAfterHeaders || down.readableEnded : body === null || (Buffer.isBuffer(body) && body.length === 0) });
  } catch (e) {
    const ee = e as Error & { code?: string };
    if (o.gate && !o.gate.onError({ code: ee.code, message: ee.message, requestSent: false })) {
      drop();
      return;
    }
    // Nothing was sent: the request was not processed (503) unless the peer's TLS or identity is at fault.
    const f = classifyUpstreamError(e as Error & { code?: string });
    const known = f.kind === 'tls' || f.kind === 'identity' || f.kind === 'no-config';
    meshError(known ? f.status : 503, known ? f.reason : `upstream unavailable: ${(e as Error).message}`);
    return;
  }
  const u = up;
  u.on('error', noop);
  if (body === undefined) {
    if (!down.endAfterHeaders && !down.readableEnded) down.pipe(u);
  } else if (Buffer.isBuffer(body)) {
    if (body.length > 0) u.end(body);
  } else if (body) body.pipe(u);

  if (o.timeoutMs > 0) {
    timer = setTimeout(() => {
      timer = undefined;
      if (finished) return;
      if (o.gate && !status && o.timeoutKind === 'backendRequest' && !o.gate.onError({ timedOut: true, requestSent: true })) {
        drop();
        return;
      }
      const reason = `request timeout of ${Math.round(o.timeoutMs)} ms`;
      down.unpipe(u);
      u.unpipe(down);
      if (!down.headersSent) meshError(504, reason);
      else if (o.grpc) {
        // Headers went out: end the body and say DEADLINE_EXCEEDED in the trailers.
        trailers = { 'grpc-status': String(GRPC.DEADLINE_EXCEEDED), 'grpc-message': reason };
        down.end();
        finish({ status, grpcStatus: String(GRPC.DEADLINE_EXCEEDED), proxyError: reason });
      } else {
        down.close(C.NGHTTP2_CANCEL);
        finish({ status, grpcStatus: '', proxyError: reason });
      }
      if (!u.closed) u.close(C.NGHTTP2_CANCEL);
    }, o.timeoutMs);
  }

  u.on('response', (h, flags) => {
    if (finished || down.destroyed) return;
    if (o.gate) {
      const head = (n: string) => {
        const v = h[n];
        return v === undefined ? undefined : String(v);
      };
      if (!o.gate.onHead(Number(h[':status']) || 502, head)) {
        drop();
        return;
      }
    }
    status = Number(h[':status']) || 502;
    const out = downstreamHeaders(h, o.responseEdits);
    out[':status'] = status;
    if (flags & C.NGHTTP2_FLAG_END_STREAM) {
      // Trailers-only (gRPC errors) or an empty response.
      grpcStatus = grpcStatusOf(h);
      down.respond(out, { endStream: true });
      finish({ status, grpcStatus, proxyError: undefined });
      return;
    }
    down.respond(out, { waitForTrailers: true });
    // Not ended by pipe: on 'close' we know whether the stream ended or was reset.
    u.pipe(down, { end: false });
    if (o.countBytes) u.on('data', (c: Buffer) => (bytesOut += c.length));
  });
  u.on('trailers', (t: IncomingHttpHeaders) => {
    grpcStatus = grpcStatusOf(t);
    trailers = downstreamHeaders(t, undefined);
  });
  u.once('close', () => {
    if (finished) return;
    const code = u.rstCode ?? C.NGHTTP2_NO_ERROR;
    if (status && code === C.NGHTTP2_NO_ERROR && u.readableEnded) {
      // Ended normally: end ours; wantTrailers sends the trailers that came.
      if (!down.closed && !down.writableEnded) down.end();
      finish({ status, grpcStatus, proxyError: undefined });
      return;
    }
    const err = (u as unknown as { _weftErr?: Error & { code?: string } })._weftErr;
    if (!status && o.gate) {
      // No response: nothing reached the caller yet, so the gate may try again.
      const root = (err?.cause instanceof Error ? err.cause : err) as (Error & { code?: string }) | undefined;
      const id = u.id ?? 0;
      const goaway = root?.code === 'ERR_HTTP2_GOAWAY_SESSION' || err?.code === 'ERR_HTTP2_GOAWAY_SESSION';
      const ae: AttemptError = { code: root?.code, message: root?.message, requestSent: id > 0, h2Code: code };
      if (goaway) {
        // http2 fails the streams a GOAWAY left out (above its last stream id) this way.
        ae.streamId = id;
        ae.goawayLastStreamId = id - 1;
      }
      if (!o.gate.onError(ae)) {
        drop();
        return;
      }
    }
    if (!status) {
      // No response: the one classification (proxy-errors.ts) says what the caller gets.
      const f = classifyH2Close(code, err);
      if (f.passReset && !down.closed) {
        // The peer reset this stream before answering (its session is fine): pass the reset on.
        down.close(code);
        finish({ status: 0, grpcStatus: '', proxyError: f.reason });
        return;
      }
      meshError(f.status, f.reason);
      return;
    }
    if (code !== C.NGHTTP2_NO_ERROR && !down.closed) {
      // A reset after the response started passes through.
      down.close(code);
      finish({ status, grpcStatus, proxyError: `upstream reset (code ${code})` });
    } else {
      if (!down.closed && !down.writableEnded) down.end();
      finish({ status, grpcStatus, proxyError: undefined });
    }
  });
  u.on('error', (e: Error) => {
    (u as unknown as { _weftErr?: Error })._weftErr = e;
  });
}

/**
 * The client sessions of one sidecar, owned by its pools (they close with
 * them): 'mesh' for the outbound's hops and plain endpoints, 'app' for the
 * inbound's h2c leg.
 */
export function h2SessionsOf(pools: EndpointPools, kind: 'mesh' | 'app', _identity?: IdentityHolder | undefined): H2Sessions {
  return kind === 'mesh' ? pools.h2Mesh : pools.h2App;
}

// HTTP/2 on the inbound: a mesh hop that negotiated ALPN `h2` carries
// multiplexed streams for one app port (from the server name). The app is
// spoken to in h2c (prior knowledge) over one reused session per app port:
// the decision is by ALPN, since only an h2 caller (gRPC, HTTP/2 apps) makes
// the outbound choose an h2 hop. The caller's SPIFFE ID goes to the app as
// `x-weft-peer-identity` (a value the caller sent is replaced). Every stream
// is authorized against the config current when it opens (so a policy edit
// reaches sessions opened before it): a denied call gets 403 with
// `weft-proxy-error`, a denied gRPC call PERMISSION_DENIED (trailers-only).
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream, type Http2Server } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../../certs/index.js';
import { createH2Server, forwardH2, h2SessionsOf, upstreamHeaders } from '../hop/hop-h2.js';
import { isGrpc } from '../errors/grpc-status.js';
import { peerLabels, SeriesCache, type PeerLabels } from '../admin/metrics.js';
import type { InboundContext } from './inbound-context.js';
import { PROXY_ERROR_HEADER } from '../errors/proxy-errors.js';
import { encodeGrpcMessage } from '../errors/grpc-status.js';

/** gRPC PERMISSION_DENIED (grpc/doc/statuscodes.md). */
const GRPC_PERMISSION_DENIED = '7';

/** The listener's context, with the authorization in force (listen-inbound.ts passes it). */
type AuthzContext = InboundContext;
import { contentLength } from '../observe/observe.js';
import type { SpanStart } from '../observe/trace.js';

const PEER_IDENTITY_HEADER = 'x-weft-peer-identity';

interface ConnInfo {
  port: number;
  spiffe: string;
  peer: PeerLabels;
}

interface InState {
  ctx: InboundContext;
  server: Http2Server;
  info: WeakMap<ServerHttp2Session, ConnInfo>;
  series: Map<number, SeriesCache>;
  peers: Map<string, PeerLabels>;
}

const states = new WeakMap<EndpointPoolsKey, InState>();
type EndpointPoolsKey = InboundContext['pools'];

function stateOf(ctx: InboundContext): InState {
  let st = states.get(ctx.pools);
  if (st) return st;
  const server = createH2Server((stream, headers) => onStream(created, stream, headers));
  const created: InState = { ctx, server, info: new WeakMap(), series: new Map(), peers: new Map() };
  states.set(ctx.pools, created);
  return created;
}

function seriesFor(st: InState, port: number): SeriesCache {
  let s = st.series.get(port);
  if (!s) {
    const self = st.ctx.self;
    s = new SeriesCache(st.ctx.metrics, {
      direction: 'inbound', src_namespace: '', src_workload: '', src_service_account: '',
      dst_namespace: self.namespace, dst_workload: self.workload, dst_service_account: self.serviceAccount,
      dst_service: '', dst_port: String(port), route_kind: '', route_namespace: '', route_name: '', route_rule: '',
      backend: '', grpc_status: '', tls: 'false', peer_identity: '',
    }, 'src');
    st.series.set(port, s);
  }
  return s;
}

function peerOf(st: InState, spiffe: string): PeerLabels {
  let p = st.peers.get(spiffe);
  if (!p) {
    const id = parseSpiffeId(spiffe);
    p = peerLabels({ namespace: id?.namespace ?? '', workload: '', serviceAccount: id?.serviceAccount ?? '', identity: spiffe, tls: true });
    st.peers.set(spiffe, p);
  }
  return p;
}

let pending: ConnInfo | undefined;

/** The inbound hook: a TLS mesh hop with ALPN h2 for app port `port`. */
export function inboundH2(socket: TLSSocket, port: number, spiffe: string, ctx: InboundContext): void {
  const st = stateOf(ctx);
  pending = { port, spiffe, peer: peerOf(st, spiffe) };
  const tag = (s: ServerHttp2Session) => {
    if (pending) st.info.set(s, pending);
  };
  st.server.once('session', tag);
  st.server.emit('connection', socket);
  // The session is made synchronously; never let the listener tag a later connection's session.
  st.server.removeListener('session', tag);
  pending = undefined;
}

function onStream(st: InState, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  stream.on('error', () => {});
  const start = performance.now();
  const info = st.info.get(stream.session as ServerHttp2Session);
  // Draining: this stream is served, then the caller's session goes away (GOAWAY).
  if (st.ctx.draining?.() && !stream.session?.closed) stream.session?.close();
  if (!info) {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  // observe (tap, access log, tracing): a record of every stream, a denied one too.
  const obs = st.ctx.metrics.observers;
  const observed = (status: number, grpcStatus: string, proxyError: string | undefined, span: SpanStart | undefined, bytesOut = 0): void => {
    obs.complete('inbound', seriesFor(st, info.port).base, { ip: st.ctx.podIP, port: info.port, spiffe: info.spiffe }, { method: String(headers[':method'] ?? 'GET'), authority: String(headers[':authority'] ?? ''), path: String(headers[':path'] ?? '/'),
      status, grpcStatus, proxyError, start, sent: start, bytesIn: contentLength(headers['content-length']), bytesOut }, span);
  };
  const authz = (st.ctx as AuthzContext).authz;
  if (authz) {
    const raw = (headers[':path'] as string | undefined) ?? '/';
    const q = raw.indexOf('?');
    const d = authz.check(info.port, info.spiffe, q < 0 ? raw : raw.slice(0, q));
    if (!d.allowed) {
      const grpc = isGrpc(headers['content-type']);
      deny(stream, grpc, d.reason);
      seriesFor(st, info.port).get(info.peer, grpc ? 200 : 403, grpc ? GRPC_PERMISSION_DENIED : '').record((performance.now() - start) / 1000);
      if (obs.active) observed(grpc ? 200 : 403, grpc ? GRPC_PERMISSION_DENIED : '', d.reason, obs.begin(headers, 'inbound', '2'));
      return;
    }
  }
  const out = upstreamHeaders(headers, (headers[':path'] as string | undefined) ?? '/', (headers[':authority'] as string | undefined) ?? '');
  out[PEER_IDENTITY_HEADER] = info.spiffe;
  const series = seriesFor(st, info.port);
  const sessions = h2SessionsOf(st.ctx.pools, 'app', undefined);
  const { podIP } = st.ctx;
  // observe (tap, access log, tracing): continue the trace for the app; a record in done().
  const span = obs.active ? obs.begin(out, 'inbound', '2') : undefined;
  forwardH2(stream, {
    session: () => sessions.plain(podIP, info.port),
    headers: out,
    grpc: isGrpc(headers['content-type']),
    timeoutMs: 0,
    responseEdits: undefined,
    countBytes: obs.active,
    done: (r) => {
      series.get(info.peer, r.status, r.grpcStatus).record((performance.now() - start) / 1000);
      if (obs.active) observed(r.status, r.grpcStatus, r.proxyError, span, r.bytesOut);
    },
  });
}

/** A denied stream: trailers-only PERMISSION_DENIED for gRPC, else 403; the request body is not read. */
function deny(stream: ServerHttp2Stream, grpc: boolean, reason: string): void {
  if (stream.destroyed || stream.closed) return;
  const why = reason.replace(/[^\x20-\x7e]/g, ' ');
  if (grpc) {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': GRPC_PERMISSION_DENIED, 'grpc-message': encodeGrpcMessage(reason), [PROXY_ERROR_HEADER]: why },
      { endStream: true },
    );
  } else {
    const body = `${reason}\n`;
    stream.respond({ ':status': 403, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), [PROXY_ERROR_HEADER]: why });
    stream.end(body);
  }
  // Nothing of the request goes anywhere; drop what the caller still sends.
  stream.resume();
}

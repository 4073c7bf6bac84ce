// HTTP/2 on the inbound: a mesh hop that negotiated ALPN `h2` carries
// multiplexed streams for one app port (from the server name). The app is
// spoken to in h2c (prior knowledge) over one reused session per app port:
// the decision is by ALPN, since only an h2 caller (gRPC, HTTP/2 apps) makes
// the outbound choose an h2 hop. The caller's SPIFFE ID goes to the app as
// `x-weft-peer-identity` (a value the caller sent is replaced).
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream, type Http2Server } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { parseSpiffeId } from '../certs/index.js';
import { createH2Server, forwardH2, h2SessionsOf, upstreamHeaders } from './hop-h2.js';
import { isGrpc } from './grpc-status.js';
import { peerLabels, SeriesCache, type PeerLabels } from './metrics.js';
import type { InboundContext } from './protocol-hooks.js';
import { contentLength } from './observe.js';

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
  if (!info) {
    stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  const out = upstreamHeaders(headers, (headers[':path'] as string | undefined) ?? '/', (headers[':authority'] as string | undefined) ?? '');
  out[PEER_IDENTITY_HEADER] = info.spiffe;
  const series = seriesFor(st, info.port);
  const sessions = h2SessionsOf(st.ctx.pools, 'app', undefined);
  const { podIP } = st.ctx;
  // observe (tap, access log, tracing): continue the trace for the app; a record in done().
  const obs = st.ctx.metrics.observers, span = obs.active ? obs.begin(out, 'inbound', '2') : undefined;
  forwardH2(stream, {
    session: () => sessions.plain(podIP, info.port),
    headers: out,
    grpc: isGrpc(headers['content-type']),
    timeoutMs: 0,
    responseEdits: undefined,
    done: (r) => {
      series.get(info.peer, r.status, r.grpcStatus).record((performance.now() - start) / 1000);
      if (obs.active) obs.complete('inbound', series.base, { ip: podIP, port: info.port, spiffe: info.spiffe }, { method: String(headers[':method'] ?? 'GET'), authority: String(headers[':authority'] ?? ''), path: String(headers[':path'] ?? '/'),
        status: r.status, grpcStatus: r.grpcStatus, proxyError: r.proxyError, start, sent: start, bytesIn: contentLength(headers['content-length']) }, span);
    },
  });
}

// HTTP/2 prior knowledge (h2c, so gRPC) on the outbound listener. One
// http2 server per sidecar takes the detected connections; each stream goes
// through the same service lookup, route matcher, filters and backend choice
// as an HTTP/1.1 request, then over a multiplexed HTTP/2 mesh hop (mTLS,
// ALPN h2) to the peer's inbound, or h2c to an endpoint without a sidecar.
//
// gRPC specifics: mesh-made errors are trailers-only responses (no route →
// UNIMPLEMENTED, no endpoint / rule's fixed 500 / upstream failure →
// UNAVAILABLE, timeout → DEADLINE_EXCEEDED); `grpc-timeout` is enforced here
// (with the rule's timeouts, the shorter wins) and the time left is sent on;
// a caller's RST_STREAM cancels the upstream stream. Metrics carry
// grpc_status from the trailers.
//
// Importing this module registers the hooks (outbound h2c, inbound ALPN h2).
import http2, { type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { hopServerName, PORTS } from '../api/index.js';
import { observe } from './balancer-p2c-ewma.js';
import { chooseBackend, chooseEndpoint, sessionAffinity } from './backend.js';
import { buildEndpoint, type BuiltPort, type BuiltRouteBackend, type BuiltRule, type BuiltService, type EndpointRt, type MeshState } from './config-apply.js';
import type { EndpointPools } from './endpoint-pool.js';
import { editRequestHeaders, isRewrite, redirectLocation, rewritePath, type CompiledFilters } from './filters.js';
import { formatGrpcTimeout, isGrpc, parseGrpcTimeout, sendH2MeshError } from './grpc-status.js';
import { createH2Server, forwardH2, h2SessionsOf, type H2Sessions, upstreamHeaders, type H2Result } from './hop-h2.js';
import { inboundH2 } from './inbound-h2.js';
import { NO_PEER, SeriesCache, type PeerLabels } from './metrics.js';
import type { OriginalDst } from './original-dst.js';
import { setProtocolHooks, type OutboundContext } from './protocol-hooks.js';
import { parseAuthority, resolveTarget, type Target } from './service-lookup.js';
import { contentLength } from './observe.js';

const SUBSCRIBE_WAIT_MS = 2_000;
const FAILURE_PENALTY_MS = 1_000;

interface OutState {
  ctx: OutboundContext;
  server: Http2Server;
  sessions: H2Sessions;
  dsts: WeakMap<ServerHttp2Session, OriginalDst | undefined>;
  externalSeries: SeriesCache;
  badSeries: SeriesCache;
  podSeries: Map<number, SeriesCache>;
  podEndpoints: Map<string, EndpointRt>;
}

const states = new WeakMap<MeshState, OutState>();

function stateOf(ctx: OutboundContext): OutState {
  let st = states.get(ctx.state);
  if (st) return st;
  const { self, metrics } = ctx;
  const baseExternal = {
    direction: 'outbound', src_namespace: self.namespace, src_workload: self.workload, src_service_account: self.serviceAccount,
    dst_namespace: '', dst_workload: '', dst_service_account: '', dst_service: 'external', dst_port: '',
    route_kind: '', route_namespace: '', route_name: '', route_rule: '', backend: '', grpc_status: '', tls: 'false', peer_identity: '',
  };
  const server = createH2Server((stream, headers) => onStream(created, stream, headers));
  const created: OutState = {
    ctx,
    server,
    sessions: h2SessionsOf(ctx.pools, 'mesh', ctx.identity),
    dsts: new WeakMap(),
    externalSeries: new SeriesCache(metrics, baseExternal, 'dst'),
    badSeries: new SeriesCache(metrics, { ...baseExternal, dst_service: '' }, 'dst'),
    podSeries: new Map(),
    podEndpoints: new Map(),
  };
  states.set(ctx.state, created);
  return created;
}

let pendingDst: OriginalDst | undefined;

/** The outbound hook: an h2c connection (its preface still unread in the socket). */
export function outboundH2c(socket: Socket, dst: OriginalDst | undefined, ctx: OutboundContext): void {
  const st = stateOf(ctx);
  // The session reads bytes already buffered in the socket (the preface that
  // detection put back) before it reads from the handle.
  pendingDst = dst;
  st.server.once('session', (s: ServerHttp2Session) => st.dsts.set(s, pendingDst));
  st.server.emit('connection', socket);
  pendingDst = undefined;
}

interface Req {
  stream: ServerHttp2Stream;
  headers: IncomingHttpHeaders;
  grpc: boolean;
  start: number;
  dst: OriginalDst | undefined;
  /** Deadline from grpc-timeout (ms from start), 0 when none. */
  grpcTimeoutMs: number;
}

function onStream(st: OutState, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
  stream.on('error', () => {});
  const r: Req = {
    stream,
    headers,
    grpc: isGrpc(headers['content-type']),
    start: performance.now(),
    dst: st.dsts.get(stream.session as ServerHttp2Session),
    grpcTimeoutMs: parseGrpcTimeout(headers['grpc-timeout']) ?? 0,
  };
  const { state } = st.ctx;
  if (!state.directory) {
    void state.waitForDirectory(SUBSCRIBE_WAIT_MS).then(() => {
      if (!stream.destroyed) route(st, r);
    });
    return;
  }
  route(st, r);
}

function fail(r: Req, series: SeriesCache, peer: PeerLabels, status: number, reason: string): void {
  const g = sendH2MeshError(r.stream, r.grpc, status, reason);
  series.get(peer, r.grpc ? 200 : status, g).record((performance.now() - r.start) / 1000);
}

function route(st: OutState, r: Req): void {
  const { state, self, stream } = st.ctx;
  const h = r.headers;
  const authority = (h[':authority'] ?? h.host ?? '') as string;
  const auth = parseAuthority(authority);
  if (!auth && !r.dst) return fail(r, st.badSeries, NO_PEER, 400, 'request has no :authority');
  const target = resolveTarget(state, self.namespace, r.dst, auth ?? { host: '', port: 80 });
  const url = (h[':path'] as string | undefined) ?? '/';
  switch (target.kind) {
    case 'service': {
      const key = `${target.entry.namespace}/${target.entry.name}`;
      const svc = state.services.get(key);
      if (svc) return routeService(st, r, svc, target.port, url, authority);
      stream.subscribe(key);
      void state.waitFor(key, SUBSCRIBE_WAIT_MS).then((s) => {
        if (r.stream.destroyed) return;
        if (s) routeService(st, r, s, target.port, url, authority);
        else fail(r, st.badSeries, NO_PEER, 503, `no config for service ${key} yet`);
      });
      return;
    }
    case 'pod':
      return toPod(st, r, target, url, authority);
    case 'unknown':
      return fail(r, st.badSeries, NO_PEER, 502, `unknown service ${target.namespace}/${target.name}`);
    case 'external':
      return toExternal(st, r, target, url, authority);
  }
}

function applyRequestFilters(f: CompiledFilters, h: IncomingHttpHeaders, path: string, query: string, prefix: string, upstreamPath: string, authority: { v: string }): string {
  for (let i = 0; i < f.request.length; i++) {
    const x = f.request[i]!;
    if (isRewrite(x)) {
      if (x.hostname) authority.v = x.hostname;
      if (x.path) upstreamPath = rewritePath(x.path, path, prefix) + (query ? `?${query}` : '');
    } else editRequestHeaders(h as Parameters<typeof editRequestHeaders>[0], x);
  }
  return upstreamPath;
}

function redirect(st: OutState, r: Req, series: SeriesCache, f: CompiledFilters, authority: string, port: number, path: string, query: string, prefix: string): void {
  const status = f.redirect!.statusCode;
  const loc = redirectLocation(f.redirect!, { scheme: 'http', host: authority, port, path, query }, prefix);
  if (!r.stream.destroyed) {
    r.stream.respond({ ':status': status, location: loc, 'content-length': 0 }, { endStream: true });
  }
  series.get(NO_PEER, status).record((performance.now() - r.start) / 1000);
}

function routeService(st: OutState, r: Req, svc: BuiltService, port: number, url: string, authority: string): void {
  const bp: BuiltPort | undefined = svc.ports.get(port);
  if (!bp) return fail(r, st.badSeries, NO_PEER, 502, `service ${svc.key} has no port ${port}`);
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const method = (r.headers[':method'] as string | undefined) ?? 'GET';
  let rule: BuiltRule | undefined;
  let prefix = '';
  if (bp.defaultRule) rule = bp.defaultRule;
  else {
    const m = bp.matcher!.match({ method, path, query, headers: r.headers });
    if (!m) return fail(r, bp.noRoute, NO_PEER, 404, `no route of service ${svc.key} port ${port} matches`);
    rule = bp.rules[m.rule]!;
    prefix = m.prefix;
  }
  if (rule.fixed) return fail(r, rule.series, NO_PEER, rule.fixed.status, rule.fixed.reason);
  let upstreamPath = url;
  const auth = { v: authority };
  if (!rule.filters.empty) {
    const f = rule.filters;
    if (f.redirect) return redirect(st, r, rule.series, f, authority, port, path, query, prefix);
    upstreamPath = applyRequestFilters(f, r.headers, path, query, prefix, upstreamPath, auth);
    if (rule.mirrors.length) mirror(st, r, rule, upstreamPath, auth.v);
  }
  const rb = chooseBackend(rule, r);
  if (!rb) return fail(r, rule.series, NO_PEER, 500, 'no backend with weight > 0');
  toBackend(st, r, rule, rb, upstreamPath, path, query, prefix, auth);
}

function toBackend(st: OutState, r: Req, rule: BuiltRule, rb: BuiltRouteBackend, upstreamPath: string, path: string, query: string, prefix: string, auth: { v: string }): void {
  if (rb.invalid || !rb.backend) {
    const inv = rb.invalid ?? { status: 500, reason: 'backend not found' };
    return fail(r, rb.series, NO_PEER, inv.status, inv.reason);
  }
  if (!rb.filters.empty) {
    const f = rb.filters;
    if (f.redirect) return redirect(st, r, rb.series, f, auth.v, 0, path, query, prefix);
    upstreamPath = applyRequestFilters(f, r.headers, path, query, prefix, upstreamPath, auth);
  }
  const backend = rb.backend;
  if (backend.tlsRefusal && !backend.tlsOrigin) return fail(r, rb.series, NO_PEER, 503, backend.tlsRefusal);
  const sessionReq = rule.session || backend.session ? ({ headers: r.headers } as unknown as IncomingMessage) : undefined;
  const ep = sessionReq ? chooseEndpoint(rule, backend, sessionReq) : backend.balancer.pick();
  if (!ep) return fail(r, rb.series, NO_PEER, 503, `no endpoints for ${backend.key}`);
  let edits = rb.responseEdits;
  const affinity = sessionReq && sessionAffinity();
  if (affinity) {
    // Session persistence: the cookie/header that starts or refreshes the session, added to the response.
    const extra: string[] = [];
    affinity.onResponse(rule, backend, ep, sessionReq!, extra);
    if (extra.length) edits = [...(edits ?? []), { set: [], add: [[extra[0]!, extra[1]!]], remove: [] }];
  }
  const elapsed = performance.now() - r.start;
  const requestLeft = rule.requestMs ? Math.max(1, rule.requestMs - elapsed) : 0;
  const grpcLeft = r.grpcTimeoutMs ? Math.max(1, r.grpcTimeoutMs - elapsed) : 0;
  const timeoutMs = minTimeout(minTimeout(requestLeft, rule.backendRequestMs), grpcLeft);
  // BackendTLSPolicy: HTTP/2 over TLS (ALPN h2) to the endpoint, verified like the HTTP/1 path.
  const origin = backend.tlsOrigin;
  dispatch(st, r, ep, upstreamPath, auth.v, timeoutMs, rb.series, edits, origin ? () => origin.h2Session(ep) : undefined);
}

function dispatch(st: OutState, r: Req, ep: EndpointRt, upstreamPath: string, authority: string, timeoutMs: number, series: SeriesCache, edits: BuiltRouteBackend['responseEdits'], sessionOf?: () => ReturnType<H2Sessions['plain']>): void {
  const headers = upstreamHeaders(r.headers, upstreamPath, authority);
  if (timeoutMs > 0 && r.grpc) headers['grpc-timeout'] = formatGrpcTimeout(timeoutMs);
  const sessions = st.sessions;
  const inboundPort = peerInboundPort(st.ctx.pools);
  const session = sessionOf ?? (ep.identity && ep.spiffe
    ? () => sessions.mesh(ep.ip, inboundPort, hopServerName(ep.port, ep.identity!.serviceAccount, ep.identity!.namespace), ep.spiffe!)
    : () => sessions.plain(ep.ip, ep.port));
  ep.inflight++;
  const sent = performance.now();
  // observe (tap, access log, tracing): trace context into the forwarded headers; a record in done().
  const obs = st.ctx.metrics.observers, span = obs.active ? obs.begin(headers, 'outbound', '2') : undefined;
  forwardH2(r.stream, {
    session,
    headers,
    grpc: r.grpc,
    timeoutMs,
    responseEdits: edits,
    done: (res: H2Result) => {
      ep.inflight--;
      const now = performance.now();
      const failed = res.proxyError && res.proxyError !== 'client cancelled';
      observe(ep, failed ? Math.max(now - sent, FAILURE_PENALTY_MS) : now - sent, now);
      series.get(ep.peer, res.status, res.grpcStatus).record((now - r.start) / 1000);
      if (obs.active) obs.complete('outbound', series.base, ep, { method: String(headers[':method']), authority, path: upstreamPath, status: res.status, grpcStatus: res.grpcStatus, proxyError: res.proxyError, start: r.start, sent,
        bytesIn: contentLength(r.headers['content-length']), bytesOut: 0 }, span);
    },
  });
}

/** The peers' inbound port the HTTP/1 pools use (7002, or a test's override). */
function peerInboundPort(pools: EndpointPools): number {
  return (pools as unknown as { inboundPort?: number }).inboundPort ?? PORTS.inbound;
}

/** RequestMirror: the same request to one endpoint of each mirror backend; its answer is dropped and it never slows the original. */
function mirror(st: OutState, r: Req, rule: BuiltRule, upstreamPath: string, authority: string): void {
  for (const b of rule.mirrors) {
    if (b.tlsRefusal) continue;
    const ep = b.balancer.pick();
    if (!ep) continue;
    try {
      const s = ep.identity && ep.spiffe
        ? st.sessions.mesh(ep.ip, peerInboundPort(st.ctx.pools), hopServerName(ep.port, ep.identity.serviceAccount, ep.identity.namespace), ep.spiffe)
        : st.sessions.plain(ep.ip, ep.port);
      const ended = r.stream.endAfterHeaders;
      const m = s.request(upstreamHeaders(r.headers, upstreamPath, authority), { endStream: ended });
      m.on('error', () => {});
      m.on('response', () => m.resume());
      m.resume();
      if (!ended) {
        r.stream.on('data', (c: Buffer) => {
          if (m.writableLength > 1 << 20) m.close(http2.constants.NGHTTP2_CANCEL);
          else if (!m.closed) m.write(c);
        });
        r.stream.once('end', () => {
          if (!m.closed) m.end();
        });
        r.stream.once('close', () => {
          if (!m.closed && !m.writableEnded) m.close(http2.constants.NGHTTP2_CANCEL);
        });
      }
    } catch {
      // A mirror never affects the original request.
    }
  }
}

function toPod(st: OutState, r: Req, t: Extract<Target, { kind: 'pod' }>, url: string, authority: string): void {
  const key = `${t.ip}:${t.port}`;
  let ep = st.podEndpoints.get(key);
  if (!ep || ep.spiffe !== t.template.spiffe) {
    ep = buildEndpoint({ ip: t.ip, port: t.port, identity: t.template.identity, workload: t.template.workload, pod: t.template.pod, ready: true }, st.ctx.self.trustDomain);
    st.podEndpoints.set(key, ep);
  }
  let series = st.podSeries.get(t.port);
  if (!series) {
    const s = st.ctx.self;
    series = new SeriesCache(st.ctx.metrics, {
      direction: 'outbound', src_namespace: s.namespace, src_workload: s.workload, src_service_account: s.serviceAccount,
      dst_namespace: '', dst_workload: '', dst_service_account: '', dst_service: '', dst_port: String(t.port),
      route_kind: '', route_namespace: '', route_name: '', route_rule: '', backend: '', grpc_status: '', tls: 'false', peer_identity: '',
    }, 'dst');
    st.podSeries.set(t.port, series);
  }
  dispatch(st, r, ep, url, authority, r.grpcTimeoutMs, series, undefined);
}

function toExternal(st: OutState, r: Req, t: Extract<Target, { kind: 'external' }>, url: string, authority: string): void {
  // A request addressed to this listener itself would loop through it forever.
  const sock = r.stream.session?.socket;
  if (sock && t.port === sock.localPort && (t.host === sock.localAddress || t.host === 'localhost' || t.host === '127.0.0.1')) {
    return fail(r, st.badSeries, NO_PEER, 508, 'request addressed to the sidecar itself (proxy loop)');
  }
  const sessions = st.sessions;
  forwardH2(r.stream, {
    session: () => sessions.plain(t.host, t.port),
    headers: upstreamHeaders(r.headers, url, authority),
    grpc: r.grpc,
    timeoutMs: r.grpcTimeoutMs,
    responseEdits: undefined,
    done: (res) => st.externalSeries.get(NO_PEER, res.status, res.grpcStatus).record((performance.now() - r.start) / 1000),
  });
}

function minTimeout(a: number, b: number): number {
  if (!a) return b;
  if (!b) return a;
  return Math.min(a, b);
}

setProtocolHooks({ outboundH2c, inboundH2, inboundAlpn: ['h2'] });

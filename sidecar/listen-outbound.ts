// The outbound listener (POD_IP:7001): the app's calls, redirected by
// iptables or sent to us as its HTTP proxy. Per connection: original
// destination and protocol detection once; HTTP/1.x goes to a node HTTP
// server (keep-alive, pipelining); opaque and TLS go to the opaque path.
// Per request: service → route → filters → backend → endpoint → hop.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { detect } from './detect.js';
import { handToHttp } from './handoff.js';
import { protocolHooks } from './protocol-hooks.js';
import { opaqueDirect, opaqueToMesh } from './opaque.js';
import type { IdentityHolder } from './bootstrap.js';
import { originalDst, type OriginalDst } from './original-dst.js';
import { observe } from './balancer-p2c-ewma.js';
import { chooseBackend, chooseEndpoint, sessionAffinity } from './backend.js';
import { buildEndpoint, type BuiltPort, type BuiltRouteBackend, type BuiltRule, type BuiltService, type EndpointRt, type MeshState, type SelfInfo } from './config-apply.js';
import type { ConfigStream } from './config-stream.js';
import type { EndpointPools } from './endpoint-pool.js';
import { editRequestHeaders, isRewrite, redirectLocation, rewritePath, type CompiledFilters } from './filters.js';
import { DISCARD_HANDLER, ForwardHandler, prepareRequestHeaders, teeBody, UpgradeHandler, upgradeOf, upgradeResponse, type ForwardResult } from './forward.js';
import { NO_PEER, SeriesCache, type RequestSeries, type SidecarMetrics } from './metrics.js';
import { answerClientError, sendProxyError, sendRedirect } from './proxy-errors.js';
import { parseAuthority, resolveTarget, type Target } from './service-lookup.js';
import { ioMark } from './observe.js';

/** How long a request for a Service waits for its first config after subscribing. */
export const SUBSCRIBE_WAIT_MS = 2_000;
/** Latency charged to an endpoint for a failed request. */
const FAILURE_PENALTY_MS = 1_000;
/** How long a connection that was not redirected may stay silent before it is closed. */
const CLIENT_FIRST_WAIT_MS = 60_000;

export interface OutboundOptions {
  state: MeshState;
  stream: ConfigStream;
  pools: EndpointPools;
  metrics: SidecarMetrics;
  self: SelfInfo;
  identity: IdentityHolder;
  detectTimeoutMs: number;
  maxHeaderSize: number | undefined;
  /** This listener's own address, so a request addressed to it is refused instead of looping. */
  selfAddress: () => { ip: string; port: number };
  log: (line: string) => void;
}

const kDst = Symbol('weft.originalDst');
type DstSocket = Socket & { [kDst]?: OriginalDst | undefined };

export interface Outbound {
  server: NetServer;
  http: HttpServer;
  /** Accepted connections still open (for draining). */
  sockets: Set<Socket>;
}

export function createOutbound(o: OutboundOptions): Outbound {
  const { state, stream, pools, metrics, self } = o;
  const sockets = new Set<Socket>();

  const baseExternal = {
    direction: 'outbound', src_namespace: self.namespace, src_workload: self.workload, src_service_account: self.serviceAccount,
    dst_namespace: '', dst_workload: '', dst_service_account: '', dst_service: 'external', dst_port: '',
    route_kind: '', route_namespace: '', route_name: '', route_rule: '', backend: '', grpc_status: '', tls: 'false', peer_identity: '',
  };
  const externalSeries = new SeriesCache(metrics, baseExternal, 'dst');
  const badRequestSeries = new SeriesCache(metrics, { ...baseExternal, dst_service: '' }, 'dst');
  const podSeries = new Map<number, SeriesCache>();
  const podEndpoints = new Map<string, EndpointRt>();

  const http = createHttpServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000, ...(o.maxHeaderSize ? { maxHeaderSize: o.maxHeaderSize } : {}) }, onRequest);
  http.on('clientError', answerClientError);
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => onRequest(req, upgradeResponse(req, socket, head)));

  const server = createNetServer({ noDelay: true, keepAlive: true }, (socket: DstSocket) => {
    metrics.connection(socket, 'outbound', '', false);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const dst = originalDst(socket);
    socket[kDst] = dst;
    // A Service port's declared appProtocol skips detection (server-first protocols never wait).
    const entry = dst ? state.directory?.byAddr.get(`${dst.address}:${dst.port}`) : undefined;
    const appProtocol = entry?.ports.find((p) => p.port === dst!.port)?.appProtocol;
    // Without a redirect the app dialled us as its HTTP proxy: no server-first
    // protocol can be waiting, so a slow first byte is no reason to give up.
    const timeoutMs = dst ? o.detectTimeoutMs : CLIENT_FIRST_WAIT_MS;
    void detect(socket, { timeoutMs, appProtocol, onResult: (p) => metrics.detect.inc({ direction: 'outbound', protocol: p }) }).then((proto) => {
      if (socket.destroyed) return;
      if (proto === 'http1') return handToHttp(http, socket);
      const h2 = proto === 'h2c' ? protocolHooks().outboundH2c : undefined;
      if (h2) return h2(socket, dst, { state, stream, pools, metrics, identity: o.identity, self, log: o.log });
      toOpaque(socket, proto, dst);
    });
  });

  /**
   * Opaque TCP (and TLS the app originates, and h2c until the HTTP/2 path
   * lands): to a Service's endpoint over the mesh hop, to a meshed pod, or
   * untouched to where it was going. Without an original destination (local
   * mode) there is nowhere to send the bytes.
   */
  function toOpaque(socket: Socket, proto: string, dst: OriginalDst | undefined): void {
    if (!dst) {
      // (A client that closed without sending anything is not worth a line.)
      if (socket.bytesRead > 0) o.log(`outbound: ${proto} connection without an original destination closed`);
      socket.destroy();
      return;
    }
    const target = resolveTarget(state, self.namespace, dst, { host: dst.address, port: dst.port });
    const tlsOpts = { secureContext: () => o.identity.current!.context, trustDomain: self.trustDomain, metrics };
    const toEndpoint = (ep: EndpointRt | undefined) => {
      if (!ep) {
        socket.destroy();
        return;
      }
      if (ep.identity && o.identity.current) opaqueToMesh(socket, { ip: ep.ip, port: ep.port, identity: ep.identity }, tlsOpts);
      else opaqueDirect(socket, { address: ep.ip, port: ep.port }, { metrics });
    };
    if (target.kind === 'pod') {
      if (o.identity.current) opaqueToMesh(socket, { ip: target.ip, port: target.port, identity: target.template.identity! }, tlsOpts);
      else socket.destroy();
      return;
    }
    if (target.kind !== 'service') {
      opaqueDirect(socket, dst, { metrics });
      return;
    }
    const key = `${target.entry.namespace}/${target.entry.name}`;
    const pick = (svc: BuiltService | undefined) => {
      const bp = svc?.ports.get(target.port);
      const b = bp ? svc!.backends.get(svc!.config.ports.find((p) => p.port === target.port)!.defaultBackend) : undefined;
      toEndpoint(b && !b.tlsRefusal ? b.balancer.pick() : undefined);
    };
    const svc = state.services.get(key);
    if (svc) return pick(svc);
    stream.subscribe(key);
    void state.waitFor(key, SUBSCRIBE_WAIT_MS).then(pick);
  }

  function record(series: RequestSeries, start: number): void {
    series.record((performance.now() - start) / 1000);
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    // Before the first directory every name would look external: wait for it (bounded).
    if (!state.directory) {
      void state.waitForDirectory(SUBSCRIBE_WAIT_MS).then(() => {
        if (!res.destroyed) route(req, res, start);
      });
      return;
    }
    route(req, res, start);
  }

  function route(req: IncomingMessage, res: ServerResponse, start: number): void {
    const dst = (req.socket as DstSocket)[kDst];
    let url = req.url ?? '/';
    let authority = req.headers.host ?? '';
    if (url.charCodeAt(0) !== 47 /* '/' */ && url !== '*') {
      // absolute-form: we are the app's HTTP proxy.
      const scheme = url.indexOf('://');
      if (scheme > 0) {
        const slash = url.indexOf('/', scheme + 3);
        authority = slash < 0 ? url.slice(scheme + 3) : url.slice(scheme + 3, slash);
        url = slash < 0 ? '/' : url.slice(slash);
        req.headers.host = authority;
      }
    }
    const auth = parseAuthority(authority);
    if (!auth && !dst) {
      record(badRequestSeries.get(NO_PEER, 400), start);
      sendProxyError(res, 400, 'request has no Host header or absolute URI');
      return;
    }
    const target = resolveTarget(state, self.namespace, dst, auth ?? { host: '', port: 80 });
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = q < 0 ? '' : url.slice(q + 1);
    switch (target.kind) {
      case 'service': {
        const key = `${target.entry.namespace}/${target.entry.name}`;
        const svc = state.services.get(key);
        if (svc) return routeService(req, res, svc, target.port, url, path, query, start);
        stream.subscribe(key);
        void state.waitFor(key, SUBSCRIBE_WAIT_MS).then((s) => {
          if (res.destroyed) return;
          if (s) routeService(req, res, s, target.port, url, path, query, start);
          else {
            record(badRequestSeries.get(NO_PEER, 503), start);
            sendProxyError(res, 503, `no config for service ${key} yet`);
          }
        });
        return;
      }
      case 'pod':
        return toPod(req, res, target, url, start);
      case 'unknown':
        record(badRequestSeries.get(NO_PEER, 502), start);
        sendProxyError(res, 502, `unknown service ${target.namespace}/${target.name}`);
        return;
      case 'external':
        return toExternal(req, res, target, url, start);
    }
  }

  function routeService(req: IncomingMessage, res: ServerResponse, svc: BuiltService, port: number, url: string, path: string, query: string, start: number): void {
    const bp: BuiltPort | undefined = svc.ports.get(port);
    if (!bp) {
      record(badRequestSeries.get(NO_PEER, 502), start);
      sendProxyError(res, 502, `service ${svc.key} has no port ${port}`);
      return;
    }
    let rule: BuiltRule | undefined;
    let prefix = '';
    if (bp.defaultRule) rule = bp.defaultRule;
    else {
      const m = bp.matcher!.match({ method: req.method ?? 'GET', path, query, headers: req.headers });
      if (!m) {
        record(bp.noRoute.get(NO_PEER, 404), start);
        sendProxyError(res, 404, `no route of service ${svc.key} port ${port} matches`);
        return;
      }
      rule = bp.rules[m.rule]!;
      prefix = m.prefix;
    }
    if (rule.fixed) {
      record(rule.series.get(NO_PEER, rule.fixed.status), start);
      sendProxyError(res, rule.fixed.status, rule.fixed.reason);
      return;
    }
    const hasBody = prepareRequestHeaders(req.headers);
    let upstreamPath = url;
    if (!rule.filters.empty) {
      const f = rule.filters;
      if (f.redirect) {
        const status = f.redirect.statusCode;
        record(rule.series.get(NO_PEER, status), start);
        sendRedirect(res, status, redirectLocation(f.redirect, { scheme: 'http', host: req.headers.host ?? '', port, path, query }, prefix));
        return;
      }
      upstreamPath = applyRequestFilters(f, req, path, query, prefix, upstreamPath);
      if (rule.mirrors.length) mirror(rule, req, upstreamPath, hasBody);
    }
    const rb = chooseBackend(rule, req);
    if (!rb) {
      record(rule.series.get(NO_PEER, 500), start);
      sendProxyError(res, 500, 'no backend with weight > 0');
      return;
    }
    forwardToBackend(req, res, rule, rb, upstreamPath, path, query, prefix, hasBody, start);
  }

  function applyRequestFilters(f: CompiledFilters, req: IncomingMessage, path: string, query: string, prefix: string, upstreamPath: string): string {
    for (let i = 0; i < f.request.length; i++) {
      const x = f.request[i]!;
      if (isRewrite(x)) {
        if (x.hostname) req.headers.host = x.hostname;
        if (x.path) upstreamPath = rewritePath(x.path, path, prefix) + (query ? `?${query}` : '');
      } else editRequestHeaders(req.headers, x);
    }
    return upstreamPath;
  }

  function forwardToBackend(req: IncomingMessage, res: ServerResponse, rule: BuiltRule, rb: BuiltRouteBackend, upstreamPath: string, path: string, query: string, prefix: string, hasBody: boolean, start: number): void {
    if (rb.invalid || !rb.backend) {
      const inv = rb.invalid ?? { status: 500, reason: 'backend not found' };
      record(rb.series.get(NO_PEER, inv.status), start);
      sendProxyError(res, inv.status, inv.reason);
      return;
    }
    if (!rb.filters.empty) {
      const f = rb.filters;
      if (f.redirect) {
        const status = f.redirect.statusCode;
        record(rb.series.get(NO_PEER, status), start);
        sendRedirect(res, status, redirectLocation(f.redirect, { scheme: 'http', host: req.headers.host ?? '', port: 0, path, query }, prefix));
        return;
      }
      upstreamPath = applyRequestFilters(f, req, path, query, prefix, upstreamPath);
    }
    const backend = rb.backend;
    if (backend.tlsRefusal && !backend.tlsOrigin) {
      record(rb.series.get(NO_PEER, 503), start);
      sendProxyError(res, 503, backend.tlsRefusal);
      return;
    }
    const ep = chooseEndpoint(rule, backend, req);
    if (!ep) {
      record(rb.series.get(NO_PEER, 503), start);
      sendProxyError(res, 503, `no endpoints for ${backend.key}`);
      return;
    }
    const series = rb.series;
    // timeouts.request counts from when the request arrived (a wait for the
    // Service's first config included); backendRequest from the dispatch.
    const requestLeft = rule.requestMs ? Math.max(1, rule.requestMs - (performance.now() - start)) : 0;
    const timeoutMs = minTimeout(requestLeft, rule.backendRequestMs);
    const kind = rule.backendRequestMs && (!requestLeft || rule.backendRequestMs <= requestLeft) ? 'backendRequest' : 'request';
    let hook: ((headers: string[]) => void) | undefined;
    const affinity = (rule.session || backend.session) && sessionAffinity();
    if (affinity) hook = (headers) => affinity.onResponse(rule, backend, ep, req, headers);
    dispatchTo(backend.tlsOrigin ? backend.tlsOrigin.dispatcher(ep) : pools.forEndpoint(ep), ep, req, res, upstreamPath, hasBody, rb.responseEdits, timeoutMs, kind, series, start, hook);
  }

  function dispatchTo(
    d: Dispatcher, ep: EndpointRt, req: IncomingMessage, res: ServerResponse, upstreamPath: string, hasBody: boolean,
    edits: BuiltRouteBackend['responseEdits'], timeoutMs: number, kind: 'request' | 'backendRequest', series: SeriesCache, start: number,
    responseHook?: (headers: string[]) => void,
  ): void {
    ep.inflight++;
    const sent = performance.now();
    // observe (tap, access log, tracing): trace context into the forwarded headers; a record in done().
    const obs = metrics.observers, span = obs.active ? obs.begin(req.headers, 'outbound') : undefined, io = obs.active ? ioMark(req.socket, req.headers['content-length']) : undefined;
    const done = (r: ForwardResult) => {
      ep.inflight--;
      const now = performance.now();
      // A failed endpoint (refused, reset, timed out) counts as very slow, so
      // P2C steers around it until the penalty decays.
      observe(ep, r.proxyError && r.status !== 499 ? Math.max(now - sent, FAILURE_PENALTY_MS) : now - sent, now);
      series.get(ep.peer, r.status).record((now - start) / 1000);
      if (obs.active) obs.complete('outbound', series.base, ep, { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: upstreamPath, status: r.status, proxyError: r.proxyError, start, sent, io }, span);
    };
    const up = upgradeOf(req);
    const handler = up ? new UpgradeHandler(res, done, up.socket, up.head) : new ForwardHandler(res, edits, done, timeoutMs, kind);
    if (responseHook) handler.responseHook = responseHook;
    try {
      d.dispatch({ path: upstreamPath, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: req.headers as Record<string, string | string[]>, body: hasBody && !up ? bodyOf(req) : null, upgrade: up?.protocol ?? null }, handler);
    } catch (e) {
      handler.onError(e as Error);
    }
  }

  /** When a mirror tees the body, the main request reads its own copy. */
  function bodyOf(req: IncomingMessage): IncomingMessage | PassThrough {
    const main = (req as IncomingMessage & { __weftMain?: PassThrough }).__weftMain;
    return main ?? req;
  }

  function mirror(rule: BuiltRule, req: IncomingMessage, upstreamPath: string, hasBody: boolean): void {
    for (const b of rule.mirrors) {
      if (b.tlsRefusal && !b.tlsOrigin) continue;
      const ep = b.balancer.pick();
      if (!ep) continue;
      let body: PassThrough | null = null;
      if (hasBody) {
        const r = req as IncomingMessage & { __weftMain?: PassThrough };
        if (!r.__weftMain) {
          r.__weftMain = new PassThrough();
          req.pipe(r.__weftMain);
        }
        body = teeBody(req);
      }
      try {
        (b.tlsOrigin ? b.tlsOrigin.dispatcher(ep) : pools.forEndpoint(ep)).dispatch({ path: upstreamPath, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: { ...req.headers } as Record<string, string | string[]>, body }, DISCARD_HANDLER);
      } catch {
        // A mirror never affects the original request.
      }
    }
  }

  function toPod(req: IncomingMessage, res: ServerResponse, t: Extract<Target, { kind: 'pod' }>, url: string, start: number): void {
    const key = `${t.ip}:${t.port}`;
    let ep = podEndpoints.get(key);
    if (!ep || ep.spiffe !== t.template.spiffe) {
      ep = buildEndpoint({ ip: t.ip, port: t.port, identity: t.template.identity, workload: t.template.workload, pod: t.template.pod, ready: true }, self.trustDomain);
      podEndpoints.set(key, ep);
    }
    let series = podSeries.get(t.port);
    if (!series) {
      series = new SeriesCache(metrics, { ...baseExternal, dst_service: '', dst_port: String(t.port) }, 'dst');
      podSeries.set(t.port, series);
    }
    const hasBody = prepareRequestHeaders(req.headers);
    dispatchTo(pools.forEndpoint(ep), ep, req, res, url, hasBody, undefined, 0, 'request', series, start);
  }

  function toExternal(req: IncomingMessage, res: ServerResponse, t: Extract<Target, { kind: 'external' }>, url: string, start: number): void {
    const me = o.selfAddress();
    if (t.port === me.port && (t.host === me.ip || t.host === 'localhost' || t.host === '127.0.0.1')) {
      record(badRequestSeries.get(NO_PEER, 508), start);
      sendProxyError(res, 508, 'request addressed to the sidecar itself (proxy loop)');
      return;
    }
    const hasBody = prepareRequestHeaders(req.headers);
    const host = t.host.includes(':') ? `[${t.host}]` : t.host;
    // observe (tap, access log, tracing): trace context into the forwarded headers; a record in done().
    const obs = metrics.observers, span = obs.active ? obs.begin(req.headers, 'outbound') : undefined, io = obs.active ? ioMark(req.socket, req.headers['content-length']) : undefined, sent = performance.now();
    const done = (r: ForwardResult) => {
      externalSeries.get(NO_PEER, r.status).record((performance.now() - start) / 1000);
      if (obs.active) obs.complete('outbound', externalSeries.base, { ip: t.host, port: t.port }, { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: url, status: r.status, proxyError: r.proxyError, start, sent, io }, span);
    };
    const up = upgradeOf(req);
    const handler = up ? new UpgradeHandler(res, done, up.socket, up.head) : new ForwardHandler(res, undefined, done, 0, 'request');
    try {
      pools.external.dispatch(
        { origin: `http://${host}:${t.port}`, path: url, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: req.headers as Record<string, string | string[]>, body: hasBody && !up ? req : null, upgrade: up?.protocol ?? null },
        handler,
      );
    } catch (e) {
      handler.onError(e as Error);
    }
  }

  return { server, http, sockets };
}

function minTimeout(a: number, b: number): number {
  if (!a) return b;
  if (!b) return a;
  return Math.min(a, b);
}

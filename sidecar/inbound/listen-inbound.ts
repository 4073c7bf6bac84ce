// The inbound listener (POD_IP:7002). A connection that iptables redirected
// (it has an original destination) is a caller outside the mesh: the
// interception code's handlePlainInbound decides (strict: refused;
// permissive: HTTP comes back here untagged, the rest is spliced). Anything
// else is a mesh hop: TLS with a client certificate chained to the trust
// bundle is required; the server name says which app port and must name
// this workload's identity; the caller's SPIFFE ID is read once per
// connection and passed to the app as `x-weft-peer-identity` (a value the
// caller sent is never passed on). Authorization (authz-state.ts) is checked
// per HTTP request against the config current at that moment (so an edit
// reaches keep-alive connections), and per connection for opaque TCP, before
// a byte reaches the app.
import { HeadGuard } from '../listen/head-guard.js';
import { DEFAULT_LIMITS } from '../listen/limits.js';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import { ALPN_OPAQUE, parseHopServerName } from '../../api/index.js';
import { parseSpiffeId, spiffeIdOfCert } from '../../certs/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';
import type { SelfInfo } from '../config/config-apply.js';
import type { EndpointPools } from '../hop/endpoint-pool.js';
import { ForwardHandler, prepareRequestHeaders, UpgradeHandler, upgradeOf, upgradeResponse, type ForwardResult } from '../adapters/forward.js';
import { handlePlainInbound } from './inbound-plain.js';
import { peerLabels, SeriesCache, type PeerLabels, type SidecarMetrics } from '../admin/metrics.js';
import { opaqueInbound } from '../hop/opaque.js';
import { answerClientError, sendProxyError } from '../errors/proxy-errors.js';
import { HOP_ALPN } from '../hop/hop.js';
import { handToHttp } from '../listen/handoff.js';
import { inboundH2 } from './inbound-h2.js';
import type { InboundContext } from './inbound-context.js';
import type { InboundAuthz } from './authz-state.js';
import { beginOnFields, ioMark } from '../observe/observe.js';

import { ALPN_MUX, DEFAULT_LIMITS as DEFAULT_HEAD_LIMITS, MuxServer, Pool as EnginePool, type Head, type StreamWatch } from '../http1/index.js';

export const PEER_IDENTITY_HEADER = 'x-weft-peer-identity';

export interface InboundOptions {
  /** A connection's first request head must arrive within this (ms; --request-head-timeout): else 408. */
  requestHeadTimeoutMs?: number | undefined;
  podIP: string;
  self: SelfInfo;
  identity: IdentityHolder;
  pools: EndpointPools;
  metrics: SidecarMetrics;
  strict: boolean;
  detectTimeoutMs: number;
  maxHeaderSize: number | undefined;
  log: (line: string) => void;
  /** True once the sidecar drains: HTTP/1.1 answers carry `Connection: close`, HTTP/2 sessions get a GOAWAY. */
  draining?: (() => boolean) | undefined;
  /** Inbound authorization (AuthorizationPolicy, default inbound policy); absent: every caller allowed. */
  authz?: InboundAuthz;
}

interface ConnInfo {
  port: number;
  peer: PeerLabels;
  spiffe: string;
  app: Dispatcher;
}
const kInfo = Symbol('weft.inbound');
type TaggedSocket = Socket & { [kInfo]?: ConnInfo };

export interface Inbound {
  server: NetServer;
  tls: TlsServer;
  http: HttpServer;
  sockets: Set<Socket>;
  /** Serve a plaintext HTTP/1 connection for app port `port` (permissive mode). */
  servePlainHttp(socket: Socket, port: number): void;
  /** Ends the weft-mux/1 connections that carry no stream now (the drain, once the peers dropped this endpoint). */
  closeIdleMux(): void;
}

export function createInbound(o: InboundOptions): Inbound {
  const { podIP, self, identity, pools, metrics } = o;
  const sockets = new Set<Socket>();
  const seriesByPort = new Map<number, SeriesCache>();
  const peers = new Map<string, PeerLabels>();
  const plainPeer = peerLabels({ namespace: '', workload: '', serviceAccount: '', identity: '', tls: false });

  function seriesFor(port: number): SeriesCache {
    let s = seriesByPort.get(port);
    if (!s) {
      s = new SeriesCache(metrics, {
        direction: 'inbound', src_namespace: '', src_workload: '', src_service_account: '',
        dst_namespace: self.namespace, dst_workload: self.workload, dst_service_account: self.serviceAccount,
        dst_service: '', dst_port: String(port), route_kind: '', route_namespace: '', route_name: '', route_rule: '',
        backend: '', grpc_status: '', tls: 'false', peer_identity: '',
      }, 'src');
      seriesByPort.set(port, s);
    }
    return s;
  }

  function peerOf(spiffe: string): PeerLabels {
    let p = peers.get(spiffe);
    if (!p) {
      const id = parseSpiffeId(spiffe);
      p = peerLabels({ namespace: id?.namespace ?? '', workload: '', serviceAccount: id?.serviceAccount ?? '', identity: spiffe, tls: true });
      peers.set(spiffe, p);
    }
    return p;
  }

  // inbound-h2.ts reads `authz` and `draining` from its context (inbound-context.ts).
  const h2ctx: InboundContext = { podIP, metrics, pools, self, log: o.log, draining: o.draining, ...(o.authz ? { authz: o.authz } : {}) };

  const http = createHttpServer({ keepAliveTimeout: 75_000, requestTimeout: 0, headersTimeout: 60_000, ...(o.maxHeaderSize ? { maxHeaderSize: o.maxHeaderSize } : {}) }, onRequest);
  http.on('clientError', answerClientError);
  // Slow heads are closed at the request-head timeout (head-guard.ts); armed once the connection is HTTP/1.1.
  const guard = new HeadGuard({ timeoutMs: o.requestHeadTimeoutMs ?? DEFAULT_LIMITS.requestHeadTimeoutMs, onTimeout: () => metrics.limitRejections.inc({ direction: 'inbound', limit: 'request_head_timeout' }) });
  http.on('request', (req: { socket: Socket }) => guard.done(req.socket));
  http.on('upgrade', (req: { socket: Socket }) => guard.done(req.socket));
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => onRequest(req, upgradeResponse(req, socket, head)));

  const tls = createTlsServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [ALPN_MUX, 'h2', ...HOP_ALPN, ALPN_OPAQUE],
    SNICallback: (servername, cb) => {
      const hop = parseHopServerName(servername);
      const id = identity.current;
      if (!id) return cb(new Error('no certificate yet'), undefined);
      // The caller addressed an identity: it must be ours (a stale endpoint list must not reach the wrong pod).
      if (!hop || hop.namespace !== self.namespace || hop.serviceAccount !== self.serviceAccount) {
        return cb(new Error(`server name ${servername} is not for ${self.serviceAccount}.${self.namespace}`), undefined);
      }
      cb(null, id.context);
    },
  });
  identity.on('changed', applyContext);
  if (identity.current) applyContext();
  function applyContext(): void {
    const id = identity.current;
    // The default context verifies client certificates too; keep it current.
    if (id) tls.setSecureContext({ key: id.keyPem, cert: id.certChainPem, ca: id.bundlePem });
  }

  tls.on('secureConnection', (s: TLSSocket) => {
    const hop = parseHopServerName(typeof s.servername === 'string' ? s.servername : '');
    const spiffe = spiffeIdOfCert(s.getPeerCertificate()) ?? '';
    if (!hop || !spiffe) {
      s.destroy();
      return;
    }
    metrics.connection(s, 'inbound', spiffe, true);
    s.on('error', () => {});
    if (s.alpnProtocol === ALPN_OPAQUE) {
      // Opaque TCP is authorized once, for the connection, before the app is dialled.
      if (o.authz && !o.authz.check(hop.port, spiffe).allowed) {
        s.destroy();
        return;
      }
      opaqueInbound(s, { podIp: podIP, port: hop.port, peer: spiffe });
      return;
    }
    if (s.alpnProtocol === 'h2') return inboundH2(s, hop.port, spiffe, h2ctx);
    if (s.alpnProtocol === ALPN_MUX) return serveMux(s, hop.port, spiffe);
    (s as unknown as TaggedSocket)[kInfo] = { port: hop.port, peer: peerOf(spiffe), spiffe, app: pools.pin(pools.plain(podIP, hop.port, 'inbound')) };
    guard.accept(s);
    http.emit('connection', s);
  });
  // A caller without a valid mesh certificate: close it (and the socket under it) at once.
  tls.on('tlsClientError', (_e: Error, s: TLSSocket) => s.destroy());

  // weft-mux/1: each stream is one HTTP/1.1 exchange, relayed by the engine
  // to the app over its own connection pool, with the same per-request steps
  // as the HTTP/1.1 path below (identity header, authorization, metrics, drain).
  const appPools = new Map<number, EnginePool>();
  const muxConns = new Map<TLSSocket, MuxServer>();
  function closeIdleMux(): void {
    for (const [s, m] of muxConns) {
      if (m.streams.size > 0) continue;
      muxConns.delete(s);
      s.end();
    }
  }
  function serveMux(s: TLSSocket, port: number, spiffe: string): void {
    let app = appPools.get(port);
    if (!app) {
      app = new EnginePool({ host: podIP, port, onConnected: (sock) => metrics.connection(sock, 'inbound', '', false), ...(o.maxHeaderSize ? { limits: { ...DEFAULT_HEAD_LIMITS, maxHeadBytes: o.maxHeaderSize } } : {}) });
      appPools.set(port, app);
    }
    const series = seriesFor(port);
    const peer = peerOf(spiffe);
    const authz = o.authz;
    s.once('close', () => muxConns.delete(s));
    const m = new MuxServer(s, app, [`${PEER_IDENTITY_HEADER}: ${spiffe}`], {
      remove: [PEER_IDENTITY_HEADER],
      ...(o.draining ? { draining: o.draining } : {}),
      ...(authz
        ? {
            admit(head: Head) {
              const t = head.target;
              const q = t.indexOf('?');
              const d = authz.check(port, spiffe, q < 0 ? t : t.slice(0, q));
              return d.allowed ? null : { status: 403, reason: d.reason };
            },
          }
        : {}),
      done: (status, start) => series.get(peer, status).record((performance.now() - start) / 1000),
      watch: (head) => watchStream(head, port, spiffe, series),
    });
    muxConns.set(s, m);
  }

  /**
   * observe (tap, access log, tracing) for one weft-mux/1 stream: the trace
   * continued as on the HTTP/1.1 path (a new traceparent replaces the
   * caller's in the head the app gets), one record when the stream ends.
   */
  function watchStream(head: Head, port: number, spiffe: string, series: SeriesCache): StreamWatch | undefined {
    const obs = metrics.observers;
    if (!obs.active) return undefined;
    const start = performance.now();
    const { span, traceparent, tracestate } = beginOnFields(obs, (n) => head.get(n), 'inbound');
    let add: string[] | undefined;
    let remove: string[] | undefined;
    for (const [name, v] of [['traceparent', traceparent], ['tracestate', tracestate]] as const) {
      if (v === undefined) continue;
      (remove ??= []).push(name);
      if (v !== null) (add ??= []).push(`${name}: ${v.replace(/[\r\n]/g, ' ')}`);
    }
    const method = head.method;
    const authority = head.host ?? '';
    const path = head.target;
    return {
      add,
      remove,
      finish: (status, proxyError, bytesIn, bytesOut) => {
        obs.complete('inbound', series.base, { ip: podIP, port, spiffe }, { method, authority, path, status, proxyError, start, sent: start, bytesIn, bytesOut }, span);
      },
    };
  }

  function servePlainHttp(socket: Socket, port: number): void {
    (socket as TaggedSocket)[kInfo] = { port, peer: plainPeer, spiffe: '', app: pools.pin(pools.plain(podIP, port, 'inbound')) };
    guard.accept(socket);
    handToHttp(http, socket);
  }

  const server = createNetServer({ noDelay: true, keepAlive: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    void handlePlainInbound(socket, {
      podIp: podIP,
      strict: o.strict,
      metrics,
      detectTimeoutMs: o.detectTimeoutMs,
      onDetect: (p) => metrics.detect.inc({ direction: 'inbound', protocol: p }),
      onHttp: (s, port, protocol) => {
        if (protocol !== 'http1') return false;
        metrics.connection(s, 'inbound', '', false);
        servePlainHttp(s, port);
        return true;
      },
      onRefused: (_s, dst) => o.log(`inbound: refused plaintext caller for port ${dst.port} (strict mTLS)`),
      ...(o.authz ? { authorizeOpaque: (port: number) => o.authz!.check(port, '').allowed } : {}),
    }).then((r) => {
      if (r.kind === 'not-redirected' && !socket.destroyed) tls.emit('connection', socket);
    });
  });

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    const info = (req.socket as TaggedSocket)[kInfo];
    if (!info) {
      sendProxyError(res, 400, 'connection without a target port');
      return;
    }
    const hasBody = prepareRequestHeaders(req.headers);
    if (info.spiffe) req.headers[PEER_IDENTITY_HEADER] = info.spiffe;
    else if (req.headers[PEER_IDENTITY_HEADER] !== undefined) delete req.headers[PEER_IDENTITY_HEADER];
    const series = seriesFor(info.port);
    const peer = info.peer;
    // observe (tap, access log, tracing): continue the trace for the app; a record in done() (a denied request too).
    const obs = metrics.observers, span = obs.active ? obs.begin(req.headers, 'inbound') : undefined, io = obs.active ? ioMark(req.socket, req.headers['content-length']) : undefined;
    const observed = (status: number, proxyError: string | undefined): void => {
      obs.complete('inbound', series.base, { ip: podIP, port: info.port, spiffe: info.spiffe }, { method: req.method ?? 'GET', authority: req.headers.host ?? '', path: req.url ?? '/', status, proxyError, start, sent: start, io }, span);
    };
    if (o.authz) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const d = o.authz.check(info.port, info.spiffe, q < 0 ? url : url.slice(0, q));
      if (!d.allowed) {
        // Nothing denied reaches the app: answered here, the body (if any) is discarded.
        sendProxyError(res, 403, d.reason);
        series.get(peer, 403).record((performance.now() - start) / 1000);
        if (obs.active) observed(403, d.reason);
        return;
      }
    }
    const done = (r: ForwardResult) => {
      series.get(peer, r.status).record((performance.now() - start) / 1000);
      if (obs.active) observed(r.status, r.proxyError);
    };
    const up = upgradeOf(req);
    const handler = up ? new UpgradeHandler(res, done, up.socket, up.head) : new ForwardHandler(res, undefined, done, 0, 'request');
    handler.draining = o.draining;
    try {
      info.app.dispatch(
        { path: req.url ?? '/', method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: req.headers as Record<string, string | string[]>, body: hasBody && !up ? req : null, upgrade: up?.protocol ?? null },
        handler,
      );
    } catch (e) {
      handler.onError(e as Error);
    }
  }

  return { server, tls, http, sockets, servePlainHttp, closeIdleMux };
}

// The outbound listener (POD_IP:7001): the app's calls, redirected by
// iptables or sent to us as its HTTP proxy. Per connection: original
// destination and protocol detection once; HTTP/1.x goes to the engine's
// HTTP/1.1 adapter (outbound-engine.ts; it hands Upgrades, CONNECT and
// external hosts on to the node:http adapter, outbound-http1.ts, which
// WEFT_H1=node uses for everything), h2c prior knowledge (gRPC) to the HTTP/2
// adapter (outbound-h2.ts); opaque and TLS go to the opaque path. Both HTTP
// adapters share one router (outbound-route.ts): service lookup → decide()
// → carry out. Everything is passed in here; nothing registers at import.
import { HeadGuard } from './head-guard.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { detect } from '../detect/detect.js';
import { handToHttp } from './handoff.js';
import { opaqueDirect, opaqueToMesh } from '../hop/opaque.js';
import { originalDst, type OriginalDst } from '../detect/original-dst.js';
import type { BuiltService, EndpointRt } from '../config/config-apply.js';
import { createHttp1Adapter } from '../adapters/outbound-http1.js';
import { createEngineAdapter, type EngineAdapter } from '../adapters/outbound-engine.js';
import { createH2Adapter, type H2Adapter } from '../adapters/outbound-h2.js';
import { OutboundRouter, SUBSCRIBE_WAIT_MS, type OutboundDeps } from '../route/outbound-route.js';
import { resolveTarget } from '../route/service-lookup.js';

export { SUBSCRIBE_WAIT_MS };
/** How long a connection that was not redirected may stay silent before it is closed. */
const CLIENT_FIRST_WAIT_MS = 60_000;

export interface OutboundOptions extends OutboundDeps {
  detectTimeoutMs: number;
  maxHeaderSize: number | undefined;
  /** A connection's first request head must arrive within this (ms; --request-head-timeout): else 408. */
  requestHeadTimeoutMs?: number | undefined;
  /** Most field lines in a request head (--max-headers; the engine answers 431 past it). */
  maxHeaders?: number | undefined;
  /** The HTTP/1.1 adapter: 'engine' (sidecar/http1/, the default) or 'node' (node:http + undici); default from WEFT_H1. */
  h1?: 'engine' | 'node' | undefined;
}

const kDst = Symbol('weft.originalDst');
type DstSocket = Socket & { [kDst]?: OriginalDst | undefined };

export interface Outbound {
  server: NetServer;
  http: HttpServer;
  h2: H2Adapter;
  /** Accepted connections still open (for draining). */
  sockets: Set<Socket>;
  /** The engine's HTTP/1.1 adapter (undefined with WEFT_H1=node); what it does not carry continues on `http`. */
  engine: EngineAdapter | undefined;
}

export function createOutbound(o: OutboundOptions): Outbound {
  const { state, stream, metrics, self } = o;
  const sockets = new Set<Socket>();
  const router = new OutboundRouter(o);
  const http = createHttp1Adapter(router, o, { maxHeaderSize: o.maxHeaderSize, dstOf: (s) => (s as DstSocket)[kDst] });
  const h2 = createH2Adapter(router, o);
  // Slow heads (one byte a second) are closed at the request-head timeout (head-guard.ts says why not node's headersTimeout).
  const guard = new HeadGuard({ timeoutMs: o.requestHeadTimeoutMs ?? DEFAULT_LIMITS.requestHeadTimeoutMs, onTimeout: () => metrics.limitRejections.inc({ direction: 'outbound', limit: 'request_head_timeout' }) });
  http.on('request', (req: { socket: Socket }) => guard.done(req.socket));
  http.on('upgrade', (req: { socket: Socket }) => guard.done(req.socket));
  // WEFT_H1=node keeps the node:http adapter for every HTTP/1.1 connection (for comparison); the engine is the default.
  const h1 = o.h1 ?? (process.env.WEFT_H1 === 'node' ? 'node' : 'engine');
  const engine =
    h1 === 'engine'
      ? createEngineAdapter(router, o, {
          limits: { maxHeadBytes: o.maxHeaderSize ?? DEFAULT_LIMITS.maxHeaderBytes, maxHeaders: o.maxHeaders ?? DEFAULT_LIMITS.maxHeaders },
          dstOf: (s) => (s as DstSocket)[kDst],
          http,
          onHead: (s) => guard.done(s),
        })
      : undefined;

  const server = createNetServer({ noDelay: true, keepAlive: true }, (socket: DstSocket) => {
    guard.accept(socket);
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
      if (proto === 'http1') return engine ? engine.accept(socket) : handToHttp(http, socket);
      guard.done(socket);
      if (proto === 'h2c') return h2.accept(socket, dst);
      toOpaque(socket, proto, dst);
    });
  });

  /**
   * Opaque TCP (and TLS the app originates): to a Service's endpoint over
   * the mesh hop, to a meshed pod, or untouched to where it was going.
   * Without an original destination (local mode) there is nowhere to send the bytes.
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

  return { server, http, h2, sockets, engine };
}

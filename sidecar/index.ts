// sidecar/: weft's data plane. One process per workload replica: outbound
// (POD_IP:7001), inbound (POD_IP:7002), admin (POD_IP:7090).
//
// The files are the stages a request passes: listen-outbound → detect →
// service-lookup → route-matcher → filters → backend → balancer-p2c-ewma →
// endpoint-pool → hop ⇢ listen-inbound → the app; config arrives through
// bootstrap → config-stream → config-validate → config-apply.
import type { Server } from 'node:net';
import { DEFAULT_TRUST_DOMAIN, PORTS } from '../api/index.js';
import { IdentityHolder } from './bootstrap.js';
import { MeshState, type EndpointRt } from './config-apply.js';
import { ConfigStream } from './config-stream.js';
import { EndpointPools } from './endpoint-pool.js';
import { createOutbound } from './listen-outbound.js';
import { createInbound } from './listen-inbound.js';
// HTTP/2 and gRPC: registers the outbound h2c and inbound ALPN h2 protocol hooks.
import './outbound-h2.js';
// Session persistence (GEP-1619): registers the cookie/header affinity with backend.ts.
import { installSessionPersistence } from './session-token.js';
import { createAdmin } from './admin.js';
import { SidecarMetrics } from './metrics.js';
import { DEFAULT_DETECT_TIMEOUT_MS } from './detect.js';
import type { SidecarLimits } from './limits.js';

export { setSessionAffinity, type SessionAffinity } from './backend.js';
export { issueToken, verifyToken, sessionKey, type SessionToken } from './session-token.js';
export { setProtocolHooks, type ProtocolHooks, type OutboundContext, type InboundContext } from './protocol-hooks.js';
export { PEER_IDENTITY_HEADER } from './listen-inbound.js';
export { PROXY_ERROR_HEADER } from './proxy-errors.js';
export { buildRouteMatcher, parseQuery, type RouteMatcher, type MatchRequest } from './route-matcher.js';
export { compileFilters, redirectLocation, rewritePath } from './filters.js';
export { validateServiceConfig } from './config-validate.js';

installSessionPersistence();

export interface SidecarOptions {
  /** host:port of control's gRPC (Discovery, Identity). */
  control: string;
  stateDir: string;
  podIP: string;
  namespace: string;
  workload: string;
  serviceAccount: string;
  labels?: Record<string, string>;
  podName?: string;
  appPorts?: number[];
  /** Services ("ns/name") to subscribe to ahead of first use. */
  subscribe?: string[];
  /** Refuse plaintext callers on the inbound port. */
  strict?: boolean;
  trustDomain?: string;
  /** Kubernetes: projected service-account token file (default STATE/bootstrap-token). */
  tokenFile?: string;
  /** Trust bundle file (default STATE/trust-bundle.pem). */
  trustBundleFile?: string;
  /** 0 picks a free port (tests). Peers always dial 7002, see `peerInboundPort`. */
  ports?: { outbound?: number; inbound?: number; admin?: number };
  /** Port of the peers' inbound listeners (default 7002; tests only). */
  peerInboundPort?: number;
  detectTimeoutMs?: number;
  /** Largest request header block accepted (bytes; node's default 16 KiB); larger gets 431. */
  maxHeaderSize?: number;
  /** Per-workload limits (sidecar/limits.ts; flags and config.weft.io/* annotations). */
  limits?: SidecarLimits;
  log?: (line: string) => void;
}

export interface SidecarHandle {
  /** Resolves once the sidecar has a certificate and a first directory (what /ready reports). */
  ready: Promise<void>;
  /** "ip:port" of the admin listener. */
  adminAddress: string;
  outboundAddress: string;
  inboundAddress: string;
  /** Stop accepting, drain in-flight requests for up to graceMs, then close everything. */
  close(graceMs?: number): Promise<void>;
  /** Resolves when the sidecar has closed (close() or POST /shutdown). */
  closed: Promise<void>;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.removeListener('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export async function startSidecar(opts: SidecarOptions): Promise<SidecarHandle> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[sidecar ${opts.namespace}/${opts.workload}] ${line}\n`));
  const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const self = { namespace: opts.namespace, workload: opts.workload, serviceAccount: opts.serviceAccount, trustDomain };
  const detectTimeoutMs = opts.detectTimeoutMs ?? DEFAULT_DETECT_TIMEOUT_MS;
  const metrics = new SidecarMetrics();
  const identity = new IdentityHolder({
    control: opts.control,
    stateDir: opts.stateDir,
    namespace: opts.namespace,
    serviceAccount: opts.serviceAccount,
    trustDomain,
    tokenFile: opts.tokenFile,
    trustBundleFile: opts.trustBundleFile,
    log,
  });
  identity.on('changed', () => {
    const id = identity.current!;
    metrics.certExpiry.set({ kind: 'leaf', identity: id.spiffe }, id.notAfter.getTime() / 1000);
  });
  const state = new MeshState({ self, metrics });
  const stream = new ConfigStream({
    control: opts.control,
    identity,
    state,
    metrics,
    hello: {
      namespace: opts.namespace,
      workload: opts.workload,
      service_account: opts.serviceAccount,
      pod_ip: opts.podIP,
      pod_name: opts.podName ?? '',
      labels: opts.labels ?? {},
      app_ports: opts.appPorts ?? [],
      strict: !!opts.strict,
    },
    // "ns/name", "name.ns" or a bare name (the workload's own namespace).
    subscribe: (opts.subscribe ?? []).map((s) => {
      if (s.includes('/')) return s;
      const [name, ns] = s.split('.');
      return `${ns || opts.namespace}/${name}`;
    }),
    log,
  });
  const pools = new EndpointPools(identity, opts.peerInboundPort ?? PORTS.inbound, 64, (socket, direction, peer, tls) => metrics.connection(socket, direction, peer, tls));
  let outPort = 0;
  // In a pod, iptables REDIRECT in the OUTPUT chain sends the app's
  // connections to 127.0.0.1:7001, so the outbound listens there — and only
  // there: on the pod IP, any other pod could send traffic as this workload.
  // In local mode the pod IP is itself a loopback address the app dials.
  const outHost = opts.podIP.startsWith('127.') ? opts.podIP : '127.0.0.1';
  const maxHeaderSize = opts.maxHeaderSize ?? opts.limits?.maxHeaderBytes;
  const outbound = createOutbound({ state, stream, pools, metrics, self, identity, detectTimeoutMs, maxHeaderSize, selfAddress: () => ({ ip: outHost, port: outPort }), log });
  const inbound = createInbound({ podIP: opts.podIP, self, identity, pools, metrics, strict: !!opts.strict, detectTimeoutMs, maxHeaderSize, log });
  let closing: Promise<void> | undefined;
  const admin = createAdmin({
    identity,
    state,
    stream,
    metrics,
    self: { ...self, podIP: opts.podIP, podName: opts.podName ?? '', labels: opts.labels ?? {}, strict: !!opts.strict },
    onShutdown: () => void handle.close(),
    draining: () => closing !== undefined,
  });

  const ports = opts.ports ?? {};
  let inPort: number, adminPort: number;
  try {
    outPort = await listen(outbound.server, outHost, ports.outbound ?? PORTS.outbound);
    inPort = await listen(inbound.server, opts.podIP, ports.inbound ?? PORTS.inbound);
    adminPort = await listen(admin, opts.podIP, ports.admin ?? PORTS.admin);
  } catch (e) {
    outbound.server.close();
    inbound.server.close();
    admin.close();
    await pools.destroy();
    throw e;
  }

  identity.start();
  stream.start();
  // Pools of endpoints that left every config close once idle.
  const sweeper = setInterval(() => {
    const live: EndpointRt[] = [];
    for (const svc of state.services.values()) for (const ep of svc.endpoints.values()) live.push(ep);
    pools.sweep(live);
  }, 30_000);
  sweeper.unref();
  const ready = identity.ready.then(async () => {
    while (!state.directory && !closing) await state.waitForDirectory(1000);
  });

  async function close(graceMs = 5_000): Promise<void> {
    // Stop accepting; in-flight requests finish; idle keep-alive connections go now, busy ones once idle.
    outbound.server.close();
    inbound.server.close();
    const deadline = Date.now() + graceMs;
    const all = () => outbound.sockets.size + inbound.sockets.size;
    while (all() > 0 && Date.now() < deadline) {
      outbound.http.closeIdleConnections();
      inbound.http.closeIdleConnections();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const s of outbound.sockets) s.destroy();
    for (const s of inbound.sockets) s.destroy();
    outbound.http.closeAllConnections();
    inbound.http.closeAllConnections();
    clearInterval(sweeper);
    stream.close();
    identity.close();
    await pools.close();
    // BackendTLSPolicy origins keep their own pools and h2 sessions.
    for (const svc of state.services.values()) for (const b of svc.backends.values()) b.tlsOrigin?.close();
    admin.closeAllConnections();
    await new Promise<void>((r) => admin.close(() => r()));
    log('sidecar stopped');
  }

  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const handle: SidecarHandle = {
    closed,
    ready,
    adminAddress: hostPort(opts.podIP, adminPort),
    outboundAddress: hostPort(outHost, outPort),
    inboundAddress: hostPort(opts.podIP, inPort),
    close(graceMs?: number) {
      if (!closing) closing = close(graceMs).finally(closedResolve);
      return closing;
    },
  };
  return handle;
}

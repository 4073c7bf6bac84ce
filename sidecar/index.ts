// sidecar/: weft's data plane. One process per workload replica: outbound
// (POD_IP:7001), inbound (POD_IP:7002), admin (POD_IP:7090).
//
// The files are the stages a request passes: listen-outbound → detect →
// outbound-http1 | outbound-h2 (the protocol adapters: parse and write) →
// outbound-route (service-lookup once) → decide (route-matcher, filters,
// backend, session-token, balancer-p2c-ewma) → endpoint-pool → hop | hop-h2
// ⇢ listen-inbound → the app; failures become answers in proxy-errors.
// Config arrives through bootstrap → config-stream → config-validate →
// config-apply. Every dependency is passed in when a listener is built.
import type { Server } from 'node:net';
import { DEFAULT_TRUST_DOMAIN, PORTS, type AppProbe } from '../api/index.js';
import { IdentityHolder } from './config/bootstrap.js';
import { trackAnchorExpiry } from './config/identity-metrics.js';
import { MeshState, type EndpointRt } from './config/config-apply.js';
import { ConfigStream } from './config/config-stream.js';
import { EndpointPools } from './hop/endpoint-pool.js';
import { createOutbound } from './listen/listen-outbound.js';
import { createInbound } from './inbound/listen-inbound.js';
import { InboundAuthz } from './inbound/authz-state.js';
import { createAdmin } from './admin/admin.js';
import { SidecarMetrics } from './admin/metrics.js';
import { Resilience } from './retry/resilience.js';
import { DEFAULT_DETECT_TIMEOUT_MS } from './detect/detect.js';
import { DEFAULT_DRAIN_TIMEOUT_MS, Drain } from './listen/drain.js';
import type { SidecarLimits } from './listen/limits.js';
import { RequestObservers } from './observe/observe.js';
import { TapHub } from './observe/tap.js';
import { AccessLog, type AccessLogFormat } from './observe/access-log.js';
import { Tracer } from './observe/trace.js';
import type { OtlpEncoding } from './observe/trace-otlp.js';

export { issueToken, verifyToken, sessionKey, type SessionToken } from './session/session-token.js';
export { decide, attemptTimeout, type Decision, type Forward, type Respond, type Mirror, type RetryPolicy, type Timeouts } from './route/decide.js';
export { headerView, type HeaderView, type MeshRequest, type RequestProtocol } from './route/request.js';
export { PEER_IDENTITY_HEADER } from './inbound/listen-inbound.js';
export { PROXY_ERROR_HEADER } from './errors/proxy-errors.js';
export { buildRouteMatcher, parseQuery, type RouteMatcher, type MatchRequest } from './route/route-matcher.js';
export { compileFilters, redirectLocation, rewritePath } from './route/filters.js';
export { validateServiceConfig } from './config/config-validate.js';
export { parseFailureAccrual } from './balance/failure-accrual.js';
export { parseMaxInFlight } from './balance/load-shed.js';
export { Resilience, RetryRun, type ResilienceSnapshot } from './retry/resilience.js';
export { buildAuthorizer, validateInboundAuthz, type Authorizer, type AuthzDecision } from './inbound/authorize.js';
export { InboundAuthz } from './inbound/authz-state.js';
export { DEFAULT_DRAIN_TIMEOUT_MS, parseDrainTimeout, drainPlan } from './listen/drain.js';
export { RequestObservers, type RequestRecord } from './observe/observe.js';
export { parseTraceParent, formatTraceParent, collectorUrl } from './observe/trace.js';
export { ACCESS_LOG_FORMATS, type AccessLogFormat } from './observe/access-log.js';

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
  /** The app's probes rewritten to the admin port by the injector (WEFT_APP_PROBES). */
  appProbes?: Record<string, AppProbe>;
  /** Drain timeout on shutdown (default 5 s; `--drain-timeout`, annotation `config.weft.io/drain-timeout`). */
  drainTimeoutMs?: number;
  /** Largest request header block accepted (bytes; node's default 16 KiB); larger gets 431. */
  maxHeaderSize?: number;
  /** Consecutive failures that take an endpoint out of the balancer (default 7; 0: off). */
  failureAccrual?: number;
  /** In-flight requests per backend past which requests are shed with 503 overloaded (default 10,000; 0: no bound). */
  maxInFlight?: number;
  /** Per-workload limits (sidecar/listen/limits.ts; flags and config.weft.io/* annotations). */
  limits?: SidecarLimits;
  /** The outbound's HTTP/1.1 adapter: the engine (default) or node:http + undici (WEFT_H1=node); for tests and the bench. */
  h1?: 'engine' | 'node';
  /** One JSON line per request (annotation weft.io/access-log: json); to stdout unless a path is given. */
  accessLog?: { format: AccessLogFormat; path?: string };
  /** Spans for sampled requests over OTLP/HTTP (trace.ts). */
  trace?: { collector: string; sampling: number; encoding?: OtlpEncoding };
  log?: (line: string) => void;
}

export interface SidecarHandle {
  /** Resolves once the sidecar has a certificate and a first directory (what /ready reports). */
  ready: Promise<void>;
  /** "ip:port" of the admin listener. */
  adminAddress: string;
  outboundAddress: string;
  inboundAddress: string;
  /**
   * Graceful drain (sidecar/listen/drain.ts): Goodbye to control, inbound stops
   * accepting after a short propagation window, in-flight requests are
   * answered, the app's outbound calls keep working; then everything closes
   * once idle or after graceMs (default: the drain timeout).
   */
  close(graceMs?: number, reason?: string): Promise<void>;
  /** True from the start of the drain (what the listeners' `draining` dependency reads). */
  draining: () => boolean;
  /** Runs fn when the drain starts (HTTP/2 GOAWAY on open sessions). */
  onDrain(fn: () => void): void;
  /** Resolves when the sidecar has closed (close() or POST /shutdown). */
  closed: Promise<void>;
  /** Completed-request observers (observe.ts: tap, access log, tracing); `active` is one boolean read. */
  observers: RequestObservers;
  /** The outbound's engine HTTP/1.1 adapter counts (undefined with WEFT_H1=node): heads carried, connections handed to node:http. */
  outboundEngine: { carried: number; handedOff: number } | undefined;
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
  trackAnchorExpiry(identity, metrics);
  // Tap (always available, free while nobody taps), access log and tracing when configured.
  const drop = (sink: string) => (n: number) => metrics.observeDropped.inc({ sink }, n);
  const tap = new TapHub({ onDrop: drop('tap') });
  metrics.observers = new RequestObservers(self, {
    tap,
    accessLog: opts.accessLog ? new AccessLog({ ...opts.accessLog, onDrop: drop('access-log') }) : undefined,
    tracer: opts.trace ? new Tracer({ ...opts.trace, self, onDrop: drop('trace'), log }) : undefined,
  });
  const state = new MeshState({ self, metrics });
  const authz = new InboundAuthz(metrics, log);
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
    inbound: authz,
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
  let closing: Promise<void> | undefined;
  // Draining (drain.ts runs it on SIGTERM / POST /shutdown): HTTP/1.1 answers carry Connection: close, HTTP/2 sessions get a GOAWAY.
  const draining = () => closing !== undefined;
  const observers = metrics.observers;
  // Retries, budgets, failure accrual and shedding of the outbound forward step (issue 14).
  const resilience = new Resilience(metrics, { ...(opts.failureAccrual !== undefined ? { failureAccrual: opts.failureAccrual } : {}), ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}) });
  const outbound = createOutbound({ state, stream, pools, metrics, self, identity, detectTimeoutMs, maxHeaderSize, selfAddress: () => ({ ip: outHost, port: outPort }), log, draining, observers, resilience, mergeSlashes: opts.limits?.mergeSlashes ?? false, requestHeadTimeoutMs: opts.limits?.requestHeadTimeoutMs, maxHeaders: opts.limits?.maxHeaders, h1: opts.h1 });
  const inbound = createInbound({ podIP: opts.podIP, self, identity, pools, metrics, strict: !!opts.strict, detectTimeoutMs, maxHeaderSize, log, draining, authz, requestHeadTimeoutMs: opts.limits?.requestHeadTimeoutMs });
  // Connections per listener (--max-connections): past it the kernel's accept is answered by a close.
  if (opts.limits) {
    outbound.server.maxConnections = opts.limits.maxConnections;
    inbound.server.maxConnections = opts.limits.maxConnections;
  }
  const drain = new Drain({ inbound, outbound, goodbye: (why) => stream.goodbye(why), log });
  // HTTP/2 callers are told at once (GOAWAY; their streams in flight finish) and
  // reconnect to the outbound listener, which stays open for the app's calls.
  drain.onStart(() => outbound.h2.goaway());
  const admin = createAdmin({
    identity,
    state,
    stream,
    metrics,
    self: { ...self, podIP: opts.podIP, podName: opts.podName ?? '', labels: opts.labels ?? {}, strict: !!opts.strict },
    onShutdown: () => void handle.close(undefined, 'POST /shutdown'),
    tap,
    draining: () => closing !== undefined,
    resilience: () => resilience.snapshot(),
    inbound: () => ({ version: authz.version, config: authz.config, ...(authz.lastError ? { nack: authz.lastError } : {}) }),
    ...(opts.appProbes ? { appProbes: { probes: opts.appProbes, podIP: opts.podIP } } : {}),
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

  async function close(graceMs = opts.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS, reason = 'shutdown'): Promise<void> {
    // Goodbye to control, inbound drains (see drain.ts) while the app's outbound calls keep working.
    await drain.run(reason, graceMs);
    outbound.server.close();
    // Callers on HTTP/2 sessions are told to go (GOAWAY): their streams in flight finish.
    outbound.h2.goaway();
    outbound.http.closeIdleConnections();
    inbound.http.closeIdleConnections();
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
    await metrics.observers.close();
    admin.closeAllConnections();
    await new Promise<void>((r) => admin.close(() => r()));
    log('sidecar stopped');
  }

  let closedResolve!: () => void;
  const closed = new Promise<void>((r) => (closedResolve = r));
  const handle: SidecarHandle = {
    closed,
    observers,
    outboundEngine: outbound.engine?.stats,
    ready,
    adminAddress: hostPort(opts.podIP, adminPort),
    outboundAddress: hostPort(outHost, outPort),
    inboundAddress: hostPort(opts.podIP, inPort),
    close(graceMs?: number, reason?: string) {
      if (!closing) closing = close(graceMs, reason).finally(closedResolve);
      return closing;
    },
    draining: drain.draining,
    onDrain: (fn) => drain.onStart(fn),
  };
  return handle;
}

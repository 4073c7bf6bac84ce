// The outbound request path shared by every protocol adapter (HTTP/1.1,
// HTTP/2, gRPC, Upgrade): service lookup (with the 400 / 502 / 508 answers)
// once, the first config of a Service waited for, decide(), then the
// adapter's carrier carries the decision out. Endpoint accounting (in
// flight, EWMA latency with a failure penalty), metrics and the
// completed-request observers (observe.ts: tap, access log, tracing) are
// recorded here, in one place — mesh-made answers (400/404/502/503/508,
// redirects) included.
import type { IdentityHolder } from '../config/bootstrap.js';
import { observe } from '../balance/balancer-p2c-ewma.js';
import { buildEndpoint, type EndpointRt, type MeshState, type SelfInfo } from '../config/config-apply.js';
import type { ConfigStream } from '../config/config-stream.js';
import { decide, responseEditsFor, type Decision, type Forward } from './decide.js';
import type { EndpointPools } from '../hop/endpoint-pool.js';
import { NO_PEER, SeriesCache, type PeerLabels, type SidecarMetrics } from '../admin/metrics.js';
import type { OriginalDst } from '../detect/original-dst.js';
import { answerFailure, CLIENT_GONE, type Answerer, type Outcome } from '../errors/proxy-errors.js';
import type { MeshRequest } from './request.js';
import type { IoMark, RecordPeer, RequestObservers } from '../observe/observe.js';
import type { SpanStart } from '../observe/trace.js';
import { lookupRequest, type Lookup, type Target } from './service-lookup.js';
import { RetryRun, type AttemptGate, type Resilience, type RetryLabels, type RunOptions, type TryContext, type TryEnd } from '../retry/resilience.js';
import { classifyError, type AttemptError, type AttemptOutcome } from '../retry/retry-policy.js';

/** How long a request for a Service waits for its first config after subscribing. */
export const SUBSCRIBE_WAIT_MS = 2_000;
/** Latency charged to an endpoint for a failed request. */
const FAILURE_PENALTY_MS = 1_000;

/** What an outbound listener is built with (createOutbound passes them on; nothing is registered at import time). */
export interface OutboundDeps {
  state: MeshState;
  stream: ConfigStream;
  pools: EndpointPools;
  metrics: SidecarMetrics;
  self: SelfInfo;
  identity: IdentityHolder;
  /** This listener's own address, so a request addressed to it is refused (508) instead of looping. */
  selfAddress: () => { ip: string; port: number };
  log: (line: string) => void;
  /** Completed-request observers (tap, access log, trace); a record is built only when active. */
  observers?: RequestObservers | undefined;
  /** True once the sidecar drains: HTTP/1.1 answers carry `Connection: close`, HTTP/2 sessions get a GOAWAY. */
  draining?: (() => boolean) | undefined;
  /** Retries, budgets, failure accrual, load shedding (issue 14); absent: one try, as before. */
  resilience?: Resilience | undefined;
  /** Path normalisation merges repeated slashes (per workload, --merge-slashes). */
  mergeSlashes?: boolean | undefined;
}

/** How one request ended, as the adapter saw it. */
export type Done = (o: Outcome) => void;

/** One request's downstream side, made by its protocol adapter: it carries decisions out and writes answers. */
export interface Carrier {
  readonly req: MeshRequest;
  /** performance.now() at arrival. */
  readonly start: number;
  readonly answer: Answerer;
  /** The caller went away (nothing left to answer). */
  gone(): boolean;
  /**
   * Forward per the decision (mirrors included, on the first try); calls
   * `done` exactly once — unless `tc.gate` drops the try, then not at all
   * (the router tries again with another decision).
   */
  forward(d: Forward, done: Done, tc?: TryContext): void;
  /** Straight to a meshed pod addressed by IP (no route table). */
  pod(ep: EndpointRt, done: Done): void;
  /** Out of the mesh, untouched. */
  external(host: string, port: number, done: Done): void;
  /**
   * observe (only while observers are active): the adapter sets `span` where
   * it forwards (begin() wrote this hop's traceparent into the forwarded
   * headers); `headers` is its own header object, for begin() on a mesh-made
   * answer; `io` / `bytesIn` measure the request's bytes.
   */
  span?: SpanStart | undefined;
  readonly headers: Record<string, unknown>;
  readonly io?: IoMark | undefined;
  readonly bytesIn?: number | undefined;
}

export class OutboundRouter {
  private readonly externalSeries: SeriesCache;
  private readonly badSeries: SeriesCache;
  private readonly podSeries = new Map<number, SeriesCache>();
  private readonly podEndpoints = new Map<string, EndpointRt>();
  private readonly base;

  constructor(readonly deps: OutboundDeps) {
    const { self, metrics } = deps;
    this.base = {
      direction: 'outbound', src_namespace: self.namespace, src_workload: self.workload, src_service_account: self.serviceAccount,
      dst_namespace: '', dst_workload: '', dst_service_account: '', dst_service: 'external', dst_port: '',
      route_kind: '', route_namespace: '', route_name: '', route_rule: '', backend: '', grpc_status: '', tls: 'false', peer_identity: '',
    };
    this.externalSeries = new SeriesCache(metrics, this.base, 'dst');
    this.badSeries = new SeriesCache(metrics, { ...this.base, dst_service: '' }, 'dst');
  }

  /**
   * Routes one request; `dst` is the connection's original destination
   * (iptables), if any; `looked`, the lookup an adapter already made for this
   * request against the current directory (the engine decides from it who
   * carries the request), so it is not made twice.
   */
  route(c: Carrier, dst: OriginalDst | undefined, looked?: Lookup): void {
    const { state } = this.deps;
    // Before the first directory every name would look external: wait for it (bounded).
    if (!state.directory) {
      void state.waitForDirectory(SUBSCRIBE_WAIT_MS).then(() => {
        if (!c.gone()) this.routeNow(c, dst);
      });
      return;
    }
    this.routeNow(c, dst, looked);
  }

  private routeNow(c: Carrier, dst: OriginalDst | undefined, looked?: Lookup): void {
    const { state, stream, self } = this.deps;
    const t = looked ?? lookupRequest(state, self.namespace, dst, c.req.authority, this.deps.selfAddress());
    switch (t.kind) {
      case 'respond':
        return this.fail(c, this.badSeries, NO_PEER, t.status, t.reason);
      case 'service': {
        const key = `${t.entry.namespace}/${t.entry.name}`;
        const svc = state.services.get(key);
        if (svc) return this.carry(c, decide(svc, t.port, c.req, Date.now(), undefined, this.deps.mergeSlashes), t.entry.name);
        stream.subscribe(key);
        void state.waitFor(key, SUBSCRIBE_WAIT_MS).then((s) => {
          if (c.gone()) return;
          if (s) this.carry(c, decide(s, t.port, c.req, Date.now(), undefined, this.deps.mergeSlashes), t.entry.name);
          else this.fail(c, this.badSeries, NO_PEER, 503, `no config for service ${key} yet`);
        });
        return;
      }
      case 'pod':
        return this.toPod(c, t);
      case 'external': {
        const series = this.externalSeries;
        c.external(t.host, t.port, (o) => this.finish(c, series, NO_PEER, o, undefined, 'external', undefined, undefined, t));
        return;
      }
    }
  }

  /** Carries a decision out: a mesh-made answer, or the forward with its endpoint accounting. */
  private carry(c: Carrier, d: Decision, service: string): void {
    if (d.kind === 'respond') {
      const series = d.series ?? this.badSeries;
      if (d.location !== undefined) {
        const o = c.answer.redirect(d.status, d.location);
        this.finish(c, series, NO_PEER, o, undefined, service);
        return;
      }
      answerFailure(c.answer, d.status, d.reason, (o) => this.finish(c, series, NO_PEER, o, undefined, service));
      return;
    }
    const res = this.deps.resilience;
    if (res) return this.forwardWithRetries(c, d, service, res);
    const ep = d.endpoint;
    const sent = this.begin(ep);
    c.forward(d, (o) => {
      this.end(ep, sent, o);
      this.finish(c, d.series, ep.peer, o, ep, service, d, sent);
    });
  }

  /** The forward step with its tries: see ForwardRun. */
  private forwardWithRetries(c: Carrier, first: Forward, service: string, res: Resilience): void {
    new ForwardRun(this, c, first, service, res).attempt();
  }

  private toPod(c: Carrier, t: Extract<Target, { kind: 'pod' }>): void {
    const key = `${t.ip}:${t.port}`;
    let ep = this.podEndpoints.get(key);
    if (!ep || ep.spiffe !== t.template.spiffe) {
      ep = buildEndpoint({ ip: t.ip, port: t.port, identity: t.template.identity, workload: t.template.workload, pod: t.template.pod, ready: true }, this.deps.self.trustDomain);
      this.podEndpoints.set(key, ep);
    }
    let series = this.podSeries.get(t.port);
    if (!series) {
      series = new SeriesCache(this.deps.metrics, { ...this.base, dst_service: '', dst_port: String(t.port) }, 'dst');
      this.podSeries.set(t.port, series);
    }
    const s = series;
    const e = ep;
    const sent = this.begin(e);
    c.pod(e, (o) => {
      this.end(e, sent, o);
      this.finish(c, s, e.peer, o, e, '', undefined, sent);
    });
  }

  begin(ep: EndpointRt): number {
    ep.inflight++;
    return performance.now();
  }

  /** A failed endpoint (refused, reset, timed out) counts as very slow, so P2C steers around it until the penalty decays. */
  end(ep: EndpointRt, sent: number, o: Outcome): void {
    ep.inflight--;
    const now = performance.now();
    const failed = o.proxyError !== undefined && o.proxyError !== CLIENT_GONE;
    observe(ep, failed ? Math.max(now - sent, FAILURE_PENALTY_MS) : now - sent, now);
  }

  private fail(c: Carrier, series: SeriesCache, peer: PeerLabels, status: number, reason: string): void {
    answerFailure(c.answer, status, reason, (o) => this.finish(c, series, peer, o, undefined, ''));
  }

  /** The one place a completed outbound request is counted (metrics) and observed (tap, logs, traces). */
  finish(c: Carrier, series: SeriesCache, peer: PeerLabels, o: Outcome, ep: EndpointRt | undefined, _service: string, d?: Forward, sent?: number, external?: { host: string; port: number }): void {
    const now = performance.now();
    series.get(peer, o.status, o.grpcStatus).record((now - c.start) / 1000);
    const obs = this.deps.observers;
    if (!obs?.active) return;
    // A mesh-made answer was not forwarded: its trace context (and span) starts here.
    const span = c.span ?? obs.begin(c.headers, 'outbound', c.req.protocol === 'http1' || c.req.protocol === 'upgrade' ? '1.1' : '2');
    const where: RecordPeer | undefined = ep
      ? { ip: ep.ip, port: ep.port, spiffe: ep.spiffe, workload: ep.workload, namespace: ep.identity?.namespace }
      : external ? { ip: external.host, port: external.port } : undefined;
    const path = d ? d.path : c.req.query ? `${c.req.path}?${c.req.query}` : c.req.path;
    obs.complete('outbound', series.base, where, {
      method: c.req.method, authority: c.req.authority, path, status: o.status, grpcStatus: o.grpcStatus, proxyError: o.proxyError,
      start: c.start, ...(sent !== undefined ? { sent } : {}), ...(c.bytesIn !== undefined ? { bytesIn: c.bytesIn, bytesOut: o.bytesOut ?? 0 } : {}), io: c.io,
    }, span);
  }
}

/**
 * The forward step with its tries (resilience.ts RetryRun): each try's
 * outcome passes the gate (this object) before the adapter writes it; a try
 * the run retries is dropped, and the next goes to another endpoint — with
 * the session cookie/header recomputed for it (session failover). One object
 * per forwarded request is the run's options, the tries' gate and their
 * context: no closures made per request but each try's `done`.
 */
class ForwardRun implements AttemptGate, RunOptions<EndpointRt> {
  readonly backend: Forward['backend'];
  readonly policy: Forward['retry'];
  readonly method: string;
  readonly timeouts: Forward['timeouts'];
  readonly tc: TryContext;
  readonly run: RetryRun<EndpointRt>;
  /** The decision of the current try (its endpoint and response edits change on a retry). */
  private d: Forward;
  private ep: EndpointRt;

  constructor(
    private readonly router: OutboundRouter,
    private readonly c: Carrier,
    first: Forward,
    private readonly service: string,
    res: Resilience,
  ) {
    const policy = first.retry;
    this.policy = policy;
    this.timeouts = policy?.perTryTimeoutMs ? { ...first.timeouts, backendRequestMs: policy.perTryTimeoutMs } : first.timeouts;
    this.d = this.timeouts === first.timeouts ? first : { ...first, timeouts: this.timeouts };
    this.backend = first.backend;
    this.method = c.req.method;
    this.ep = first.endpoint;
    this.tc = { index: 0, gate: this };
    this.run = new RetryRun<EndpointRt>(res, this);
  }

  /** Labels of the retry metrics (made only when one is counted). */
  labels(): RetryLabels {
    const d = this.d;
    const r = d.rule.route;
    const slash = d.rule.serviceKey.indexOf('/');
    return {
      dst_namespace: d.rule.serviceKey.slice(0, slash),
      dst_service: d.rule.serviceKey.slice(slash + 1),
      route_kind: r?.kind ?? '',
      route_namespace: r?.namespace ?? '',
      route_name: r?.name ?? '',
      route_rule: r?.ruleName ?? '',
      backend: d.backend.name,
    };
  }

  onHead(status: number, header: (lowerName: string) => string | undefined): boolean {
    const g = header('grpc-status');
    return this.settle({ kind: 'response', status, grpcStatus: g !== undefined ? Number(g) : undefined, proxyError: header('weft-proxy-error') });
  }

  onError(e: AttemptError): boolean {
    return this.settle({ kind: 'error', reason: classifyError(e) });
  }

  /** A try ended: true delivers its outcome; false drops it and schedules the next try. */
  private settle(o: AttemptOutcome): boolean {
    const e: TryEnd<EndpointRt> = this.run.end(this.ep, o);
    if (e.action === 'deliver') return true;
    // This try is dropped. Failure accrual has counted it against its endpoint
    // (ejection after consecutive failures); no latency penalty on top, which
    // would keep P2C away from the endpoint for a minute after one refusal.
    this.ep.inflight--;
    this.tc.index++;
    const d = this.d;
    this.d = { ...d, endpoint: e.endpoint, responseEdits: responseEditsFor(d.rule, d.routeBackend, d.backend, e.endpoint, this.c.req.headers, Date.now()) };
    if (e.delayMs > 0) setTimeout(() => this.again(), e.delayMs);
    else queueMicrotask(() => this.again());
    return false;
  }

  private again(): void {
    if (this.c.gone()) {
      this.run.finish();
      this.router.finish(this.c, this.d.series, this.ep.peer, { status: 499, grpcStatus: '', proxyError: CLIENT_GONE }, this.ep, this.service, this.d);
      return;
    }
    this.attempt();
  }

  attempt(): void {
    const { c, router, service } = this;
    const ep = (this.ep = this.d.endpoint);
    const dd = this.d;
    const st = this.run.begin(ep);
    if (!st.ok) {
      this.run.finish();
      answerFailure(c.answer, st.status, st.reason, (o) => router.finish(c, dd.series, NO_PEER, o, undefined, service, dd));
      return;
    }
    const sent = router.begin(ep);
    c.forward(
      dd,
      (o) => {
        router.end(ep, sent, o);
        this.run.finish();
        router.finish(c, dd.series, ep.peer, o, ep, service, dd, sent);
      },
      this.tc,
    );
  }
}

// The sidecar's resilience state and the controller of one request's tries.
//
// `Resilience` (one per sidecar) holds what outlives a request: failure
// accrual per endpoint (kept in a WeakMap on the endpoint objects, which
// survive config swaps), retry budgets and in-flight bounds per backend, and
// the metrics. `RetryRun` (one per forwarded request) is the forward step's
// retry loop without the I/O: the protocol adapter asks it for the endpoint
// and timeout of each try, tells it how each try ended, and is told to
// deliver that outcome to the caller or to try again after a delay. HTTP/1.1
// and HTTP/2 adapters share it, so both retry the same way.
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { RetryBudget, RetryPolicy } from '../api/index.js';
import { DEFAULT_FAILURE_ACCRUAL, DEFAULT_MAX_IN_FLIGHT } from '../api/index.js';
import { pickFrom, type Balanced } from './balancer-p2c-ewma.js';
import {
  DEFAULT_ACCRUAL,
  availableEndpoints,
  describeAccrual,
  isOut,
  markPicked,
  newAccrualState,
  recordFailure,
  recordSuccess,
  type AccrualConfig,
  type AccrualState,
} from './failure-accrual.js';
import { InflightLimit, OVERLOADED_REASON } from './load-shed.js';
import type { SidecarMetrics } from './metrics.js';
import { RetryBudgets } from './retry-budget.js';
import type { BodyReplay } from './retry-body.js';
import {
  backoffMs,
  countRetry,
  fitsDeadline,
  isEndpointFailure,
  newRetryCounts,
  retryDecision,
  tryTimeout,
  type AttemptOutcome,
  type RetryCounts,
  type RetryReason,
  type SkipReason,
  type Timeouts,
} from './retry-policy.js';

export interface EndpointLike extends Balanced {
  key: string;
  ip: string;
  port: number;
}

export interface BackendLike<E extends EndpointLike = EndpointLike> {
  key: string;
  /** "namespace/name". */
  name: string;
  config: { namespace: string; name: string; retryBudget?: RetryBudget };
  balancer: { fallback: readonly E[] };
}

export interface ResilienceOptions {
  /** Consecutive failures that eject an endpoint (default 7; 0: off). */
  failureAccrual?: number;
  /** In-flight requests per backend before shedding (default 10,000; 0: no bound). */
  maxInFlight?: number;
  now?: () => number;
  rand?: () => number;
}

/** Labels of the retry metrics except `reason` (api/metrics.ts RETRY_LABELS). */
export interface RetryLabels {
  dst_namespace: string;
  dst_service: string;
  route_kind: string;
  route_namespace: string;
  route_name: string;
  route_rule: string;
  backend: string;
}

interface Tracked {
  backend: BackendLike;
  endpoints: Map<string, EndpointLike>;
}

export class Resilience {
  readonly accrualConfig: AccrualConfig;
  readonly maxInFlight: number;
  readonly budgets = new RetryBudgets();
  readonly now: () => number;
  readonly rand: () => number;
  private readonly states = new WeakMap<object, AccrualState>();
  private readonly limits = new Map<string, InflightLimit>();
  private readonly tracked = new Map<string, Tracked>();
  /** Endpoints not 'active' anywhere: 0 lets `pick` skip the accrual filter. */
  private notActive = 0;

  constructor(
    private readonly metrics: SidecarMetrics | undefined,
    o: ResilienceOptions = {},
  ) {
    this.accrualConfig = { ...DEFAULT_ACCRUAL, threshold: o.failureAccrual ?? DEFAULT_FAILURE_ACCRUAL };
    this.maxInFlight = o.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.now = o.now ?? (() => performance.now());
    this.rand = o.rand ?? Math.random;
  }

  accrual(ep: object): AccrualState {
    let s = this.states.get(ep);
    if (!s) this.states.set(ep, (s = newAccrualState()));
    return s;
  }

  /** Whether failure accrual keeps `ep` out of the balancer now (session failover asks this). */
  isEjected(ep: object): boolean {
    const s = this.states.get(ep);
    return s !== undefined && s.phase !== 'active' && isOut(s, this.now());
  }

  limit(backendKey: string): InflightLimit {
    let l = this.limits.get(backendKey);
    if (!l) this.limits.set(backendKey, (l = new InflightLimit(this.maxInFlight)));
    return l;
  }

  /**
   * An endpoint of `backend` by P2C, leaving out ejected endpoints (unless
   * all are) and, when others remain, the ones in `avoid` (tried already).
   */
  pick<E extends EndpointLike>(backend: BackendLike<E>, avoid?: ReadonlySet<E>): E | undefined {
    let list: readonly E[] = backend.balancer.fallback;
    if (this.notActive > 0) {
      const now = this.now();
      const accrued = list.map((e) => ({ e, accrual: this.accrual(e) }));
      list = availableEndpoints(accrued, now).map((x) => x.e);
    }
    if (avoid && avoid.size > 0 && list.length > 1) {
      const rest = list.filter((e) => !avoid.has(e));
      if (rest.length > 0) list = rest;
    }
    const ep = pickFrom(list, this.rand);
    if (ep && this.notActive > 0) markPicked(this.accrual(ep), this.now());
    return ep;
  }

  /** How one try to `ep` ended: failure accrual and the endpoint metrics. */
  recordOutcome(backend: BackendLike, ep: EndpointLike, o: AttemptOutcome): void {
    const s = this.accrual(ep);
    const wasActive = s.phase === 'active';
    const ev = isEndpointFailure(o) ? recordFailure(s, this.accrualConfig, this.now(), this.rand) : recordSuccess(s);
    if (wasActive !== (s.phase === 'active')) this.notActive += wasActive ? 1 : -1;
    let t = this.tracked.get(backend.key);
    if (!t) this.tracked.set(backend.key, (t = { backend, endpoints: new Map() }));
    t.backend = backend;
    const fresh = t.endpoints.get(ep.key) !== ep;
    if (fresh) t.endpoints.set(ep.key, ep);
    if (!this.metrics || (!ev && !fresh)) return;
    const labels = { dst_namespace: backend.config.namespace, dst_service: backend.config.name, backend: backend.name, endpoint: `${ep.ip}:${ep.port}` };
    this.metrics.endpointEjected.set(labels, s.phase === 'active' ? 0 : 1);
    if (ev === 'ejected') this.metrics.endpointEjections.inc(labels);
    else if (fresh) this.metrics.endpointEjections.inc(labels, 0);
  }

  countRetry(labels: RetryLabels, reason: RetryReason): void {
    this.metrics?.retries.inc({ ...labels, reason });
  }

  countSkip(labels: RetryLabels, reason: SkipReason): void {
    this.metrics?.retriesSkipped.inc({ ...labels, reason });
  }

  countShed(backend: BackendLike): void {
    this.metrics?.requestsShed.inc({ dst_namespace: backend.config.namespace, dst_service: backend.config.name, backend: backend.name });
  }

  /** Per backend: in flight, shed, budget use and endpoint states (admin /resilience, describe). */
  snapshot(): ResilienceSnapshot {
    const now = this.now();
    const out: ResilienceSnapshot = { failureAccrual: this.accrualConfig.threshold, maxInFlight: this.maxInFlight, backends: [] };
    const keys = new Set([...this.tracked.keys(), ...this.limits.keys(), ...[...this.budgets.entries()].map(([k]) => k)]);
    for (const key of [...keys].sort()) {
      const t = this.tracked.get(key);
      const l = this.limits.get(key);
      const b = [...this.budgets.entries()].find(([k]) => k === key)?.[1];
      out.backends.push({
        backend: key,
        inflight: l?.inflight ?? 0,
        shed: l?.shed ?? 0,
        ...(b ? { budget: { ...b.config, ...b.window(now), allowed: b.allowed, denied: b.denied } } : {}),
        endpoints: t ? [...t.endpoints.values()].map((e) => ({ endpoint: `${e.ip}:${e.port}`, ...describeAccrual(this.accrual(e), now) })) : [],
      });
    }
    return out;
  }
}

export interface ResilienceSnapshot {
  failureAccrual: number;
  maxInFlight: number;
  backends: Array<{
    backend: string;
    inflight: number;
    shed: number;
    budget?: RetryBudget & { requests: number; retries: number; allowed: number; denied: number };
    endpoints: Array<{ endpoint: string; state: string; consecutiveFailures: number; ejections: number; nextProbeInMs?: number }>;
  }>;
}

export interface RunOptions<E extends EndpointLike> {
  backend: BackendLike<E>;
  policy: RetryPolicy | undefined;
  method: string;
  timeouts: Timeouts;
  /** The kept body, or undefined for a request without one. */
  body: BodyReplay | undefined;
  /** A body that is not kept (larger than the replay limit): no retry can resend it. */
  unkeptBody?: boolean;
  labels: RetryLabels;
}

export type TryStart =
  | { ok: true; timeoutMs: number; timeoutKind: 'request' | 'backendRequest' }
  | { ok: false; status: number; reason: string };

export type TryEnd<E> = { action: 'deliver'; /** a retry was due but not made */ skipped?: SkipReason } | { action: 'retry'; delayMs: number; endpoint: E; reason: RetryReason };

/** The tries of one request (see the file comment). */
export class RetryRun<E extends EndpointLike> {
  readonly startedAt: number;
  readonly counts: RetryCounts = newRetryCounts();
  readonly tried = new Set<E>();
  tries = 0;
  private slot = false;
  private closed = false;

  constructor(
    private readonly res: Resilience,
    private readonly o: RunOptions<E>,
  ) {
    this.startedAt = res.now();
  }

  /** Starts a try to `ep`: takes the in-flight slot on the first, and says how long the try may take. */
  begin(ep: E): TryStart {
    const o = this.o;
    if (!this.slot) {
      const l = this.res.limit(o.backend.key);
      if (!l.tryAcquire()) {
        this.res.countShed(o.backend);
        return { ok: false, status: 503, reason: OVERLOADED_REASON };
      }
      this.slot = true;
    }
    const now = this.res.now();
    if (this.tries === 0) this.res.budgets.get(o.backend.key, o.backend.config.retryBudget, now).recordRequest(now);
    const t = tryTimeout(o.timeouts, this.startedAt, now);
    if (t === 'expired') return { ok: false, status: 504, reason: `request timeout of ${o.timeouts.requestMs} ms` };
    this.tries++;
    this.tried.add(ep);
    return { ok: true, timeoutMs: t.ms, timeoutKind: t.kind };
  }

  /** The request body for this try (undefined: none, or send the request's own stream). */
  body(): Readable | Buffer | undefined {
    return this.o.body?.body();
  }

  /**
   * A try to `ep` ended with `outcome`, nothing of it passed to the caller
   * yet (`responseUntouched`). Deliver it, or retry after `delayMs` on `endpoint`.
   */
  end(ep: E, outcome: AttemptOutcome, responseUntouched = true): TryEnd<E> {
    const o = this.o;
    this.res.recordOutcome(o.backend, ep, outcome);
    const replayable = o.unkeptBody ? false : o.body ? o.body.replayable : true;
    const d = retryDecision(outcome, { policy: o.policy, method: o.method, counts: this.counts, replayable, responseUntouched });
    if (!d.retry) {
      if (d.skip) {
        this.res.countSkip(o.labels, d.skip);
        return { action: 'deliver', skipped: d.skip };
      }
      return { action: 'deliver' };
    }
    const now = this.res.now();
    const delayMs = backoffMs(o.policy?.backoffMs ?? 0, this.counts.policy + 1, d.safe, this.res.rand);
    if (!fitsDeadline(o.timeouts, this.startedAt, now, delayMs)) {
      this.res.countSkip(o.labels, 'deadline');
      return { action: 'deliver', skipped: 'deadline' };
    }
    if (d.budgeted && !this.res.budgets.get(o.backend.key, o.backend.config.retryBudget, now).tryRetry(now)) {
      this.res.countSkip(o.labels, 'budget');
      return { action: 'deliver', skipped: 'budget' };
    }
    const next = this.res.pick(o.backend, this.tried);
    if (!next) {
      this.res.countSkip(o.labels, 'no_endpoint');
      return { action: 'deliver', skipped: 'no_endpoint' };
    }
    countRetry(this.counts, d);
    this.res.countRetry(o.labels, d.reason);
    return { action: 'retry', delayMs, endpoint: next, reason: d.reason };
  }

  /** The request is over: frees the in-flight slot and the kept body. */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slot) this.res.limit(this.o.backend.key).release();
    this.slot = false;
    this.o.body?.close();
  }
}

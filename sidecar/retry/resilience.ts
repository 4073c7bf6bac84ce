// The sidecar's resilience state and the controller of one request's tries.
//
// `Resilience` (one per sidecar) holds what outlives a request: failure
// accrual per endpoint (its state lives on the endpoint objects, which
// survive config swaps, so decide() sees it when it picks), retry budgets and
// in-flight bounds per backend, and the metrics. `RetryRun` (one per forwarded request) is the forward step's
// retry loop without the I/O: the protocol adapter asks it for the endpoint
// and timeout of each try, tells it how each try ended, and is told to
// deliver that outcome to the caller or to try again after a delay. HTTP/1.1
// and HTTP/2 adapters share it, so both retry the same way.
import type { RetryBudget, RetryPolicy } from '../../api/index.js';
import { DEFAULT_FAILURE_ACCRUAL, DEFAULT_MAX_IN_FLIGHT } from '../../api/index.js';
import { DEFAULT_RTT_MS, pickFrom, type Balanced } from '../balance/balancer-p2c-ewma.js';
import {
  DEFAULT_ACCRUAL,
  availableEndpoints,
  describeAccrual,
  dueProbe,
  isOut,
  markPicked,
  recordFailure,
  recordSuccess,
  type AccrualConfig,
  type AccrualState,
} from '../balance/failure-accrual.js';
import { InflightLimit, OVERLOADED_REASON } from '../balance/load-shed.js';
import type { SidecarMetrics } from '../admin/metrics.js';
import { RetryBudgets } from './retry-budget.js';
/** A request body kept for retries, as the run sees it (retry-body.ts BodyReplay; the engine adapter's own keep). */
export interface KeptBody {
  /** False once the body outgrew what is kept (or failed): it cannot be sent again. */
  readonly replayable: boolean;
  close(): void;
}
import {
  backoffMs,
  countRetry,
  fitsDeadline,
  isEndpointFailure,
  newRetryCounts,
  retryDecision,
  tryTimeout,
  type AttemptError,
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
  accrual: AccrualState;
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
  /** Milliseconds; the same clock as decide()'s `now` (Date.now). */
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
  private readonly limits = new Map<string, InflightLimit>();
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    private readonly metrics: SidecarMetrics | undefined,
    o: ResilienceOptions = {},
  ) {
    this.accrualConfig = { ...DEFAULT_ACCRUAL, threshold: o.failureAccrual ?? DEFAULT_FAILURE_ACCRUAL };
    this.maxInFlight = o.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.now = o.now ?? Date.now;
    this.rand = o.rand ?? Math.random;
  }

  /** Whether failure accrual keeps `ep` out of the balancer now. */
  isEjected(ep: EndpointLike): boolean {
    return ep.accrual.phase !== 'active' && isOut(ep.accrual, this.now());
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
    const now = this.now();
    let list: readonly E[] = availableEndpoints(backend.balancer.fallback, now);
    if (avoid && avoid.size > 0 && list.length > 1) {
      const rest = list.filter((e) => !avoid.has(e));
      if (rest.length > 0) list = rest;
    }
    const probe = list.some((e) => e.accrual.phase !== 'active') ? dueProbe(list, now) : undefined;
    const ep = probe ?? pickFrom(list, this.rand);
    if (ep && ep.accrual.phase !== 'active') markPicked(ep.accrual, now);
    return ep;
  }

  /** How one try to `ep` ended: failure accrual and the endpoint metrics. */
  recordOutcome(backend: BackendLike, ep: EndpointLike, o: AttemptOutcome): void {
    const s = ep.accrual;
    const ev = isEndpointFailure(o) ? recordFailure(s, this.accrualConfig, this.now(), this.rand) : recordSuccess(s);
    // Back in the balancer: start its latency estimate afresh, or the failure
    // penalties of its bad spell would keep P2C away from it for a minute.
    if (ev === 'recovered') ep.ewmaMs = DEFAULT_RTT_MS;
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
        endpoints: t ? [...t.endpoints.values()].map((e) => ({ endpoint: `${e.ip}:${e.port}`, ...describeAccrual(e.accrual, now) })) : [],
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
  /** The request's tries as the adapter fills them in: the body it kept for replay ('unkept': too large). */
  tc?: { body?: KeptBody | 'unkept' };
  /** Labels of the retry metrics, made only when one is counted. */
  labels: () => RetryLabels;
}

export type TryStart =
  | { ok: true; timeoutMs: number; timeoutKind: 'request' | 'backendRequest' }
  | { ok: false; status: number; reason: string };

export type TryEnd<E> = { action: 'deliver'; /** a retry was due but not made */ skipped?: SkipReason } | { action: 'retry'; delayMs: number; endpoint: E; reason: RetryReason };

/** The tries of one request (see the file comment). */
export class RetryRun<E extends EndpointLike> {
  readonly startedAt: number;
  readonly counts: RetryCounts = newRetryCounts();
  /** The endpoints tried so far: the first alone until a retry needs the set (most requests have one try). */
  private first: E | undefined;
  private tried: Set<E> | undefined;
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
    if (this.first === undefined) this.first = ep;
    else (this.tried ??= new Set([this.first])).add(ep);
    return { ok: true, timeoutMs: t.ms, timeoutKind: t.kind };
  }


  /**
   * A try to `ep` ended with `outcome`, nothing of it passed to the caller
   * yet (`responseUntouched`). Deliver it, or retry after `delayMs` on `endpoint`.
   */
  end(ep: E, outcome: AttemptOutcome, responseUntouched = true): TryEnd<E> {
    const o = this.o;
    this.res.recordOutcome(o.backend, ep, outcome);
    const kept = o.tc?.body;
    const replayable = kept === undefined ? true : kept === 'unkept' ? false : kept.replayable;
    const d = retryDecision(outcome, { policy: o.policy, method: o.method, counts: this.counts, replayable, responseUntouched });
    if (!d.retry) {
      if (d.skip) {
        this.res.countSkip(o.labels(), d.skip);
        return { action: 'deliver', skipped: d.skip };
      }
      return { action: 'deliver' };
    }
    const now = this.res.now();
    const delayMs = backoffMs(o.policy?.backoffMs ?? 0, this.counts.policy + 1, d.safe, this.res.rand);
    if (!fitsDeadline(o.timeouts, this.startedAt, now, delayMs)) {
      this.res.countSkip(o.labels(), 'deadline');
      return { action: 'deliver', skipped: 'deadline' };
    }
    if (d.budgeted && !this.res.budgets.get(o.backend.key, o.backend.config.retryBudget, now).tryRetry(now)) {
      this.res.countSkip(o.labels(), 'budget');
      return { action: 'deliver', skipped: 'budget' };
    }
    const next = this.res.pick(o.backend, this.tried ?? (this.first ? new Set([this.first]) : undefined));
    if (!next) {
      this.res.countSkip(o.labels(), 'no_endpoint');
      return { action: 'deliver', skipped: 'no_endpoint' };
    }
    countRetry(this.counts, d);
    this.res.countRetry(o.labels(), d.reason);
    return { action: 'retry', delayMs, endpoint: next, reason: d.reason };
  }

  /** The request is over: frees the in-flight slot and the kept body. */
  finish(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slot) this.res.limit(this.o.backend.key).release();
    this.slot = false;
    const kept = this.o.tc?.body;
    if (kept && kept !== 'unkept') kept.close();
  }
}

/**
 * How a protocol adapter asks, at the end of one try and before writing
 * anything, whether the outcome goes to the caller. `false`: the adapter
 * drops the try quietly (no answer, no `done`); the router makes the next.
 */
export interface AttemptGate {
  /** A response head arrived. true: write it (this try is the answer). */
  onHead(status: number, header: (lowerName: string) => string | undefined): boolean;
  /** The try failed before a response head. true: answer the failure as usual. */
  onError(e: AttemptError): boolean;
}

/** One request's tries as the adapter sees them. */
export interface TryContext {
  /** 0 for the first try (mirrors go out with it only). */
  index: number;
  gate: AttemptGate;
  /** Set by the adapter on the first try that sends a body: the body kept for replay, or 'unkept' (too large). */
  body?: KeptBody | 'unkept';
}

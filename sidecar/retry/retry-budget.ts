// A retry budget (GEP-3388, Finagle's RetryBudget): over a sliding window of
// `intervalMs`, the retries a sidecar makes to one backend may be at most
// `percent`% of the requests it sent there (first tries only), plus a
// minimum rate of `minRetryCount` per `minRetryIntervalMs` so a quiet
// backend can still be retried. Past it the retry is not made and the caller
// gets the failure (GEP-3388: "additional retries to the backend MUST return
// a 503 response to the client").
//
// Pure and allocation-free on the hot path: the window is a ring of buckets,
// the minimum rate a token bucket; `now` is passed in.
import type { RetryBudget } from '../../api/index.js';
import { DEFAULT_RETRY_BUDGET } from '../../api/index.js';

const BUCKETS = 10;

export class RetryBudgetState {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private readonly bucketMs: number;
  /** Index of the bucket `headStart` belongs to. */
  private head = 0;
  private headStart = 0;
  private tokens: number;
  private tokensAt = 0;
  /** Counters for describe / metrics. */
  allowed = 0;
  denied = 0;

  constructor(
    readonly config: RetryBudget = DEFAULT_RETRY_BUDGET,
    now = 0,
  ) {
    this.bucketMs = Math.max(1, config.intervalMs / BUCKETS);
    this.headStart = now - (now % this.bucketMs);
    this.tokens = config.minRetryCount;
    this.tokensAt = now;
  }

  /** Moves the ring forward to `now`, clearing buckets that left the window. */
  private advance(now: number): void {
    if (now < this.headStart + this.bucketMs) return;
    const steps = Math.floor((now - this.headStart) / this.bucketMs);
    const clear = Math.min(steps, BUCKETS);
    for (let i = 1; i <= clear; i++) {
      const k = (this.head + i) % BUCKETS;
      this.requests[k] = 0;
      this.retries[k] = 0;
    }
    this.head = (this.head + steps) % BUCKETS;
    this.headStart += steps * this.bucketMs;
  }

  private refill(now: number): void {
    const c = this.config;
    if (c.minRetryCount <= 0 || now <= this.tokensAt) return;
    this.tokens = Math.min(c.minRetryCount, this.tokens + ((now - this.tokensAt) * c.minRetryCount) / c.minRetryIntervalMs);
    this.tokensAt = now;
  }

  /** A first try was sent to the backend. */
  recordRequest(now: number): void {
    this.advance(now);
    this.requests[this.head]!++;
  }

  /** Requests and retries in the current window. */
  window(now: number): { requests: number; retries: number } {
    this.advance(now);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    return { requests, retries };
  }

  /**
   * Takes one retry from the budget if there is one: the percentage of the
   * window's requests first, then the minimum-rate tokens. Every retry made
   * counts against the percentage.
   */
  tryRetry(now: number): boolean {
    const w = this.window(now);
    let ok = w.retries + 1 <= (this.config.percent / 100) * w.requests;
    if (!ok) {
      this.refill(now);
      if (this.tokens >= 1) {
        this.tokens -= 1;
        ok = true;
      }
    }
    if (ok) {
      this.retries[this.head]!++;
      this.allowed++;
    } else this.denied++;
    return ok;
  }
}

/** Budgets per backend key; a backend whose budget config changed starts afresh. */
export class RetryBudgets {
  private readonly byBackend = new Map<string, RetryBudgetState>();

  get(backend: string, config: RetryBudget | undefined, now: number): RetryBudgetState {
    const want = config ?? DEFAULT_RETRY_BUDGET;
    let s = this.byBackend.get(backend);
    if (!s || !sameBudget(s.config, want)) {
      s = new RetryBudgetState(want, now);
      this.byBackend.set(backend, s);
    }
    return s;
  }

  /** Forgets backends no config names any more. */
  retain(live: Set<string>): void {
    for (const k of this.byBackend.keys()) if (!live.has(k)) this.byBackend.delete(k);
  }

  entries(): IterableIterator<[string, RetryBudgetState]> {
    return this.byBackend.entries();
  }
}

function sameBudget(a: RetryBudget, b: RetryBudget): boolean {
  return a.percent === b.percent && a.intervalMs === b.intervalMs && a.minRetryCount === b.minRetryCount && a.minRetryIntervalMs === b.minRetryIntervalMs;
}

// Endpoint choice: power of two choices on a peak-EWMA of latency weighted by
// requests in flight (as Finagle and linkerd2-proxy balance). Ready endpoints
// first; terminating ones only when nothing is ready.
//
// The state lives on the endpoint objects so a config swap can carry it over
// for endpoints that did not change (see `carryOver`).

export interface Balanced {
  /** Peak-EWMA of response latency in ms. */
  ewmaMs: number;
  /** When ewmaMs was last updated (performance.now()). */
  lastMs: number;
  inflight: number;
  ready: boolean;
}

/** Decay time constant: a sample's weight halves in about 7 s. */
const TAU_MS = 10_000;
/** Latency assumed for an endpoint not measured yet. */
export const DEFAULT_RTT_MS = 1;

export function newBalanced(ready: boolean): Balanced {
  return { ewmaMs: DEFAULT_RTT_MS, lastMs: 0, inflight: 0, ready };
}

export class P2cEwma<T extends Balanced> {
  readonly ready: T[];
  readonly fallback: T[];
  constructor(readonly all: T[]) {
    this.ready = all.filter((e) => e.ready);
    this.fallback = this.ready.length ? this.ready : all;
  }

  pick(rand: () => number = Math.random): T | undefined {
    return pickFrom(this.fallback, rand);
  }
}

/** P2C over any list (failure accrual passes the endpoints still in the balancer). */
export function pickFrom<T extends Balanced>(list: readonly T[], rand: () => number = Math.random, now: number = performance.now()): T | undefined {
  const n = list.length;
  if (n <= 1) return list[0];
  const i = (rand() * n) | 0;
  let j = (rand() * (n - 1)) | 0;
  if (j >= i) j++;
  const a = list[i]!;
  const b = list[j]!;
  return cost(a, now) <= cost(b, now) ? a : b;
}

/**
 * Peak-EWMA cost: the latency estimate, decayed toward DEFAULT_RTT_MS since
 * the last sample (linkerd2-proxy decays it the same way), times the load.
 * Without the decay an endpoint charged a failure penalty would never be
 * picked again by P2C between two endpoints, so it would never be measured.
 */
function cost(e: Balanced, now: number): number {
  let ewma = e.ewmaMs;
  if (e.lastMs > 0 && now > e.lastMs && ewma > DEFAULT_RTT_MS) {
    const w = Math.exp(-(now - e.lastMs) / TAU_MS);
    ewma = ewma * w + DEFAULT_RTT_MS * (1 - w);
  }
  return ewma * (e.inflight + 1);
}

export function observe(e: Balanced, rttMs: number, nowMs: number): void {
  if (rttMs > e.ewmaMs) {
    // Peak: a slow response counts at once; recovery decays.
    e.ewmaMs = rttMs;
  } else {
    const w = Math.exp(-(nowMs - e.lastMs) / TAU_MS);
    e.ewmaMs = e.ewmaMs * w + rttMs * (1 - w);
  }
  e.lastMs = nowMs;
}

/** Keeps the measured latency of endpoints that survive a config swap. */
export function carryOver(prev: Balanced | undefined, next: Balanced): void {
  if (!prev) return;
  next.ewmaMs = prev.ewmaMs;
  next.lastMs = prev.lastMs;
}

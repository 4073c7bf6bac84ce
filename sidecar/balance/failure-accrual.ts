// Failure accrual (Finagle, linkerd2-proxy's consecutive-failures breaker):
// an endpoint whose last N attempts all failed (default 7, per workload:
// --failure-accrual / config.weft.io/failure-accrual) leaves the balancer; after a
// backoff (exponential from 1 s to 60 s, with jitter) one request is let
// through as a probe: success puts the endpoint back, failure ejects it again
// for longer. Never every endpoint: when all of a backend's endpoints would
// be out, all are used (better a slim chance than a certain 503).
//
// Pure: the state lives on the endpoint object (it survives config swaps with
// it, like the balancer's EWMA) and `now` / `rand` are passed in.
import { DEFAULT_FAILURE_ACCRUAL } from '../../api/index.js';

export type AccrualPhase = 'active' | 'ejected' | 'probing';

export interface AccrualState {
  phase: AccrualPhase;
  consecutiveFailures: number;
  /** ejected: when the next probe may go. */
  probeAt: number;
  /** How many times in a row it was ejected (the backoff exponent). */
  ejections: number;
  /** Ejections since the endpoint was first seen (metric, describe). */
  ejectionsTotal: number;
  /** A probe request is in flight: no other request goes to it meanwhile. */
  probeInFlight: boolean;
}

export interface Accrued {
  accrual: AccrualState;
}

export function newAccrualState(): AccrualState {
  return { phase: 'active', consecutiveFailures: 0, probeAt: 0, ejections: 0, ejectionsTotal: 0, probeInFlight: false };
}

export interface AccrualConfig {
  /** Consecutive failures that eject; 0 turns accrual off. */
  threshold: number;
  minBackoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_ACCRUAL: AccrualConfig = { threshold: DEFAULT_FAILURE_ACCRUAL, minBackoffMs: 1000, maxBackoffMs: 60_000 };

/** Backoff before probe number `ejections` (1-based): 1 s, 2 s, 4 s ... 60 s, each ±20%, within [min, max]. */
export function probeBackoffMs(cfg: AccrualConfig, ejections: number, rand: () => number = Math.random): number {
  const base = Math.min(cfg.maxBackoffMs, cfg.minBackoffMs * 2 ** Math.max(0, ejections - 1));
  const jittered = base * (0.8 + 0.4 * rand());
  return Math.round(Math.min(cfg.maxBackoffMs, Math.max(cfg.minBackoffMs, jittered)));
}

export type AccrualEvent = 'ejected' | 'recovered' | undefined;

/** An attempt to the endpoint succeeded. */
export function recordSuccess(s: AccrualState): AccrualEvent {
  s.consecutiveFailures = 0;
  s.probeInFlight = false;
  if (s.phase === 'active') return undefined;
  s.phase = 'active';
  s.ejections = 0;
  return 'recovered';
}

/** An attempt to the endpoint failed. */
export function recordFailure(s: AccrualState, cfg: AccrualConfig, now: number, rand: () => number = Math.random): AccrualEvent {
  s.consecutiveFailures++;
  s.probeInFlight = false;
  if (cfg.threshold <= 0) return undefined;
  if (s.phase === 'probing' || (s.phase === 'active' && s.consecutiveFailures >= cfg.threshold)) {
    s.phase = 'ejected';
    s.ejections++;
    s.ejectionsTotal++;
    s.probeAt = now + probeBackoffMs(cfg, s.ejections, rand);
    return 'ejected';
  }
  return undefined;
}

/**
 * Whether a request may go to the endpoint now. An ejected endpoint whose
 * backoff is over becomes 'probing' and takes exactly one request.
 */
export function isAvailable(s: AccrualState, now: number): boolean {
  switch (s.phase) {
    case 'active':
      return true;
    case 'ejected':
      return now >= s.probeAt;
    case 'probing':
      return !s.probeInFlight;
  }
}

/** The endpoint was chosen for a request: a due probe starts. */
export function markPicked(s: AccrualState, now: number): void {
  if (s.phase === 'ejected' && now >= s.probeAt) s.phase = 'probing';
  if (s.phase === 'probing') s.probeInFlight = true;
}

/** Whether the endpoint is out of the balancer right now (the metric's 1). */
export function isOut(s: AccrualState, now: number): boolean {
  return !isAvailable(s, now);
}

/**
 * The endpoints a balancer may pick from: those available, or all of them
 * when none is (never eject every endpoint). Returns `list` itself, without
 * allocating, when every endpoint is available.
 */
export function availableEndpoints<T extends Accrued>(list: readonly T[], now: number): readonly T[] {
  let out = 0;
  for (let i = 0; i < list.length; i++) if (!isAvailable(list[i]!.accrual, now)) out++;
  if (out === 0 || out === list.length) return list;
  return list.filter((e) => isAvailable(e.accrual, now));
}

/**
 * An ejected endpoint whose probe is due, if any: it takes the next request
 * whatever its latency estimate (a probe is how it gets back), so recovery
 * does not wait on the balancer's choice.
 */
export function dueProbe<T extends Accrued>(list: readonly T[], now: number): T | undefined {
  for (let i = 0; i < list.length; i++) {
    const s = list[i]!.accrual;
    if ((s.phase === 'ejected' && now >= s.probeAt) || (s.phase === 'probing' && !s.probeInFlight)) return list[i];
  }
  return undefined;
}

/** Endpoint state for /resilience, describe and the metric. */
export function describeAccrual(s: AccrualState, now: number): { state: AccrualPhase; consecutiveFailures: number; ejections: number; nextProbeInMs?: number } {
  const d: { state: AccrualPhase; consecutiveFailures: number; ejections: number; nextProbeInMs?: number } = { state: s.phase, consecutiveFailures: s.consecutiveFailures, ejections: s.ejectionsTotal };
  if (s.phase === 'ejected') d.nextProbeInMs = Math.max(0, s.probeAt - now);
  return d;
}

/** Parses a --failure-accrual / annotation value: consecutive failures, 0–1000 (0: off). */
export function parseFailureAccrual(v: string): number | { error: string } {
  if (!/^[0-9]{1,4}$/.test(v.trim()) || Number(v) > 1000) return { error: `must be a whole number of consecutive failures from 0 (off) to 1000, got ${JSON.stringify(v)}` };
  return Number(v.trim());
}

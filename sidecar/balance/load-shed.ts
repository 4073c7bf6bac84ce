// Load shedding: a bound on the requests in flight to one backend (default
// DEFAULT_MAX_IN_FLIGHT, per workload: --max-in-flight / config.weft.io/max-in-flight).
// Past it the sidecar answers 503 `weft-proxy-error: overloaded` at once
// instead of queueing without end behind a backend that cannot keep up.
// Retries take a slot like any try.
import { DEFAULT_MAX_IN_FLIGHT } from '../../api/index.js';

/** The weft-proxy-error of a shed request. */
export const OVERLOADED_REASON = 'overloaded';

export class InflightLimit {
  inflight = 0;
  /** Requests refused since start (metric). */
  shed = 0;

  constructor(
    /** 0: no bound. */
    public max: number = DEFAULT_MAX_IN_FLIGHT,
  ) {}

  /** Takes a slot, or returns false (count it as shed) when the bound is reached. */
  tryAcquire(): boolean {
    if (this.max > 0 && this.inflight >= this.max) {
      this.shed++;
      return false;
    }
    this.inflight++;
    return true;
  }

  release(): void {
    if (this.inflight > 0) this.inflight--;
  }
}

/** Parses a --max-in-flight / annotation value: a whole number ≥ 0 (0: no bound). */
export function parseMaxInFlight(v: string): number | { error: string } {
  if (!/^[0-9]{1,9}$/.test(v.trim())) return { error: `must be a whole number of requests (0 for no bound), got ${JSON.stringify(v)}` };
  return Number(v.trim());
}

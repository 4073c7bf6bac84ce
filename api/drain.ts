// Drain timeout: shared by the sidecar (`--drain-timeout`), `weft up` and
// the injector (annotation `config.weft.io/drain-timeout`, which also sizes the
// pod's terminationGracePeriodSeconds).
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000;
export const DRAIN_TIMEOUT_ANNOTATION = 'config.weft.io/drain-timeout';

/**
 * Parses a drain timeout as given to `--drain-timeout` or the
 * `config.weft.io/drain-timeout` annotation: "5s", "1500ms", "1m", or a bare number
 * of seconds. Errors name the field.
 */
export function parseDrainTimeout(v: string, field = '--drain-timeout'): { ok: true; ms: number } | { ok: false; error: string } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(v);
  if (!m) return { ok: false, error: `${field}: ${JSON.stringify(v)} is not a duration (e.g. "5s", "1500ms")` };
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (ms > 3_600_000) return { ok: false, error: `${field}: ${JSON.stringify(v)} is longer than 1h` };
  return { ok: true, ms: Math.round(ms) };
}


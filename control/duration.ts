// Gateway API Duration (GEP-2257): `^([0-9]{1,5}(h|m|s|ms)){1,4}$`, e.g.
// "1h", "500ms", "1h30m10s". Used by HTTPRoute timeouts and SessionPersistence.

export const DURATION_PATTERN = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds of a Gateway API duration, or null when it does not match the format. */
export function parseDuration(value: string): number | null {
  if (!DURATION_PATTERN.test(value)) return null;
  let total = 0;
  // Alternation order matters: "ms" before "m" and "s".
  for (const m of value.matchAll(/([0-9]{1,5})(ms|h|m|s)/g)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return total;
}

/** Shortest Gateway API spelling of a millisecond count ("1h30m", "250ms", "0s"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

// The per-workload limits of a sidecar, as one table every part reads: the
// sidecar flag, the pod annotation the injector turns into that flag, the
// default, and how a value is written. sidecar/listen/limits.ts builds the values
// from flags; injector/config.ts checks the annotations; README lists them.

export type LimitKind = 'duration' | 'count' | 'bytes' | 'boolean';

export interface LimitSpec {
  /** Sidecar flag, without the leading `--`. */
  flag: string;
  /** Pod annotation (`config.weft.io/<flag>`). */
  annotation: string;
  kind: LimitKind;
  /** Default, in ms (duration), items (count), bytes, or 0/1 (boolean). */
  dflt: number;
  min: number;
  max: number;
  /** What is refused and how, for the README and --help. */
  answer: string;
}

const ms = (s: number) => s * 1000;

export const LIMITS = {
  requestHeadTimeoutMs: { flag: 'request-head-timeout', annotation: 'config.weft.io/request-head-timeout', kind: 'duration', dflt: ms(10), min: 100, max: ms(3600), answer: '408, then the connection is closed' },
  maxHeaderBytes: { flag: 'max-header-bytes', annotation: 'config.weft.io/max-header-bytes', kind: 'bytes', dflt: 16 * 1024, min: 1024, max: 1024 * 1024, answer: '431 (HTTP/1.1); RST_STREAM / GOAWAY (HTTP/2)' },
  maxHeaders: { flag: 'max-headers', annotation: 'config.weft.io/max-headers', kind: 'count', dflt: 100, min: 1, max: 10_000, answer: '431' },
  idleTimeoutMs: { flag: 'idle-timeout', annotation: 'config.weft.io/idle-timeout', kind: 'duration', dflt: ms(300), min: 1000, max: ms(24 * 3600), answer: 'the idle connection is closed' },
  maxConnections: { flag: 'max-connections', annotation: 'config.weft.io/max-connections', kind: 'count', dflt: 16_384, min: 1, max: 1_000_000, answer: 'a new connection beyond it is closed at once (503 for HTTP/1.1 when it can be said)' },
  maxConcurrentStreams: { flag: 'max-concurrent-streams', annotation: 'config.weft.io/max-concurrent-streams', kind: 'count', dflt: 250, min: 1, max: 1_000_000, answer: 'RST_STREAM (REFUSED_STREAM) for a stream beyond it' },
  mergeSlashes: { flag: 'merge-slashes', annotation: 'config.weft.io/merge-slashes', kind: 'boolean', dflt: 0, min: 0, max: 1, answer: 'path normalisation merges repeated slashes' },
} as const satisfies Record<string, LimitSpec>;

export type LimitName = keyof typeof LIMITS;

/** The values the sidecar runs with. */
export interface SidecarLimits {
  requestHeadTimeoutMs: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConcurrentStreams: number;
  mergeSlashes: boolean;
}

export const DEFAULT_LIMITS: SidecarLimits = {
  requestHeadTimeoutMs: LIMITS.requestHeadTimeoutMs.dflt,
  maxHeaderBytes: LIMITS.maxHeaderBytes.dflt,
  maxHeaders: LIMITS.maxHeaders.dflt,
  idleTimeoutMs: LIMITS.idleTimeoutMs.dflt,
  maxConnections: LIMITS.maxConnections.dflt,
  maxConcurrentStreams: LIMITS.maxConcurrentStreams.dflt,
  mergeSlashes: false,
};

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const BYTE_UNITS: Record<string, number> = { '': 1, k: 1000, ki: 1024, m: 1_000_000, mi: 1024 * 1024 };

/**
 * One limit's value from its written form: durations as `10s`, `1500ms`, `2m`
 * (a bare number is seconds), bytes as `16384`, `16Ki`, `1Mi`, counts as
 * integers, booleans as true/false. An error names the flag or annotation.
 */
export function parseLimit(name: LimitName, raw: string, where: string): { ok: true; value: number } | { ok: false; message: string } {
  const spec: LimitSpec = LIMITS[name];
  const v = raw.trim();
  let n: number;
  if (spec.kind === 'boolean') {
    if (v === 'true' || v === '') return { ok: true, value: 1 };
    if (v === 'false') return { ok: true, value: 0 };
    return { ok: false, message: `${where}: "${raw}" is not true or false` };
  }
  if (spec.kind === 'duration') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v);
    if (!m) return { ok: false, message: `${where}: "${raw}" is not a duration (like 10s, 1500ms, 2m)` };
    n = Math.round(Number(m[1]) * UNITS[m[2] ?? 's']!);
  } else if (spec.kind === 'bytes') {
    const m = /^(\d+)([kKmM]i?)?$/.exec(v);
    if (!m) return { ok: false, message: `${where}: "${raw}" is not a size in bytes (like 16384, 16Ki, 1Mi)` };
    n = Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]!;
  } else {
    if (!/^\d+$/.test(v)) return { ok: false, message: `${where}: "${raw}" is not a whole number` };
    n = Number(v);
  }
  if (n < spec.min || n > spec.max) {
    const show = (x: number) => (spec.kind === 'duration' ? `${x} ms` : String(x));
    return { ok: false, message: `${where}: ${raw} is out of range (${show(spec.min)} to ${show(spec.max)})` };
  }
  return { ok: true, value: n };
}

// Flag parsing shared by the `weft` commands. A thin layer over
// node:util parseArgs: every mistake becomes a UsageError whose message
// names the flag, so `weft` can print one clear line and exit 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake on the command line: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type FlagSpec = Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean | string[] }
>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses argv against `spec`. Accepts `--flag value` and `--flag=value`;
 * unknown flags and missing values are UsageErrors that name the flag.
 */
export function parseFlags(argv: string[], spec: FlagSpec, opts: { positionals?: boolean } = {}): Parsed {
  try {
    const r = parseArgs({
      args: argv,
      options: spec as NonNullable<ParseArgsConfig['options']>,
      allowPositionals: opts.positionals ?? true,
      strict: true,
    });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    // parseArgs' messages already name the flag ("Unknown option '--x'").
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg);
  }
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} takes a value`);
  return v;
}

export function requireStr(p: Parsed, name: string): string {
  const v = str(p, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function bool(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** Every value of a repeatable flag, each also split on commas. */
export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  if (v === undefined || typeof v === 'boolean') return [];
  const arr = Array.isArray(v) ? v : [v];
  return arr.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

export function int(p: Parsed, name: string, range: { min?: number; max?: number } = {}): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  return parseIntIn(v, `--${name}`, range);
}

export function parseIntIn(v: string, what: string, range: { min?: number; max?: number } = {}): number {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`${what}: "${v}" is not an integer`);
  const n = Number(v);
  if ((range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
    throw new UsageError(`${what}: ${n} is outside ${range.min ?? '-∞'}..${range.max ?? '∞'}`);
  }
  return n;
}

/** "k=v,k=v" → {k: v}. */
export function parseLabels(s: string, what = '--labels'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i <= 0) throw new UsageError(`${what}: "${part}" is not key=value`);
    out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/** {k: v} → "k=v,k=v" (the inverse of parseLabels). */
export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export interface HostPort {
  host: string;
  port: number;
}

/** "127.0.0.1:7443", "[::1]:7443", ":7443" (all interfaces) → host and port. */
export function parseHostPort(s: string, what: string, defaultHost = '127.0.0.1'): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  if (!m) throw new UsageError(`${what}: "${s}" is not host:port`);
  const port = Number(m[3]);
  if (port < 0 || port > 65535) throw new UsageError(`${what}: port ${port} is out of range`);
  const host = m[1] ?? (m[2] === '' ? defaultHost : m[2]!);
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** Resolves when SIGINT or SIGTERM arrives; the listeners are removed afterwards. */
export function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

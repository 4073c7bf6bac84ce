// Per-pod proxy settings read from `config.weft.io/*` annotations. A bad value
// falls back to the default and becomes a warning naming the annotation.
import { LIMITS, parseLimit, type LimitName } from '../api/index.js';

import { DEFAULT_DRAIN_TIMEOUT_MS, DRAIN_TIMEOUT_ANNOTATION, parseDrainTimeout } from '../api/index.js';

export const CONFIG_PREFIX = 'config.weft.io/';

export const ANNOTATIONS = {
  cpuRequest: 'config.weft.io/proxy-cpu-request',
  cpuLimit: 'config.weft.io/proxy-cpu-limit',
  memoryRequest: 'config.weft.io/proxy-memory-request',
  memoryLimit: 'config.weft.io/proxy-memory-limit',
  logLevel: 'config.weft.io/log-level',
  skipInboundPorts: 'config.weft.io/skip-inbound-ports',
  skipOutboundPorts: 'config.weft.io/skip-outbound-ports',
  proxyImage: 'config.weft.io/proxy-image',
  // Resilience (api/names.ts RESILIENCE_ANNOTATIONS): the sidecar's --failure-accrual / --max-in-flight.
  failureAccrual: 'config.weft.io/failure-accrual',
  maxInFlight: 'config.weft.io/max-in-flight',
  drainTimeout: DRAIN_TIMEOUT_ANNOTATION,
  rewriteProbes: 'config.weft.io/rewrite-probes',
} as const;

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ProxyConfig {
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  logLevel: LogLevel;
  skipInboundPorts: string[];
  skipOutboundPorts: string[];
  image: string | undefined;
  /** Consecutive failures that eject an endpoint (sidecar default when unset). */
  failureAccrual?: number;
  /** In-flight requests per backend before shedding (sidecar default when unset). */
  maxInFlight?: number;
  /** The sidecar's drain timeout (ms); sizes terminationGracePeriodSeconds too. */
  drainTimeoutMs: number;
  /** Route the app's HTTP/TCP/gRPC probes through the sidecar's admin port (default true). */
  rewriteProbes: boolean;

  /**
   * Sidecar limit flags from `config.weft.io/<flag>` annotations (api/limits.ts),
   * e.g. ['--request-head-timeout', '5s']; only valid values, in table order.
   */
  limitArgs: string[];
}

export interface ProxyDefaults {
  cpuRequest: string;
  memoryRequest: string;
  memoryLimit: string;
  cpuLimit?: string;
  logLevel: LogLevel;
}

export const DEFAULTS: ProxyDefaults = { cpuRequest: '100m', memoryRequest: '64Mi', memoryLimit: '256Mi', logLevel: 'info' };

// Kubernetes resource.Quantity: a decimal number with an optional binary or decimal suffix.
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
// A port (1-65535) or a range lo-hi.
const PORT_ITEM = /^(\d{1,5})(-(\d{1,5}))?$/;

function ports(raw: string, ann: string, warnings: string[]): string[] {
  const out: string[] = [];
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = PORT_ITEM.exec(item);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[3] !== undefined ? Number(m[3]) : lo;
    if (!m || lo < 1 || hi > 65535 || hi < lo) {
      warnings.push(`annotation ${ann}: "${item}" is not a port or port range (1-65535); ignored`);
      continue;
    }
    out.push(item);
  }
  return out;
}

export function readProxyConfig(annotations: Record<string, string>, defaults: ProxyDefaults = DEFAULTS): { config: ProxyConfig; warnings: string[] } {
  const warnings: string[] = [];
  const qty = (ann: string, dflt: string | undefined): string | undefined => {
    const v = annotations[ann];
    if (v === undefined) return dflt;
    if (QUANTITY.test(v.trim())) return v.trim();
    warnings.push(`annotation ${ann}: "${v}" is not a Kubernetes quantity (like 100m, 128Mi); using ${dflt ?? 'none'}`);
    return dflt;
  };
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  const set = (o: Record<string, string>, k: string, v: string | undefined) => { if (v !== undefined) o[k] = v; };
  set(requests, 'cpu', qty(ANNOTATIONS.cpuRequest, defaults.cpuRequest));
  set(requests, 'memory', qty(ANNOTATIONS.memoryRequest, defaults.memoryRequest));
  set(limits, 'cpu', qty(ANNOTATIONS.cpuLimit, defaults.cpuLimit));
  set(limits, 'memory', qty(ANNOTATIONS.memoryLimit, defaults.memoryLimit));

  let logLevel = defaults.logLevel;
  const lv = annotations[ANNOTATIONS.logLevel];
  if (lv !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(lv)) logLevel = lv as LogLevel;
    else warnings.push(`annotation ${ANNOTATIONS.logLevel}: "${lv}" is not one of ${LOG_LEVELS.join(', ')}; using ${defaults.logLevel}`);
  }
  const limitArgs: string[] = [];
  for (const name of Object.keys(LIMITS) as LimitName[]) {
    const spec = LIMITS[name];
    const raw = annotations[spec.annotation];
    if (raw === undefined) continue;
    const r = parseLimit(name, raw, `annotation ${spec.annotation}`);
    if (!r.ok) {
      warnings.push(`${r.message}; using the sidecar's default`);
      continue;
    }
    // A boolean flag is present or absent (its default is off).
    if (spec.kind === 'boolean') limitArgs.push(...(r.value === 1 ? [`--${spec.flag}`] : []));
    else limitArgs.push(`--${spec.flag}`, raw.trim());
  }
  const limitAnnotations: string[] = Object.values(LIMITS).map((l) => l.annotation);
  for (const k of Object.keys(annotations)) {
    if (k.startsWith(CONFIG_PREFIX) && !(Object.values(ANNOTATIONS) as string[]).includes(k) && !limitAnnotations.includes(k)) {
      warnings.push(`annotation ${k}: unknown weft setting; ignored`);
    }
  }
  const image = annotations[ANNOTATIONS.proxyImage]?.trim() || undefined;
  const whole = (ann: string, max: number): number | undefined => {
    const v = annotations[ann];
    if (v === undefined) return undefined;
    if (/^[0-9]{1,9}$/.test(v.trim()) && Number(v) <= max) return Number(v.trim());
    warnings.push(`annotation ${ann}: "${v}" is not a whole number from 0 to ${max}; using the sidecar's default`);
    return undefined;
  };
  const failureAccrual = whole(ANNOTATIONS.failureAccrual, 1000);
  const maxInFlight = whole(ANNOTATIONS.maxInFlight, 999_999_999);
  let rewriteProbes = true;
  const rp = annotations[ANNOTATIONS.rewriteProbes];
  if (rp !== undefined) {
    if (rp === 'false' || rp === 'true') rewriteProbes = rp === 'true';
    else warnings.push(`annotation ${ANNOTATIONS.rewriteProbes}: "${rp}" is neither "true" nor "false"; using true`);
  }
  let drainTimeoutMs = DEFAULT_DRAIN_TIMEOUT_MS;
  const dt = annotations[ANNOTATIONS.drainTimeout];
  if (dt !== undefined) {
    const r = parseDrainTimeout(dt, `annotation ${ANNOTATIONS.drainTimeout}`);
    if (r.ok) drainTimeoutMs = r.ms;
    else warnings.push(`${r.error}; using ${DEFAULT_DRAIN_TIMEOUT_MS / 1000}s`);
  }
  return {
    config: {
      ...(failureAccrual !== undefined ? { failureAccrual } : {}),
      ...(maxInFlight !== undefined ? { maxInFlight } : {}),
      resources: { requests, limits },
      logLevel,
      skipInboundPorts: ports(annotations[ANNOTATIONS.skipInboundPorts] ?? '', ANNOTATIONS.skipInboundPorts, warnings),
      skipOutboundPorts: ports(annotations[ANNOTATIONS.skipOutboundPorts] ?? '', ANNOTATIONS.skipOutboundPorts, warnings),
      image,
      drainTimeoutMs,
      rewriteProbes,

      limitArgs,
    },
    warnings,
  };
}

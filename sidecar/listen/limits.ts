// The sidecar's per-workload limits (api/limits.ts names them): built from
// the sidecar's flags, and turned into the options node's servers take.
// Pure: the listeners read the result; nothing here touches a socket.
//
// What each limit answers (counted in weft_limit_rejections_total{limit}):
//   request-head-timeout  408 + close     a request head not complete in time (slowloris)
//   max-header-bytes      431             HTTP/1.1 head larger; HTTP/2 header list larger
//   max-headers           431             more header fields than this
//   idle-timeout          close           a connection with no request in flight for this long
//   max-connections       close / 503     connections accepted by one sidecar listener
//   max-concurrent-streams RST_STREAM     HTTP/2 streams open at once on one connection
import { DEFAULT_LIMITS, LIMITS, parseLimit, type LimitName, type SidecarLimits } from '../../api/index.js';

export { DEFAULT_LIMITS, LIMITS, type SidecarLimits } from '../../api/index.js';

/** Flag values as parsed (`--request-head-timeout 10s` → { 'request-head-timeout': '10s' }). */
export type LimitFlags = Partial<Record<string, string | boolean | undefined>>;

/** The limits from flags; a bad value is an error naming the flag (the default is not silently used). */
export function limitsFromFlags(flags: LimitFlags): { limits: SidecarLimits; errors: string[] } {
  const limits: SidecarLimits = { ...DEFAULT_LIMITS };
  const errors: string[] = [];
  for (const name of Object.keys(LIMITS) as LimitName[]) {
    const spec = LIMITS[name];
    const raw = flags[spec.flag];
    if (raw === undefined) continue;
    const r = parseLimit(name, typeof raw === 'boolean' ? String(raw) : raw, `--${spec.flag}`);
    if (!r.ok) {
      errors.push(r.message);
      continue;
    }
    if (name === 'mergeSlashes') limits.mergeSlashes = r.value === 1;
    else limits[name] = r.value;
  }
  return { limits, errors };
}

/** The flags that give these limits (only those that differ from the defaults). */
export function limitsToFlags(l: SidecarLimits): string[] {
  const out: string[] = [];
  for (const name of Object.keys(LIMITS) as LimitName[]) {
    const v = l[name];
    const d = DEFAULT_LIMITS[name];
    if (v === d) continue;
    const spec = LIMITS[name];
    if (spec.kind === 'boolean') out.push(...(v === true ? [`--${spec.flag}`] : []));
    else if (spec.kind === 'duration') out.push(`--${spec.flag}`, `${v as number}ms`);
    else out.push(`--${spec.flag}`, String(v));
  }
  return out;
}

/**
 * node:http createServer options for a sidecar listener. `headersTimeout` is
 * the request-head timeout; node checks it every `connectionsCheckingInterval`
 * (30 s by default, far too coarse for a 10 s limit), so that is set to a
 * fraction of the timeout. `requestTimeout` stays 0: a long streamed body
 * (64 MiB uploads) is not a slow head.
 */
export function httpServerOptions(l: SidecarLimits): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
  keepAliveTimeout: number;
  maxHeaderSize: number;
} {
  return {
    headersTimeout: l.requestHeadTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(l.requestHeadTimeoutMs / 4))),
    keepAliveTimeout: l.idleTimeoutMs,
    maxHeaderSize: l.maxHeaderBytes,
  };
}

/** Properties set on the http.Server after creation (not constructor options in node 20). */
export function httpServerProperties(l: SidecarLimits): { maxHeadersCount: number; timeout: number } {
  return { maxHeadersCount: l.maxHeaders, timeout: l.idleTimeoutMs };
}

/** node:http2 server settings for the h2c / h2 listeners. */
export function http2Settings(l: SidecarLimits): { maxConcurrentStreams: number; maxHeaderListSize: number } {
  return { maxConcurrentStreams: l.maxConcurrentStreams, maxHeaderListSize: l.maxHeaderBytes };
}

/** node:http2 createServer options beyond settings. */
export function http2ServerOptions(l: SidecarLimits): { maxHeaderListPairs: number; maxSessionMemory: number } {
  // maxHeaderListPairs counts pseudo-headers too (node adds 4 of its own).
  return { maxHeaderListPairs: l.maxHeaders + 4, maxSessionMemory: 10 };
}

/** The close/408 reason for a head that did not arrive in time. */
export function headTimeoutReason(l: SidecarLimits): string {
  return `request head not received within ${l.requestHeadTimeoutMs} ms (--request-head-timeout)`;
}

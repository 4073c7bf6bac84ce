// The app probes the injector rewrites to the sidecar's admin port, as the
// sidecar receives them (env WEFT_APP_PROBES: JSON, admin path → probe).
// Only these paths are forwarded: the admin port is reachable from other
// pods and must not become a plaintext way around mTLS.

export const APP_PROBES_ENV = 'WEFT_APP_PROBES';
export const APP_PROBES_ANNOTATION = 'weft.io/app-probes';
export const APP_PROBE_PREFIX = '/app-probe/';

export type AppProbe =
  | { kind: 'http'; port: number; path: string; scheme: 'HTTP' | 'HTTPS'; host?: string; headers?: Array<{ name: string; value: string }> }
  | { kind: 'tcp'; port: number }
  | { kind: 'grpc'; port: number; service?: string };

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

/** Parses WEFT_APP_PROBES; errors name the entry and field. */
export function parseAppProbes(json: string, field = APP_PROBES_ENV): { ok: true; probes: Record<string, AppProbe> } | { ok: false; error: string } {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch (e) {
    return { ok: false, error: `${field}: not JSON: ${(e as Error).message}` };
  }
  if (!isObj(v)) return { ok: false, error: `${field}: must be an object of admin path → probe` };
  const probes: Record<string, AppProbe> = {};
  for (const [path, p] of Object.entries(v)) {
    const at = `${field}[${JSON.stringify(path)}]`;
    if (!path.startsWith(APP_PROBE_PREFIX)) return { ok: false, error: `${at}: the path must start with ${APP_PROBE_PREFIX}` };
    if (!isObj(p) || !isPort(p.port)) return { ok: false, error: `${at}.port: must be a port (1-65535)` };
    if (p.kind === 'http') {
      if (typeof p.path !== 'string' || !p.path.startsWith('/')) return { ok: false, error: `${at}.path: must start with "/"` };
      if (p.scheme !== 'HTTP' && p.scheme !== 'HTTPS') return { ok: false, error: `${at}.scheme: must be HTTP or HTTPS` };
      const headers = Array.isArray(p.headers) ? p.headers.filter((h): h is { name: string; value: string } => isObj(h) && typeof h.name === 'string' && typeof h.value === 'string') : [];
      probes[path] = { kind: 'http', port: p.port, path: p.path, scheme: p.scheme, ...(typeof p.host === 'string' && p.host ? { host: p.host } : {}), ...(headers.length ? { headers } : {}) };
    } else if (p.kind === 'tcp') probes[path] = { kind: 'tcp', port: p.port };
    else if (p.kind === 'grpc') probes[path] = { kind: 'grpc', port: p.port, ...(typeof p.service === 'string' && p.service ? { service: p.service } : {}) };
    else return { ok: false, error: `${at}.kind: must be http, tcp or grpc` };
  }
  return { ok: true, probes };
}

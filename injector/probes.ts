// Probes in strict mode: the kubelet probes a pod's app from the node, in
// plaintext, on the app's port — which strict mTLS refuses (and permissive
// mode sees as a caller outside the mesh). So the injector rewrites every
// HTTP, TCP and gRPC liveness/readiness/startup probe of the app containers
// to an HTTP GET on the sidecar's admin port (never intercepted):
//
//   /app-probe/<container>/<livez|readyz|startupz>
//
// and hands the sidecar the original handlers (env WEFT_APP_PROBES, JSON:
// path → probe), so the admin forwards exactly those probes to the app on
// the pod IP and nothing else (the admin port is reachable from other pods;
// it must not become a plaintext way around mTLS). The originals are kept in
// the annotation `weft.io/app-probes`. Timing fields (period, thresholds,
// timeouts) stay as they were. Exec probes are left alone.
import { APP_PROBE_PREFIX, PORTS, type AppProbe } from '../api/index.js';
import type { Container } from './pod.js';

export { APP_PROBES_ANNOTATION, APP_PROBES_ENV, APP_PROBE_PREFIX, type AppProbe } from '../api/index.js';

const KINDS = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

type ProbeField = (typeof KINDS)[number][0];
type RawProbe = Record<string, unknown>;

export interface ProbeRewrite {
  /** Per container index: the probe fields to set (the rewritten probes). */
  containers: Array<{ index: number; field: ProbeField; probe: RawProbe }>;
  /** Admin path → what to forward (WEFT_APP_PROBES). */
  table: Record<string, AppProbe>;
  /** container → field → the original probe (annotation weft.io/app-probes). */
  original: Record<string, Partial<Record<ProbeField, RawProbe>>>;
  warnings: string[];
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A probe's port: a number, or the name of one of the container's ports. */
function resolvePort(c: Container, port: unknown): number | undefined {
  if (typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535) return port;
  if (typeof port === 'string') {
    if (/^\d+$/.test(port)) return resolvePort(c, Number(port));
    return (c.ports ?? []).find((p) => p.name === port)?.containerPort;
  }
  return undefined;
}

/** The rewrite for one probe, or why it stays as it is (undefined: nothing to do, e.g. exec). */
export function appProbeOf(c: Container, probe: RawProbe, where: string): { ok: true; probe: AppProbe } | { ok: false; warning?: string } {
  if (isObj(probe.httpGet)) {
    const h = probe.httpGet;
    const port = resolvePort(c, h.port);
    if (port === undefined) return { ok: false, warning: `${where}.httpGet.port: ${JSON.stringify(h.port)} is not a port of the container; probe left as it is` };
    if (port === PORTS.admin) return { ok: false };
    const scheme = h.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP';
    const path = typeof h.path === 'string' && h.path !== '' ? (h.path.startsWith('/') ? h.path : `/${h.path}`) : '/';
    const headers = Array.isArray(h.httpHeaders)
      ? h.httpHeaders.filter((x): x is { name: string; value: string } => isObj(x) && typeof x.name === 'string' && typeof x.value === 'string').map((x) => ({ name: x.name, value: x.value }))
      : [];
    const out: AppProbe = { kind: 'http', port, path, scheme };
    if (typeof h.host === 'string' && h.host) out.host = h.host;
    if (headers.length) out.headers = headers;
    return { ok: true, probe: out };
  }
  if (isObj(probe.tcpSocket)) {
    const port = resolvePort(c, probe.tcpSocket.port);
    if (port === undefined) return { ok: false, warning: `${where}.tcpSocket.port: ${JSON.stringify(probe.tcpSocket.port)} is not a port of the container; probe left as it is` };
    if (port === PORTS.admin) return { ok: false };
    return { ok: true, probe: { kind: 'tcp', port } };
  }
  if (isObj(probe.grpc)) {
    const port = resolvePort(c, probe.grpc.port);
    if (port === undefined) return { ok: false, warning: `${where}.grpc.port: ${JSON.stringify(probe.grpc.port)} is not a port; probe left as it is` };
    const out: AppProbe = { kind: 'grpc', port };
    if (typeof probe.grpc.service === 'string' && probe.grpc.service) out.service = probe.grpc.service;
    return { ok: true, probe: out };
  }
  return { ok: false };
}

/** Pure: the probes of `containers` (the pod's app containers) rewritten to the sidecar's admin port. */
export function rewriteProbes(containers: Container[]): ProbeRewrite {
  const out: ProbeRewrite = { containers: [], table: {}, original: {}, warnings: [] };
  containers.forEach((c, index) => {
    for (const [field, short] of KINDS) {
      const probe = c[field] as unknown;
      if (!isObj(probe)) continue;
      const r = appProbeOf(c, probe, `spec.containers[${index}].${field}`);
      if (!r.ok) {
        if (r.warning) out.warnings.push(r.warning);
        continue;
      }
      const path = `${APP_PROBE_PREFIX}${c.name}/${short}`;
      out.table[path] = r.probe;
      (out.original[c.name] ??= {})[field] = probe;
      // Same timing, a new handler: HTTP GET on the admin port.
      const rest = Object.fromEntries(Object.entries(probe).filter(([k]) => k !== 'httpGet' && k !== 'tcpSocket' && k !== 'grpc' && k !== 'exec'));
      out.containers.push({ index, field, probe: { ...rest, httpGet: { path, port: PORTS.admin, scheme: 'HTTP' } } });
    }
  });
  return out;
}

// Service → endpoints, per Service port: the registered workloads its
// selector matches (local mode), or the EndpointSlices labelled with its name
// (Kubernetes, and selector-less Services in local mode). Also the directory
// entry every sidecar gets.
import type { AppProtocol, DirectoryEntry, Endpoint, Service, ServicePortSpec } from '../api/index.js';
import type { RegisteredWorkload, StoreSnapshot } from './types.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * Service port → the protocol the sidecar should speak. appProtocol first
 * (KEP-3726 values: kubernetes.io/h2c → http2), then the port-name
 * convention other meshes use (`http`, `http-*`, `grpc-*`, `h2c-*`), else ''
 * (the sidecar detects).
 */
export function normalizeAppProtocol(port: ServicePortSpec): AppProtocol {
  const ap = (port.appProtocol ?? '').toLowerCase();
  if (port.protocol && port.protocol !== 'TCP') return 'tcp';
  switch (ap) {
    case 'http':
    case 'kubernetes.io/ws':
      return 'http';
    case 'kubernetes.io/h2c':
    case 'h2c':
    case 'http2':
      return 'http2';
    case 'grpc':
      return 'grpc';
    case 'tcp':
    case 'https':
    case 'tls':
    case 'kubernetes.io/wss':
    case 'mysql':
    case 'redis':
    case 'mongo':
      return 'tcp';
    case '':
      break;
    default:
      return '';
  }
  const name = (port.name ?? '').toLowerCase();
  const prefix = name.split('-')[0];
  if (prefix === 'http' || prefix === 'ws') return 'http';
  if (prefix === 'grpc') return 'grpc';
  if (prefix === 'http2' || prefix === 'h2c') return 'http2';
  if (prefix === 'tcp' || prefix === 'https' || prefix === 'tls') return 'tcp';
  return '';
}

/** The numeric targetPort of a Service port when it is a number (or absent → port). */
export function numericTargetPort(p: ServicePortSpec): number | undefined {
  if (p.targetPort === undefined || p.targetPort === '') return p.port;
  if (typeof p.targetPort === 'number') return p.targetPort;
  return /^[0-9]+$/.test(p.targetPort) ? Number(p.targetPort) : undefined;
}

export function clusterIPOf(svc: Service): string {
  const ip = svc.spec.clusterIP ?? '';
  return ip === 'None' ? '' : ip;
}

export function selectorMatches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** Endpoints of every Service, computed once per compile. */
export class EndpointIndex {
  private readonly slicesBySvc = new Map<string, StoreSnapshot['endpointSlices']>();
  private readonly meshedByIP = new Map<string, RegisteredWorkload>();
  private readonly cache = new Map<string, Endpoint[]>();

  constructor(private readonly snap: StoreSnapshot) {
    for (const s of snap.endpointSlices) {
      const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
      if (!svc) continue;
      const key = `${s.metadata.namespace ?? 'default'}/${svc}`;
      const list = this.slicesBySvc.get(key) ?? [];
      list.push(s);
      this.slicesBySvc.set(key, list);
    }
    for (const w of snap.registered) if (w.meshed) this.meshedByIP.set(w.podIP, w);
  }

  endpoints(svc: Service, port: ServicePortSpec): Endpoint[] {
    const ns = svc.metadata.namespace ?? 'default';
    const ck = `${ns}/${svc.metadata.name}:${port.port}`;
    const hit = this.cache.get(ck);
    if (hit) return hit;
    const slices = this.slicesBySvc.get(`${ns}/${svc.metadata.name}`);
    let eps: Endpoint[];
    if (slices && slices.length > 0) eps = this.fromSlices(slices, port);
    else if (svc.spec.selector && Object.keys(svc.spec.selector).length > 0) eps = this.fromRegistered(svc, port);
    else eps = [];
    eps.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
    this.cache.set(ck, eps);
    return eps;
  }

  private fromRegistered(svc: Service, port: ServicePortSpec): Endpoint[] {
    const ns = svc.metadata.namespace ?? 'default';
    const sel = svc.spec.selector ?? {};
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    for (const w of this.snap.registered) {
      if (w.namespace !== ns || !selectorMatches(sel, w.labels)) continue;
      let target = numericTargetPort(port);
      if (target === undefined) {
        // A named targetPort: a registered workload has no named container
        // ports, so the Service port number is the app port if the workload
        // listens there; else its only app port; else the Service port.
        if (w.appPorts.includes(port.port)) target = port.port;
        else if (w.appPorts.length === 1) target = w.appPorts[0]!;
        else target = port.port;
      }
      const k = `${w.podIP}:${target}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const ep: Endpoint = { ip: w.podIP, port: target, ready: true, pod: w.podName, workload: w.workload };
      if (w.meshed) ep.identity = { namespace: w.namespace, serviceAccount: w.serviceAccount };
      out.push(ep);
    }
    return out;
  }

  private fromSlices(slices: StoreSnapshot['endpointSlices'], port: ServicePortSpec): Endpoint[] {
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    for (const s of slices) {
      if (s.addressType === 'FQDN') continue;
      let target: number | undefined;
      if (s.ports && s.ports.length > 0) {
        const want = port.name ?? '';
        const sp = s.ports.find((p) => (p.name ?? '') === want) ?? (s.ports.length === 1 && !want ? s.ports[0] : undefined);
        if (!sp || sp.port === undefined) continue;
        target = sp.port;
      } else {
        target = numericTargetPort(port) ?? port.port;
      }
      for (const e of s.endpoints) {
        const c = e.conditions ?? {};
        // EndpointSlice: a nil `ready` means ready; a terminating endpoint
        // that is still serving is kept as a last resort (ready=false).
        const ready = c.ready !== false && c.terminating !== true;
        if (!ready && c.serving !== true) continue;
        for (const ip of e.addresses) {
          const k = `${ip}:${target}`;
          if (seen.has(k)) continue;
          seen.add(k);
          const ep: Endpoint = { ip, port: target, ready };
          const w = this.meshedByIP.get(ip);
          if (w) {
            ep.identity = { namespace: w.namespace, serviceAccount: w.serviceAccount };
            ep.pod = w.podName;
            ep.workload = w.workload;
          } else if (e.targetRef?.kind === 'Pod' && e.targetRef.name) {
            ep.pod = e.targetRef.name;
          }
          out.push(ep);
        }
      }
    }
    return out;
  }

  meshed(svc: Service): boolean {
    for (const p of svc.spec.ports ?? []) if (this.endpoints(svc, p).some((e) => e.identity)) return true;
    return false;
  }
}

export function directoryEntry(svc: Service, idx: EndpointIndex): DirectoryEntry {
  return {
    namespace: svc.metadata.namespace ?? 'default',
    name: svc.metadata.name,
    clusterIP: clusterIPOf(svc),
    ports: (svc.spec.ports ?? []).map((p) => ({
      name: p.name ?? '',
      port: p.port,
      targetPort: numericTargetPort(p) ?? p.port,
      appProtocol: normalizeAppProtocol(p),
    })),
    meshed: idx.meshed(svc),
  };
}

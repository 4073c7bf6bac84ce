// Which Service (or pod, or outside host) a request is for.
//
// Order (GEP-1426): the original destination ClusterIP:port when iptables
// redirected the connection, whatever the Host header says; otherwise the
// absolute-form URI (the app uses us as its HTTP proxy); otherwise Host.
// Host names: `svc`, `svc.ns`, `svc.ns.svc`, `svc.ns.svc.<cluster domain>`,
// with or without port; a bare `svc` is in the caller's namespace; the port
// defaults to 80.
import { isIP } from 'node:net';
import type { DirectoryEntry } from '../../api/index.js';
import type { EndpointRt, MeshState } from '../config/config-apply.js';
import type { OriginalDst } from '../detect/original-dst.js';

export type Target =
  | { kind: 'service'; entry: DirectoryEntry; port: number }
  /** A meshed pod addressed by IP: go straight to it over mTLS. */
  | { kind: 'pod'; template: EndpointRt; ip: string; port: number }
  | { kind: 'external'; host: string; port: number }
  /** A name that looks like a mesh Service but is not in the directory. */
  | { kind: 'unknown'; name: string; namespace: string; port: number };

export interface Authority {
  host: string;
  port: number;
}

/** Splits "host[:port]" (IPv6 in brackets); the port defaults to `defPort`. */
export function parseAuthority(authority: string, defPort = 80): Authority | undefined {
  if (!authority) return undefined;
  let host = authority;
  let port = defPort;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    const rest = host.slice(end + 1);
    host = host.slice(1, end);
    if (rest.startsWith(':')) port = Number(rest.slice(1));
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      port = Number(host.slice(colon + 1));
      host = host.slice(0, colon);
    }
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (host.endsWith('.')) host = host.slice(0, -1);
  return { host: host.toLowerCase(), port };
}

/** Service name and namespace a host name denotes, or undefined if it is not a cluster-local form. */
export function serviceOfHost(host: string, callerNamespace: string): { name: string; namespace: string } | undefined {
  const parts = host.split('.');
  if (parts.length === 1) return { name: parts[0]!, namespace: callerNamespace };
  if (parts.length === 2) return { name: parts[0]!, namespace: parts[1]! };
  if (parts[2] === 'svc') return { name: parts[0]!, namespace: parts[1]! };
  return undefined;
}

export function resolveByAddress(state: MeshState, ip: string, port: number): Target | undefined {
  const entry = state.directory?.byAddr.get(`${ip}:${port}`);
  if (entry) return { kind: 'service', entry, port };
  const pod = state.podIdentities.get(ip);
  if (pod) return { kind: 'pod', template: pod, ip, port };
  return undefined;
}

export function resolveTarget(state: MeshState, callerNamespace: string, dst: OriginalDst | undefined, authority: Authority): Target {
  if (dst) {
    const t = resolveByAddress(state, dst.address, dst.port);
    if (t) return t;
    return { kind: 'external', host: dst.address, port: dst.port };
  }
  const { host, port } = authority;
  if (isIP(host)) return resolveByAddress(state, host, port) ?? { kind: 'external', host, port };
  const svc = serviceOfHost(host, callerNamespace);
  if (svc) {
    const entry = state.directory?.byName.get(`${svc.namespace}/${svc.name}`);
    if (entry) return { kind: 'service', entry, port };
    // A bare single label that is no Service is a host outside the mesh
    // (e.g. `localhost`); `a.b.svc...` forms are unmistakably cluster names.
    if (host.includes('.svc')) return { kind: 'unknown', name: svc.name, namespace: svc.namespace, port };
  }
  return { kind: 'external', host, port };
}

export type Lookup = Target | { kind: 'respond'; status: number; reason: string };

/**
 * The one service lookup of the outbound, for every protocol: which target
 * a request is for, or the answer when there is none — 400 without any
 * authority, 502 for an unknown cluster name, 508 for a request addressed to
 * the outbound listener itself (it would loop through it forever).
 */
export function lookupRequest(state: MeshState, callerNamespace: string, dst: OriginalDst | undefined, authority: string, self: { ip: string; port: number }): Lookup {
  const auth = parseAuthority(authority);
  if (!auth && !dst) return { kind: 'respond', status: 400, reason: 'request has no Host header or absolute URI' };
  const t = resolveTarget(state, callerNamespace, dst, auth ?? { host: '', port: 80 });
  if (t.kind === 'unknown') return { kind: 'respond', status: 502, reason: `unknown service ${t.namespace}/${t.name}` };
  if (t.kind === 'external' && t.port === self.port && (t.host === self.ip || t.host === 'localhost' || t.host === '127.0.0.1')) {
    return { kind: 'respond', status: 508, reason: 'request addressed to the sidecar itself (proxy loop)' };
  }
  return t;
}

// Builders for compile tests: small, valid resources run through
// validateResource so defaults are applied exactly as for real input.
import type { AnyResource, GRPCRoute, HTTPRoute, Service } from '../../../api/index.js';
import { snapshotOf, type RegisteredWorkload, type StoreSnapshot } from '../../types.js';
import { validateResource } from '../../validate.js';

export function v<T extends AnyResource>(doc: unknown): T {
  const r = validateResource(doc, 'test');
  // failClosed: what the file source serves of an invalid resource that is safer served (validateResource).
  const res = r.resource ?? r.failClosed;
  if (!res) throw new Error(`invalid test resource: ${JSON.stringify(r.errors)}`);
  return res as T;
}

export function svc(ns: string, name: string, ports: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Service {
  return v<Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector: { app: name }, ports, ...extra } });
}

export function httpRoute(ns: string, name: string, spec: Record<string, unknown>, created?: string): HTTPRoute {
  return v<HTTPRoute>({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation: 3, ...(created ? { creationTimestamp: created } : {}) },
    spec,
  });
}

export function grpcRoute(ns: string, name: string, spec: Record<string, unknown>, created?: string): GRPCRoute {
  return v<GRPCRoute>({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name, namespace: ns, generation: 1, ...(created ? { creationTimestamp: created } : {}) },
    spec,
  });
}

export function pod(ns: string, app: string, ip: string, extra: Partial<RegisteredWorkload> = {}): RegisteredWorkload {
  return {
    namespace: ns,
    workload: app,
    serviceAccount: app,
    podName: `${app}-0`,
    podIP: ip,
    labels: { app },
    appPorts: [8080],
    meshed: true,
    ...extra,
  };
}

export function snapshot(resources: AnyResource[], registered: RegisteredWorkload[] = []): StoreSnapshot {
  return snapshotOf(resources, registered, Buffer.from('test session key').toString('base64'));
}

export const parent = (name: string, extra: Record<string, unknown> = {}) => ({ group: '', kind: 'Service', name, ...extra });
export const backend = (name: string, port = 80, extra: Record<string, unknown> = {}) => ({ name, port, ...extra });

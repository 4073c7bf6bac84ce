// Shapes shared by control's stages: source → store → compile → view → push.
import type {
  AnyResource,
  AuthorizationPolicy,
  InboundAuthzConfig,
  BackendLBPolicy,
  BackendTLSPolicy,
  ConfigMap,
  EndpointSlice,
  GRPCRoute,
  HTTPRoute,
  Namespace,
  PolicyStatus,
  ReferenceGrant,
  RouteStatus,
  Service,
  ServiceConfig,
  DirectoryEntry,
  Workload,
  XBackendTrafficPolicy,
} from '../api/index.js';

/** A problem with input, naming where it is. Errors are values, not throws. */
export interface ConfigError {
  /** File path (file source) or "kubernetes". */
  source: string;
  /** "HTTPRoute default/web", or "" when the file itself is unreadable. */
  resource: string;
  /** JSON path of the field, e.g. "spec.rules[0].matches[0].path.type". */
  field: string;
  message: string;
}

export function formatConfigError(e: ConfigError): string {
  const where = [e.source, e.resource, e.field].filter(Boolean).join(': ');
  return `${where}: ${e.message}`;
}

/** A workload whose sidecar is connected (local mode) or a pod seen in an EndpointSlice. */
export interface RegisteredWorkload {
  namespace: string;
  workload: string;
  serviceAccount: string;
  podName: string;
  podIP: string;
  labels: Record<string, string>;
  appPorts: number[];
  /** Has a weft sidecar (mTLS at podIP:7002). */
  meshed: boolean;
  /** The pod's `weft.io/default-inbound-policy` annotation (Kubernetes mode). */
  defaultInboundPolicy?: string;
  /** The pod's kubelet HTTP probes (Kubernetes mode): allowed under every inbound policy. */
  probes?: Array<{ port: number; path: string }>;
}

/** Everything compile needs, already validated (invalid resources are left out, with errors). */
export interface StoreSnapshot {
  services: Service[];
  endpointSlices: EndpointSlice[];
  namespaces: Namespace[];
  configMaps: ConfigMap[];
  httpRoutes: HTTPRoute[];
  grpcRoutes: GRPCRoute[];
  referenceGrants: ReferenceGrant[];
  backendLBPolicies: BackendLBPolicy[];
  backendTLSPolicies: BackendTLSPolicy[];
  xBackendTrafficPolicies: XBackendTrafficPolicy[];
  workloads: Workload[];
  authorizationPolicies: AuthorizationPolicy[];
  /** Connected sidecars (local mode) — endpoints of selector Services. */
  registered: RegisteredWorkload[];
  /** Mesh-wide secret for session tokens (base64). */
  sessionKey: string;
}

export interface ResourceStatus {
  kind: string;
  namespace: string;
  name: string;
  generation?: number;
  status: RouteStatus | PolicyStatus;
}

export interface CompileResult {
  /** Service directory for every sidecar. */
  directory: DirectoryEntry[];
  /**
   * view(service, consumerNamespace) → the compiled config, or undefined when
   * the Service does not exist. Pure; control caches the serialized result.
   */
  view(service: string, consumerNamespace: string): ServiceConfig | undefined;
  /**
   * inbound(pod) → the pod's inbound authorization view: the
   * AuthorizationPolicies that select it and its default inbound policy.
   */
  inbound(pod: PodRef): InboundAuthzConfig;
  /** The compiled AuthorizationPolicies (get, describe). */
  authz: AuthzIndex;
  /** Route and policy status, one entry per resource. */
  statuses: ResourceStatus[];
  /** Semantic errors found while compiling (also reflected in statuses). */
  errors: ConfigError[];
}

/** The StoreSnapshot of a list of resources: each kind in its own list, in input order. */
export function snapshotOf(resources: Iterable<AnyResource>, registered: RegisteredWorkload[], sessionKey = ''): StoreSnapshot {
  const snap: StoreSnapshot = {
    services: [],
    endpointSlices: [],
    namespaces: [],
    configMaps: [],
    httpRoutes: [],
    grpcRoutes: [],
    referenceGrants: [],
    backendLBPolicies: [],
    backendTLSPolicies: [],
    xBackendTrafficPolicies: [],
    workloads: [],
    authorizationPolicies: [],
    registered,
    sessionKey,
  };
  const lists: Record<AnyResource['kind'], AnyResource[]> = {
    Service: snap.services,
    EndpointSlice: snap.endpointSlices,
    Namespace: snap.namespaces,
    ConfigMap: snap.configMaps,
    HTTPRoute: snap.httpRoutes,
    GRPCRoute: snap.grpcRoutes,
    ReferenceGrant: snap.referenceGrants,
    BackendLBPolicy: snap.backendLBPolicies,
    BackendTLSPolicy: snap.backendTLSPolicies,
    XBackendTrafficPolicy: snap.xBackendTrafficPolicies,
    Workload: snap.workloads,
    AuthorizationPolicy: snap.authorizationPolicies,
  };
  for (const r of resources) lists[r.kind]?.push(r);
  return snap;
}

export type { AnyResource };
import type { AuthzIndex, PodRef } from './compile-authz.js';
export type { AuthzIndex, PodRef };

// TypeScript shapes of the Kubernetes and Gateway API v1.1 resources weft
// reads. They mirror the Go types of kubernetes-sigs/gateway-api v1.1.0
// (apis/v1, apis/v1alpha2, apis/v1alpha3) field for field; optional fields are
// optional here too. Validation lives in control/, not in these types.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject<K extends string = string> {
  apiVersion: string;
  kind: K;
  metadata: ObjectMeta;
}

// ---- core/v1 ---------------------------------------------------------------

export interface ServicePortSpec {
  name?: string;
  protocol?: string; // TCP (default), UDP, SCTP
  appProtocol?: string;
  port: number;
  targetPort?: number | string;
}

export interface Service extends KubeObject<'Service'> {
  spec: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    clusterIP?: string; // "None" for headless
    clusterIPs?: string[];
    selector?: Record<string, string>;
    ports?: ServicePortSpec[];
    externalName?: string;
  };
}

export interface Namespace extends KubeObject<'Namespace'> {}

export interface ConfigMap extends KubeObject<'ConfigMap'> {
  data?: Record<string, string>;
}

// discovery.k8s.io/v1
export interface EndpointSlice extends KubeObject<'EndpointSlice'> {
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints: Array<{
    addresses: string[];
    conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
    hostname?: string;
    nodeName?: string;
    zone?: string;
    targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
  }>;
  ports?: Array<{ name?: string; port?: number; protocol?: string; appProtocol?: string }>;
}

// ---- gateway.networking.k8s.io shared types (apis/v1/shared_types.go) -------

export interface ParentReference {
  group?: string; // default gateway.networking.k8s.io; "" for Service
  kind?: string; // default Gateway
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface BackendObjectReference {
  group?: string; // default ""
  kind?: string; // default Service
  name: string;
  namespace?: string;
  port?: number;
}

export interface HTTPHeader {
  name: string;
  value: string;
}

export interface HTTPHeaderFilter {
  set?: HTTPHeader[];
  add?: HTTPHeader[];
  remove?: string[];
}

export interface LocalObjectReference {
  group: string;
  kind: string;
  name: string;
}

export interface SessionPersistence {
  sessionName?: string;
  absoluteTimeout?: string;
  idleTimeout?: string;
  type?: 'Cookie' | 'Header';
  cookieConfig?: { lifetimeType?: 'Permanent' | 'Session' };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface RouteStatus {
  parents: RouteParentStatus[];
}

export interface PolicyAncestorStatus {
  ancestorRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface PolicyStatus {
  ancestors: PolicyAncestorStatus[];
}

// ---- HTTPRoute (gateway.networking.k8s.io/v1) -------------------------------

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type HeaderMatchType = 'Exact' | 'RegularExpression';

export interface HTTPRouteMatch {
  path?: { type?: PathMatchType; value?: string };
  headers?: Array<{ type?: HeaderMatchType; name: string; value: string }>;
  queryParams?: Array<{ type?: HeaderMatchType; name: string; value: string }>;
  method?: string;
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRouteFilter {
  type:
    | 'RequestHeaderModifier'
    | 'ResponseHeaderModifier'
    | 'RequestMirror'
    | 'RequestRedirect'
    | 'URLRewrite'
    | 'ExtensionRef';
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestMirror?: { backendRef: BackendObjectReference };
  requestRedirect?: {
    scheme?: 'http' | 'https';
    hostname?: string;
    path?: HTTPPathModifier;
    port?: number;
    statusCode?: number;
  };
  urlRewrite?: { hostname?: string; path?: HTTPPathModifier };
  extensionRef?: LocalObjectReference;
}

export interface HTTPBackendRef extends BackendObjectReference {
  weight?: number; // default 1
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string; // experimental (GEP-995), used by the NamedRule tests
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  sessionPersistence?: SessionPersistence;
  /** GEP-1731 (experimental channel). */
  retry?: HTTPRouteRetry;
}

/** HTTPRouteRetry (GEP-1731, apis/v1 experimental). */
export interface HTTPRouteRetry {
  /** HTTP response codes to retry, each 400–599. */
  codes?: number[];
  /** The most retries of one request (so at most 1 + attempts tries). */
  attempts?: number;
  /** Minimum wait between tries, a Gateway API duration. */
  backoff?: string;
}

export interface HTTPRoute extends KubeObject<'HTTPRoute'> {
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: HTTPRouteRule[];
  };
  status?: RouteStatus;
}

// ---- GRPCRoute (gateway.networking.k8s.io/v1) -------------------------------

export interface GRPCRouteMatch {
  method?: { type?: 'Exact' | 'RegularExpression'; service?: string; method?: string };
  headers?: Array<{ type?: HeaderMatchType; name: string; value: string }>;
}

export interface GRPCRouteFilter {
  type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestMirror' | 'ExtensionRef';
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestMirror?: { backendRef: BackendObjectReference };
  extensionRef?: LocalObjectReference;
}

export interface GRPCBackendRef extends BackendObjectReference {
  weight?: number;
  filters?: GRPCRouteFilter[];
}

export interface GRPCRouteRule {
  name?: string;
  matches?: GRPCRouteMatch[];
  filters?: GRPCRouteFilter[];
  backendRefs?: GRPCBackendRef[];
  sessionPersistence?: SessionPersistence;
}

export interface GRPCRoute extends KubeObject<'GRPCRoute'> {
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: GRPCRouteRule[];
  };
  status?: RouteStatus;
}

// ---- ReferenceGrant (gateway.networking.k8s.io/v1beta1) ---------------------

export interface ReferenceGrant extends KubeObject<'ReferenceGrant'> {
  spec: {
    from: Array<{ group: string; kind: string; namespace: string }>;
    to: Array<{ group: string; kind: string; name?: string }>;
  };
}

// ---- BackendLBPolicy (gateway.networking.k8s.io/v1alpha2) -------------------

export interface BackendLBPolicy extends KubeObject<'BackendLBPolicy'> {
  spec: {
    targetRefs: LocalObjectReference[];
    sessionPersistence?: SessionPersistence;
  };
  status?: PolicyStatus;
}

// ---- BackendTLSPolicy (gateway.networking.k8s.io/v1alpha3) ------------------

export interface BackendTLSPolicy extends KubeObject<'BackendTLSPolicy'> {
  spec: {
    targetRefs: Array<LocalObjectReference & { sectionName?: string }>;
    validation: {
      caCertificateRefs?: LocalObjectReference[];
      wellKnownCACertificates?: 'System';
      hostname: string;
    };
  };
  status?: PolicyStatus;
}

// ---- XBackendTrafficPolicy (gateway.networking.x-k8s.io/v1alpha1, GEP-3388) ---

export interface XBackendTrafficPolicy extends KubeObject<'XBackendTrafficPolicy'> {
  spec: {
    targetRefs: LocalObjectReference[];
    retryConstraint?: {
      /** CRD default {percent: 20, interval: "10s"}. */
      budget?: { percent?: number; interval?: string };
      /** CRD default {count: 10, interval: "1s"}. */
      minRetryRate?: { count?: number; interval?: string };
    };
    sessionPersistence?: SessionPersistence;
  };
  status?: PolicyStatus;
}

export const GATEWAY_X_GROUP = 'gateway.networking.x-k8s.io';

// ---- local.weft.io/v1alpha1 Workload (local mode only) ----------------------

export interface Workload extends KubeObject<'Workload'> {
  spec: {
    /** argv; the first element is the program. `node` means this Node binary. */
    command: string[];
    env?: Record<string, string>;
    serviceAccount?: string; // default "default"
    labels?: Record<string, string>;
    replicas?: number; // default 1
    /** Ports the app listens on (for endpoints and readiness). */
    ports?: number[];
    /** Services to subscribe to ahead of the first call ("name" or "ns/name"). */
    calls?: string[];
    /** Refuse plaintext inbound (strict mTLS). */
    strict?: boolean;
    /** Default inbound policy of these pods (api/mesh.ts DefaultInboundPolicy); overrides namespace and mesh. */
    defaultInboundPolicy?: string;
    /** HTTP paths the app's health checks use: allowed under every inbound policy. */
    probePaths?: string[];
  };
}

export type AnyResource =
  | Service
  | EndpointSlice
  | Namespace
  | ConfigMap
  | HTTPRoute
  | GRPCRoute
  | ReferenceGrant
  | BackendLBPolicy
  | BackendTLSPolicy
  | XBackendTrafficPolicy
  | Workload
  | AuthorizationPolicy;

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const CONTROLLER_NAME = 'weft.io/mesh-controller';

// ---- AuthorizationPolicy (policy.weft.io/v1alpha1, GEP-3779) ----------------
// GEP-3779's resource field for field, in weft's own group until the upstream
// experimental resource exists. Semantics live in control/compile-authz.ts.

export const AUTHZ_GROUP = 'policy.weft.io';

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** metav1.LabelSelector; `{}` selects everything. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface AuthorizationTargetRef {
  group: string;
  kind: string;
  /** Named targets (not for kind Pod, which selects). */
  name?: string;
  /** kind Pod only: the pods of the policy's namespace this policy targets. */
  selector?: LabelSelector;
}

export interface AuthorizationSource {
  type: 'ServiceAccount' | 'SPIFFE';
  /** namespace omitted = the policy's; name "*" = every service account of that namespace. */
  serviceAccount?: { namespace?: string; name: string };
  /** spiffe://<trust domain>/<path>, matched exactly. */
  spiffe?: string;
}

export interface AuthorizationRule {
  /** Omitted: any source. `[]`: none. */
  sources?: AuthorizationSource[];
  networkAttributes?: { ports?: number[] };
}

export interface AuthorizationPolicy extends KubeObject<'AuthorizationPolicy'> {
  spec: {
    targetRefs: AuthorizationTargetRef[];
    action: 'ALLOW';
    /** A policy without rules allows nothing. */
    rules?: AuthorizationRule[];
  };
  status?: PolicyStatus;
}

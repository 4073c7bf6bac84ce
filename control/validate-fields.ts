// Strict fields: the fields each kind declares, as data, so that a field the
// schema does not know (a misspelt `backendRef:` for `backendRefs:`) is an
// error naming its path, as the API server's strict field validation
// (kubectl's default since 1.27) answers: `unknown field "spec.rules[0].backendRef"`.
//
// A shape is ANY (a scalar, or a map with free keys such as labels), an
// object literal (its known fields), or a one-element array (a list of that
// shape). A kind missing from FIELDS is not checked field by field. To add
// a kind or a field, add it to the table; nothing else changes.
//
// Type mismatches (a list where an object belongs) are not reported here:
// the type checks of validate*.ts say "must be of type ...".

export const ANY = '*' as const;
export type Shape = typeof ANY | { readonly [field: string]: Shape } | readonly [Shape];

// ---- shared pieces --------------------------------------------------------------

/** ObjectMeta (k8s.io/apimachinery meta/v1). */
const OBJECT_META: Shape = {
  name: ANY, generateName: ANY, namespace: ANY, selfLink: ANY, uid: ANY, resourceVersion: ANY,
  generation: ANY, creationTimestamp: ANY, deletionTimestamp: ANY, deletionGracePeriodSeconds: ANY,
  labels: ANY, annotations: ANY, ownerReferences: ANY, finalizers: ANY, managedFields: ANY,
};

/** apiVersion, kind, metadata and status (what `kubectl get -o yaml` prints) around a kind's own fields. */
function resource(fields: Record<string, Shape>): Shape {
  return { apiVersion: ANY, kind: ANY, metadata: OBJECT_META, status: ANY, ...fields };
}

const PARENT_REF: Shape = { group: ANY, kind: ANY, namespace: ANY, name: ANY, sectionName: ANY, port: ANY };
const BACKEND_OBJECT_REF: Shape = { group: ANY, kind: ANY, name: ANY, namespace: ANY, port: ANY };
const LOCAL_REF: Shape = { group: ANY, kind: ANY, name: ANY };
const HEADER_MODIFIER: Shape = { set: [{ name: ANY, value: ANY }], add: [{ name: ANY, value: ANY }], remove: ANY };
const PATH_MODIFIER: Shape = { type: ANY, replaceFullPath: ANY, replacePrefixMatch: ANY };
const VALUE_MATCH: Shape = { type: ANY, name: ANY, value: ANY };
const SESSION_PERSISTENCE: Shape = {
  sessionName: ANY, absoluteTimeout: ANY, idleTimeout: ANY, type: ANY, cookieConfig: { lifetimeType: ANY },
};

// GEP-1742 RequestMirror; percent and fraction are v1.2 (GEP-3171), accepted so newer manifests load.
const REQUEST_MIRROR: Shape = { backendRef: BACKEND_OBJECT_REF, percent: ANY, fraction: { numerator: ANY, denominator: ANY } };

const HTTP_FILTER: Shape = {
  type: ANY,
  requestHeaderModifier: HEADER_MODIFIER,
  responseHeaderModifier: HEADER_MODIFIER,
  requestMirror: REQUEST_MIRROR,
  requestRedirect: { scheme: ANY, hostname: ANY, path: PATH_MODIFIER, port: ANY, statusCode: ANY },
  urlRewrite: { hostname: ANY, path: PATH_MODIFIER },
  extensionRef: LOCAL_REF,
};
const GRPC_FILTER: Shape = {
  type: ANY,
  requestHeaderModifier: HEADER_MODIFIER,
  responseHeaderModifier: HEADER_MODIFIER,
  requestMirror: REQUEST_MIRROR,
  extensionRef: LOCAL_REF,
};

const HTTP_ROUTE: Shape = resource({
  spec: {
    parentRefs: [PARENT_REF],
    hostnames: ANY,
    rules: [
      {
        name: ANY,
        matches: [{ path: { type: ANY, value: ANY }, headers: [VALUE_MATCH], queryParams: [VALUE_MATCH], method: ANY }],
        filters: [HTTP_FILTER],
        backendRefs: [{ ...(BACKEND_OBJECT_REF as object), weight: ANY, filters: [HTTP_FILTER] }],
        timeouts: { request: ANY, backendRequest: ANY },
        // GEP-1731 (experimental): HTTPRouteRetry.
        retry: { codes: ANY, attempts: ANY, backoff: ANY },
        sessionPersistence: SESSION_PERSISTENCE,
      },
    ],
  },
});

const GRPC_ROUTE: Shape = resource({
  spec: {
    parentRefs: [PARENT_REF],
    hostnames: ANY,
    rules: [
      {
        name: ANY,
        matches: [{ method: { type: ANY, service: ANY, method: ANY }, headers: [VALUE_MATCH] }],
        filters: [GRPC_FILTER],
        backendRefs: [{ ...(BACKEND_OBJECT_REF as object), weight: ANY, filters: [GRPC_FILTER] }],
        sessionPersistence: SESSION_PERSISTENCE,
      },
    ],
  },
});

const SERVICE: Shape = resource({
  spec: {
    ports: [{ name: ANY, protocol: ANY, appProtocol: ANY, port: ANY, targetPort: ANY, nodePort: ANY }],
    selector: ANY, clusterIP: ANY, clusterIPs: ANY, type: ANY, externalIPs: ANY, sessionAffinity: ANY,
    loadBalancerIP: ANY, loadBalancerSourceRanges: ANY, externalName: ANY, externalTrafficPolicy: ANY,
    healthCheckNodePort: ANY, publishNotReadyAddresses: ANY, sessionAffinityConfig: ANY, ipFamilies: ANY,
    ipFamilyPolicy: ANY, allocateLoadBalancerNodePorts: ANY, loadBalancerClass: ANY,
    internalTrafficPolicy: ANY, trafficDistribution: ANY,
  },
});

const ENDPOINT_SLICE: Shape = resource({
  addressType: ANY,
  endpoints: [
    {
      addresses: ANY, conditions: { ready: ANY, serving: ANY, terminating: ANY }, hostname: ANY,
      targetRef: ANY, nodeName: ANY, zone: ANY, hints: ANY, deprecatedTopology: ANY,
    },
  ],
  ports: [{ name: ANY, protocol: ANY, port: ANY, appProtocol: ANY }],
});

/** The fields each kind declares. Extend here when a kind or field is added. */
export const FIELDS: Record<string, Shape> = {
  Service: SERVICE,
  Namespace: resource({ spec: ANY }),
  ConfigMap: resource({ data: ANY, binaryData: ANY, immutable: ANY }),
  EndpointSlice: ENDPOINT_SLICE,
  HTTPRoute: HTTP_ROUTE,
  GRPCRoute: GRPC_ROUTE,
  ReferenceGrant: resource({
    spec: { from: [{ group: ANY, kind: ANY, namespace: ANY }], to: [{ group: ANY, kind: ANY, name: ANY }] },
  }),
  BackendLBPolicy: resource({ spec: { targetRefs: [LOCAL_REF], sessionPersistence: SESSION_PERSISTENCE } }),
  // v1alpha3 as in v1.1 (subjectAltNames and options arrived in v1.2).
  BackendTLSPolicy: resource({
    spec: {
      targetRefs: [{ group: ANY, kind: ANY, name: ANY, sectionName: ANY }],
      validation: { caCertificateRefs: [LOCAL_REF], wellKnownCACertificates: ANY, hostname: ANY },
    },
  }),
  Workload: resource({
    spec: {
      command: ANY, env: ANY, serviceAccount: ANY, labels: ANY, replicas: ANY, ports: ANY, calls: ANY, strict: ANY,
      // authz (issue 15)
      defaultInboundPolicy: ANY, probePaths: ANY,
    },
  }),
  // GEP-3779 as weft serves it (policy.weft.io/v1alpha1, issue 15).
  AuthorizationPolicy: resource({
    spec: {
      targetRefs: [{ group: ANY, kind: ANY, name: ANY, selector: { matchLabels: ANY, matchExpressions: [{ key: ANY, operator: ANY, values: ANY }] } }],
      action: ANY,
      rules: [{ sources: [{ type: ANY, serviceAccount: { namespace: ANY, name: ANY }, spiffe: ANY }], networkAttributes: { ports: ANY } }],
    },
  }),
  // GEP-3388 (gateway.networking.x-k8s.io/v1alpha1, issue 14).
  XBackendTrafficPolicy: resource({
    spec: {
      targetRefs: [LOCAL_REF],
      retryConstraint: { budget: { percent: ANY, interval: ANY }, minRetryRate: { count: ANY, interval: ANY } },
      sessionPersistence: SESSION_PERSISTENCE,
    },
  }),
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * The paths of the fields in `obj` that `shape` does not declare, in
 * document order, written as the API server writes them
 * (`spec.rules[0].backendRef`). Iterative: a deep value cannot overflow the stack.
 */
export function unknownFields(shape: Shape, obj: unknown): string[] {
  const out: string[] = [];
  const stack: Array<[Shape, unknown, string]> = [[shape, obj, '']];
  while (stack.length > 0) {
    const [s, v, path] = stack.pop()!;
    if (s === ANY) continue;
    if (Array.isArray(s)) {
      if (!Array.isArray(v)) continue;
      const item = (s as readonly [Shape])[0];
      for (let i = v.length - 1; i >= 0; i--) stack.push([item, v[i], `${path}[${i}]`]);
      continue;
    }
    if (!isPlainObject(v)) continue;
    const fields = s as { readonly [f: string]: Shape };
    const children: Array<[Shape, unknown, string]> = [];
    for (const [k, val] of Object.entries(v)) {
      // A key that would not read as a field (empty, or with a dot or bracket) is written as [key].
      const p = k === '' || /[.[\]]/.test(k) ? `${path}[${JSON.stringify(k)}]` : path ? `${path}.${k}` : k;
      const sub = Object.prototype.hasOwnProperty.call(fields, k) ? fields[k] : undefined;
      if (sub === undefined) out.push(p);
      else children.push([sub, val, p]);
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}

/** The strict-field errors of one resource of `kind` (none for a kind without a table entry). */
export function strictFieldErrors(kind: string, obj: unknown): Array<{ field: string; message: string }> {
  const shape = Object.prototype.hasOwnProperty.call(FIELDS, kind) ? FIELDS[kind] : undefined;
  if (!shape) return [];
  return unknownFields(shape, obj).map((field) => ({ field, message: `unknown field ${JSON.stringify(field)}` }));
}

// Strict fields: an unknown field anywhere in a resource is an error naming
// its path as the API server's strict validation does; all of a resource's
// errors come at once; the rest of the file keeps serving.
import t from 'tap';
import type { AnyResource } from '../../api/index.js';
import { parseFile } from '../source-files.js';
import { FIELDS, unknownFields } from '../validate-fields.js';
import { validateResource } from '../validate.js';

const GW = 'gateway.networking.k8s.io/v1';
const svcParent = { group: '', kind: 'Service', name: 'echo', port: 80 };
const http = (spec: Record<string, unknown>) => ({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns' }, spec: { parentRefs: [svcParent], ...spec } });
const names = (rs: AnyResource[]) => rs.map((r) => `${r.kind}/${r.metadata.name}`).sort();
const unknown = (doc: unknown) => validateResource(doc, 'f.yaml').errors.filter((e) => e.message.startsWith('unknown field'));

const cases: Array<{ name: string; doc: unknown; fields: string[] }> = [
  { name: 'the misspelt backendRef of issue 16', doc: http({ rules: [{ backendRef: [{ name: 'echo', port: 80 }] }] }), fields: ['spec.rules[0].backendRef'] },
  { name: 'top level', doc: { ...http({}), sepc: {} }, fields: ['sepc'] },
  { name: 'metadata', doc: { ...http({}), metadata: { name: 'r', labelz: { a: 'b' } } }, fields: ['metadata.labelz'] },
  { name: 'deep in a list', doc: http({ rules: [{}, { matches: [{ path: { type: 'Exact', value: '/a', caseInsensitive: true } }] }] }), fields: ['spec.rules[1].matches[0].path.caseInsensitive'] },
  { name: 'a filter of a backendRef', doc: http({ rules: [{ backendRefs: [{ name: 'e', port: 80, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { sett: [] } }] }] }] }), fields: ['spec.rules[0].backendRefs[0].filters[0].requestHeaderModifier.sett'] },
  { name: 'several at once, in document order', doc: http({ hostname: 'x', rules: [{ backendRef: [], timeout: {} }] }), fields: ['spec.hostname', 'spec.rules[0].backendRef', 'spec.rules[0].timeout'] },
  { name: 'a GRPCRoute filter has no requestRedirect', doc: { apiVersion: GW, kind: 'GRPCRoute', metadata: { name: 'g' }, spec: { rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: {}, requestRedirect: {} }] }] } }, fields: ['spec.rules[0].filters[0].requestRedirect'] },
  { name: 'BackendLBPolicy targetRefs have no sectionName', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'p' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 's', sectionName: 'x' }] } }, fields: ['spec.targetRefs[0].sectionName'] },
  { name: 'Service port', doc: { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80, targetport: 8080 }] } }, fields: ['spec.ports[0].targetport'] },
  { name: 'Workload', doc: { apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'w' }, spec: { command: ['x'], replica: 2 } }, fields: ['spec.replica'] },
  { name: 'EndpointSlice endpoint', doc: { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'e' }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'], ready: true }] }, fields: ['endpoints[0].ready'] },
];

t.test('an unknown field is an error naming its path, worded as the API server words it', async (t) => {
  for (const c of cases) {
    const errs = unknown(c.doc);
    t.same(errs.map((e) => e.field), c.fields, c.name);
    t.same(errs.map((e) => e.message), c.fields.map((f) => `unknown field "${f}"`), `${c.name}: message`);
    t.equal(validateResource(c.doc, 'f.yaml').resource, undefined, `${c.name}: rejected`);
  }
});

t.test('every declared field passes, including GEP-1731 retry and the status of kubectl get -o yaml', async (t) => {
  const full = http({
    hostnames: ['a.example'],
    rules: [
      {
        name: 'main',
        matches: [{ path: { type: 'PathPrefix', value: '/a' }, headers: [{ type: 'Exact', name: 'x', value: 'y' }], queryParams: [{ name: 'q', value: '1' }], method: 'GET' }],
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: 'b' }], add: [{ name: 'c', value: 'd' }], remove: ['e'] } },
          { type: 'RequestMirror', requestMirror: { backendRef: { name: 'm', port: 80 } } },
        ],
        backendRefs: [{ group: '', kind: 'Service', name: 'echo', namespace: 'ns', port: 80, weight: 1, filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'a', value: 'b' }] } }] }],
        timeouts: { request: '10s', backendRequest: '5s' },
        retry: { codes: [500, 503], attempts: 2, backoff: '100ms' },
        sessionPersistence: { sessionName: 's', type: 'Cookie', cookieConfig: { lifetimeType: 'Session' } },
      },
    ],
  });
  const withStatus = { ...full, metadata: { name: 'r', namespace: 'ns', uid: 'u', resourceVersion: '1', generation: 2, managedFields: [{}], annotations: { a: 'b' } }, status: { parents: [] } };
  t.same(validateResource(withStatus, 'f').errors, []);
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { type: 'ClusterIP', clusterIP: '10.0.0.1', clusterIPs: ['10.0.0.1'], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', sessionAffinity: 'None', internalTrafficPolicy: 'Cluster', selector: { app: 's' }, ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }] }, status: { loadBalancer: {} } };
  t.same(validateResource(svc, 'f').errors, []);
  t.same(validateResource({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { 'ca.crt': 'x' }, immutable: true }, 'f').errors, []);
});

t.test('objects read from the API server are not strict: the cluster applied its own schema', async (t) => {
  const r = validateResource(http({ rules: [{ futureField: 1 }] }), 'kubernetes', { strictFields: false });
  t.same(r.errors, []);
});

t.test('the misspelt field is rejected with its path; the rest of the file keeps serving', async (t) => {
  const yaml = `apiVersion: v1
kind: Service
metadata: { name: echo }
spec: { ports: [{ port: 80 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - backendRef: [{ name: echo, port: 80 }]
`;
  const out = parseFile('/cfg/a.yaml', yaml);
  t.same(names(out.resources), ['Service/echo']);
  t.same(out.errors, [{ source: '/cfg/a.yaml', resource: 'HTTPRoute default/web', field: 'spec.rules[0].backendRef', message: 'unknown field "spec.rules[0].backendRef"' }]);
});

t.test('all of a resource\'s errors are reported at once: BackendTLSPolicy reports both at load', async (t) => {
  const tls = (validation: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'gateway.networking.k8s.io/v1alpha3', kind: 'BackendTLSPolicy', metadata: { name: 'p', namespace: 'ns' },
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 's' }], validation, ...extra },
  });
  const two = validateResource(tls({ hostname: 'Bad_Host' }), 'f');
  t.same(two.errors.map((e) => `${e.field}: ${e.message}`), [
    `spec.validation.hostname: Invalid value: "Bad_Host": spec.validation.hostname in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'`,
    'spec.validation: must specify either CACertificateRefs or WellKnownCACertificates',
  ]);
  t.equal(two.failClosed, undefined, 'with a schema error it is not served');
  const both = validateResource(tls({ hostname: 'a.b', wellKnownCACertificates: 'System', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'c' }] }, { subjectAltNames: [] }), 'f');
  t.same(both.errors.map((e) => e.message), ['unknown field "spec.subjectAltNames"', 'must not contain both CACertificateRefs and WellKnownCACertificates']);

  // T1/T2 alone: reported at load, and still served so that compile fails its backend closed.
  const yaml = `apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: { name: p, namespace: ns }
spec:
  targetRefs: [{ group: "", kind: Service, name: s }]
  validation: { hostname: a.b }
`;
  const out = parseFile('/cfg/p.yaml', yaml);
  t.same(out.errors.map((e) => e.message), ['must specify either CACertificateRefs or WellKnownCACertificates']);
  t.same(names(out.resources), ['BackendTLSPolicy/p'], 'served, to fail closed');
});

t.test('the table covers every kind weft reads, and a deep value does not overflow the walk', async (t) => {
  t.same(Object.keys(FIELDS).sort(), ['AuthorizationPolicy', 'BackendLBPolicy', 'BackendTLSPolicy', 'ConfigMap', 'EndpointSlice', 'GRPCRoute', 'HTTPRoute', 'Namespace', 'ReferenceGrant', 'Service', 'Workload', 'XBackendTrafficPolicy']);
  // The kinds and fields other parts add (issues 14 and 15) are declared, so they load once merged.
  const authz = { apiVersion: 'policy.weft.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'a' }, spec: { targetRefs: [{ group: '', kind: 'Pod', selector: { matchLabels: { app: 'x' }, matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] } }], action: 'ALLOW', rules: [{ sources: [{ type: 'ServiceAccount', serviceAccount: { namespace: 'n', name: '*' } }, { type: 'SPIFFE', spiffe: 'spiffe://td/x' }], networkAttributes: { ports: [80] } }] } };
  t.same(unknownFields(FIELDS.AuthorizationPolicy!, authz), []);
  const budget = { apiVersion: 'gateway.networking.x-k8s.io/v1alpha1', kind: 'XBackendTrafficPolicy', metadata: { name: 'b' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 's' }], retryConstraint: { budget: { percent: 20, interval: '10s' }, minRetryRate: { count: 3, interval: '1s' } }, sessionPersistence: { type: 'Header' } } };
  t.same(unknownFields(FIELDS.XBackendTrafficPolicy!, budget), []);
  t.same(unknownFields(FIELDS.Workload!, { spec: { command: ['x'], defaultInboundPolicy: 'deny', probePaths: ['/healthz'] } }), []);
  let deep: unknown = {};
  for (let i = 0; i < 100_000; i++) deep = { spec: deep };
  t.equal(unknownFields(FIELDS.HTTPRoute!, { spec: { rules: [deep] } }).length, 1);
});

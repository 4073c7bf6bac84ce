// validateResource: CRD defaults, OpenAPI constraints and the v1.1.0 CEL rules
// with the CRDs' own messages (rule ids refer to
// shared/research/gateway-api-v1.1-mesh.md §6).
import t from 'tap';
import type { BackendTLSPolicy, HTTPRoute, GRPCRoute, Service, Workload } from '../../api/index.js';
import { validateResource } from '../validate.js';

const GW = 'gateway.networking.k8s.io/v1';
const svcParent = { group: '', kind: 'Service', name: 'echo' };

function http(spec: Record<string, unknown>, name = 'r'): unknown {
  return { apiVersion: GW, kind: 'HTTPRoute', metadata: { name, namespace: 'ns' }, spec: { parentRefs: [svcParent], ...spec } };
}
function grpc(spec: Record<string, unknown>): unknown {
  return { apiVersion: GW, kind: 'GRPCRoute', metadata: { name: 'g', namespace: 'ns' }, spec: { parentRefs: [svcParent], ...spec } };
}
const rule = (r: Record<string, unknown>) => http({ rules: [r] });
const be = { name: 'echo', port: 80 };

t.test('valid resources pass and come back with the CRD defaults applied', async (t) => {
  const r = validateResource({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { parentRefs: [{ kind: 'Service', group: '', name: 'echo' }], rules: [{ backendRefs: [{ name: 'echo', port: 80 }] }] } }, 'f.yaml');
  t.same(r.errors, []);
  const route = r.resource as HTTPRoute;
  t.equal(route.metadata.namespace, 'default', 'namespace defaults to "default"');
  t.same(route.spec.rules![0]!.matches, [{ path: { type: 'PathPrefix', value: '/' } }], 'matches default');
  t.same(route.spec.rules![0]!.backendRefs![0], { name: 'echo', port: 80, group: '', kind: 'Service', weight: 1 });

  const noRules = validateResource({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'r' }, spec: {} }, 'f');
  t.same((noRules.resource as HTTPRoute).spec.rules, [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }], 'rules default');
  t.same((noRules.resource as HTTPRoute).spec.parentRefs, undefined);

  const pr = validateResource(http({}), 'f');
  t.same((pr.resource as HTTPRoute).spec.parentRefs, [{ group: '', kind: 'Service', name: 'echo' }]);
  const gwParent = validateResource({ apiVersion: GW, kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { parentRefs: [{ name: 'gw' }] } }, 'f');
  t.same((gwParent.resource as HTTPRoute).spec.parentRefs, [{ name: 'gw', group: 'gateway.networking.k8s.io', kind: 'Gateway' }], 'parentRef defaults');

  const redirect = validateResource(rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }), 'f');
  t.equal((redirect.resource as HTTPRoute).spec.rules![0]!.filters![0]!.requestRedirect!.statusCode, 302, 'redirect statusCode defaults to 302');

  const g = validateResource(grpc({ rules: [{ matches: [{ method: { service: 'a.B', method: 'C' } }] }] }), 'f');
  t.same(g.errors, []);
  t.equal((g.resource as GRPCRoute).spec.rules![0]!.matches![0]!.method!.type, 'Exact');

  const sp = validateResource(rule({ sessionPersistence: { sessionName: 's' } }), 'f');
  t.equal((sp.resource as HTTPRoute).spec.rules![0]!.sessionPersistence!.type, 'Cookie');

  const svc = validateResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'a' }, spec: { ports: [{ port: 80, targetPort: '8080' }] } }, 'f');
  t.same(svc.errors, []);
  t.equal((svc.resource as Service).spec.ports![0]!.targetPort, 8080, 'numeric string targetPort becomes a number');
  t.equal((svc.resource as Service).spec.ports![0]!.protocol, 'TCP');

  const w = validateResource({ apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'w' }, spec: { command: ['node', 'x.js'], env: { PORT: 8080 } } }, 'f');
  t.same(w.errors, []);
  const wl = w.resource as Workload;
  t.equal(wl.spec.serviceAccount, 'default');
  t.equal(wl.spec.replicas, 1);
  t.equal(wl.spec.env!.PORT, '8080', 'numeric env values become strings');

  t.same(validateResource({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: {} }, 'f').errors, [], 'HTTPRoute v1beta1 is served');
  t.same(validateResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, 'f').errors, []);
  const emptySlice = validateResource({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's-1', namespace: 'a' }, addressType: 'IPv4', endpoints: null, ports: null }, 'kubernetes');
  t.same(emptySlice.errors, [], 'an empty EndpointSlice as the API serves it');
  t.same((emptySlice.resource as { endpoints: unknown[] }).endpoints, []);
  t.equal((validateResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } }, 'f').resource!.metadata.namespace), undefined, 'Namespace is cluster-scoped');
  const btls = validateResource({ apiVersion: 'gateway.networking.k8s.io/v1alpha3', kind: 'BackendTLSPolicy', metadata: { name: 'p', namespace: 'a' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'db' }], validation: { hostname: 'db.example.com', wellKnownCACertificates: 'System' } } }, 'f');
  t.same(btls.errors, []);
  t.equal((btls.resource as BackendTLSPolicy).spec.validation.hostname, 'db.example.com');
});

interface Case {
  name: string;
  doc: unknown;
  field: string;
  message: string;
}

const cases: Case[] = [
  // envelope
  { name: 'not a mapping', doc: [1], field: '', message: 'a Kubernetes object must be a mapping, got a list' },
  { name: 'wrong apiVersion', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: {} }, field: 'apiVersion', message: 'Unsupported value: "gateway.networking.k8s.io/v1alpha2": supported values for HTTPRoute: "gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"' },
  { name: 'Service name is a DNS-1035 label', doc: { apiVersion: 'v1', kind: 'Service', metadata: { name: '1echo' }, spec: {} }, field: 'metadata.name', message: `Invalid value: "1echo": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')` },
  { name: 'missing name', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} }, field: 'metadata.name', message: 'Required value' },
  { name: 'Service multi-port needs names', doc: { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ name: 'a', port: 80 }, { port: 81 }] } }, field: 'spec.ports[1].name', message: 'Required value' },
  { name: 'Service ports unique by port and protocol', doc: { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] } }, field: 'spec.ports[1]', message: 'Duplicate value: {"port":80,"protocol":"TCP"}' },
  { name: 'Service port range', doc: { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 70000 }] } }, field: 'spec.ports[0].port', message: 'Invalid value: 70000: spec.ports[0].port in body should be less than or equal to 65535' },
  // parentRefs H1/H2
  { name: 'H1 sectionName or port must be specified', doc: http({ parentRefs: [svcParent, { ...svcParent, port: 80 }] }), field: 'spec.parentRefs', message: 'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent' },
  { name: 'H2 sectionName or port must be unique', doc: http({ parentRefs: [{ ...svcParent, port: 80 }, { ...svcParent, port: 80 }] }), field: 'spec.parentRefs', message: 'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent' },
  { name: 'parentRef port range', doc: http({ parentRefs: [{ ...svcParent, port: 0 }] }), field: 'spec.parentRefs[0].port', message: 'Invalid value: 0: spec.parentRefs[0].port in body should be greater than or equal to 1' },
  { name: 'too many parentRefs', doc: http({ parentRefs: Array.from({ length: 33 }, (_, i) => ({ ...svcParent, port: i + 1 })) }), field: 'spec.parentRefs', message: 'Too many: 33: must have at most 32 items' },
  { name: 'hostname pattern', doc: http({ hostnames: ['Foo.com'] }), field: 'spec.hostnames[0]', message: `Invalid value: "Foo.com": spec.hostnames[0] in body should match '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'` },
  // rules
  { name: 'too many rules', doc: http({ rules: Array.from({ length: 17 }, () => ({})) }), field: 'spec.rules', message: 'Too many: 17: must have at most 16 items' },
  { name: 'H3 redirect with backendRefs', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestRedirect', requestRedirect: {} }] }), field: 'spec.rules[0]', message: 'RequestRedirect filter must not be used together with backendRefs' },
  { name: 'H4 redirect replacePrefixMatch needs one PathPrefix', doc: rule({ matches: [{ path: { type: 'Exact', value: '/a' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] }), field: 'spec.rules[0]', message: 'When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified' },
  { name: 'H5 rewrite replacePrefixMatch needs one PathPrefix', doc: rule({ matches: [{ path: { value: '/a' } }, { path: { value: '/b' } }], backendRefs: [be], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] }), field: 'spec.rules[0]', message: 'When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified' },
  { name: 'H6 backend redirect replacePrefixMatch', doc: rule({ matches: [{ path: { type: 'Exact', value: '/a' } }], backendRefs: [{ ...be, filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] }] }), field: 'spec.rules[0]', message: 'Within backendRefs, when using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified' },
  { name: 'H7 backend rewrite replacePrefixMatch', doc: rule({ matches: [{ path: { type: 'RegularExpression', value: '/a.*' } }], backendRefs: [{ ...be, filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] }] }), field: 'spec.rules[0]', message: 'Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified' },
  { name: 'H8 backendRef needs port', doc: rule({ backendRefs: [{ name: 'echo' }] }), field: 'spec.rules[0].backendRefs[0]', message: 'Must have port for Service reference' },
  { name: 'H8 mirror backendRef needs port', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'm' } } }] }), field: 'spec.rules[0].filters[0].requestMirror.backendRef', message: 'Must have port for Service reference' },
  { name: 'H9 redirect and rewrite', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: {} }, { type: 'URLRewrite', urlRewrite: {} }] }), field: 'spec.rules[0].filters', message: 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both' },
  { name: 'H10 RequestHeaderModifier repeated', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: {} }, { type: 'RequestHeaderModifier', requestHeaderModifier: {} }] }), field: 'spec.rules[0].filters', message: 'RequestHeaderModifier filter cannot be repeated' },
  { name: 'H11 ResponseHeaderModifier repeated in a backendRef', doc: rule({ backendRefs: [{ ...be, filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: {} }, { type: 'ResponseHeaderModifier', responseHeaderModifier: {} }] }] }), field: 'spec.rules[0].backendRefs[0].filters', message: 'ResponseHeaderModifier filter cannot be repeated' },
  { name: 'H12 RequestRedirect repeated', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: {} }, { type: 'RequestRedirect', requestRedirect: {} }] }), field: 'spec.rules[0].filters', message: 'RequestRedirect filter cannot be repeated' },
  { name: 'H13 URLRewrite repeated', doc: rule({ backendRefs: [be], filters: [{ type: 'URLRewrite', urlRewrite: {} }, { type: 'URLRewrite', urlRewrite: {} }] }), field: 'spec.rules[0].filters', message: 'URLRewrite filter cannot be repeated' },
  { name: 'H14 requestHeaderModifier must be nil', doc: rule({ backendRefs: [be], filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: {}, requestHeaderModifier: {} }] }), field: 'spec.rules[0].filters[0]', message: 'filter.requestHeaderModifier must be nil if the filter.type is not RequestHeaderModifier' },
  { name: 'H15 requestHeaderModifier must be specified', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestHeaderModifier' }] }), field: 'spec.rules[0].filters[0]', message: 'filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type' },
  { name: 'H19 requestMirror must be specified', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestMirror' }] }), field: 'spec.rules[0].filters[0]', message: 'filter.requestMirror must be specified for RequestMirror filter.type' },
  { name: 'H21 requestRedirect must be specified', doc: rule({ filters: [{ type: 'RequestRedirect' }] }), field: 'spec.rules[0].filters[0]', message: 'filter.requestRedirect must be specified for RequestRedirect filter.type' },
  { name: 'H22 urlRewrite must be nil', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: {}, urlRewrite: {} }] }), field: 'spec.rules[0].filters[0]', message: 'filter.urlRewrite must be nil if the filter.type is not URLRewrite' },
  { name: 'H25 extensionRef must be specified', doc: rule({ backendRefs: [be], filters: [{ type: 'ExtensionRef' }] }), field: 'spec.rules[0].filters[0]', message: 'filter.extensionRef must be specified for ExtensionRef filter.type' },
  { name: 'H26 replaceFullPath must be specified', doc: rule({ backendRefs: [be], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath' } } }] }), field: 'spec.rules[0].filters[0].urlRewrite.path', message: "replaceFullPath must be specified when type is set to 'ReplaceFullPath'" },
  { name: 'H27 type must be ReplaceFullPath', doc: rule({ backendRefs: [be], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/', replaceFullPath: '/x' } } }] }), field: 'spec.rules[0].filters[0].urlRewrite.path', message: "type must be 'ReplaceFullPath' when replaceFullPath is set" },
  { name: 'H28 replacePrefixMatch must be specified', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch' } } }] }), field: 'spec.rules[0].filters[0].requestRedirect.path', message: "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'" },
  { name: 'H29 type must be ReplacePrefixMatch', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/a', replacePrefixMatch: '/b' } } }] }), field: 'spec.rules[0].filters[0].requestRedirect.path', message: "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set" },
  { name: 'H30 absolute path', doc: rule({ matches: [{ path: { type: 'Exact', value: 'a' } }] }), field: 'spec.rules[0].matches[0].path', message: "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H31 no //', doc: rule({ matches: [{ path: { value: '/a//b' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '//' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H32 no /./', doc: rule({ matches: [{ path: { value: '/a/./b' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '/./' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H33 no /../', doc: rule({ matches: [{ path: { value: '/a/../b' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '/../' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H34 no %2f', doc: rule({ matches: [{ path: { value: '/a%2fb' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '%2f' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H35 no %2F', doc: rule({ matches: [{ path: { value: '/a%2Fb' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '%2F' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H36 no #', doc: rule({ matches: [{ path: { value: '/a#b' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not contain '#' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H37 no trailing /..', doc: rule({ matches: [{ path: { value: '/a/..' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not end with '/..' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H38 no trailing /.', doc: rule({ matches: [{ path: { value: '/a/.' } }] }), field: 'spec.rules[0].matches[0].path', message: "must not end with '/.' when type one of ['Exact', 'PathPrefix']" },
  { name: 'H39 path type', doc: rule({ matches: [{ path: { type: 'Prefix', value: '/a' } }] }), field: 'spec.rules[0].matches[0].path', message: "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']" },
  { name: 'path type enum', doc: rule({ matches: [{ path: { type: 'Prefix', value: '/a' } }] }), field: 'spec.rules[0].matches[0].path.type', message: 'Unsupported value: "Prefix": supported values: "Exact", "PathPrefix", "RegularExpression"' },
  { name: 'H40 path characters', doc: rule({ matches: [{ path: { value: '/a b' } }] }), field: 'spec.rules[0].matches[0].path', message: "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']" },
  { name: 'H41 Permanent needs absoluteTimeout', doc: rule({ backendRefs: [be], sessionPersistence: { cookieConfig: { lifetimeType: 'Permanent' } } }), field: 'spec.rules[0].sessionPersistence', message: 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent' },
  { name: 'H42 backendRequest longer than request', doc: rule({ backendRefs: [be], timeouts: { request: '1s', backendRequest: '2s' } }), field: 'spec.rules[0].timeouts', message: 'backendRequest timeout cannot be longer than request timeout' },
  { name: 'duration format', doc: rule({ backendRefs: [be], timeouts: { request: '1.5s' } }), field: 'spec.rules[0].timeouts.request', message: "Invalid value: \"1.5s\": spec.rules[0].timeouts.request in body should match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'" },
  { name: 'header name pattern', doc: rule({ matches: [{ headers: [{ name: ':method', value: 'GET' }] }] }), field: 'spec.rules[0].matches[0].headers[0].name', message: "Invalid value: \":method\": spec.rules[0].matches[0].headers[0].name in body should match '^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$'" },
  { name: 'header names unique (list-map)', doc: rule({ matches: [{ headers: [{ name: 'a', value: '1' }, { name: 'a', value: '2' }] }] }), field: 'spec.rules[0].matches[0].headers[1]', message: 'Duplicate value: {"name":"a"}' },
  { name: 'method enum', doc: rule({ matches: [{ method: 'get' }] }), field: 'spec.rules[0].matches[0].method', message: 'Unsupported value: "get": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"' },
  { name: 'weight range', doc: rule({ backendRefs: [{ ...be, weight: 1000001 }] }), field: 'spec.rules[0].backendRefs[0].weight', message: 'Invalid value: 1000001: spec.rules[0].backendRefs[0].weight in body should be less than or equal to 1000000' },
  { name: 'redirect status code', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 304 } }] }), field: 'spec.rules[0].filters[0].requestRedirect.statusCode', message: 'Unsupported value: 304: supported values: "301", "302", "303", "307", "308"' },
  { name: 'redirect scheme', doc: rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'ftp' } }] }), field: 'spec.rules[0].filters[0].requestRedirect.scheme', message: 'Unsupported value: "ftp": supported values: "http", "https"' },
  { name: 'filter type enum', doc: rule({ filters: [{ type: 'Retry' }] }), field: 'spec.rules[0].filters[0].type', message: 'Unsupported value: "Retry": supported values: "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "RequestRedirect", "URLRewrite", "ExtensionRef"' },
  { name: 'header modifier set names unique', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: '1' }, { name: 'a', value: '2' }] } }] }), field: 'spec.rules[0].filters[0].requestHeaderModifier.set[1]', message: 'Duplicate value: {"name":"a"}' },
  { name: 'header modifier remove is a set', doc: rule({ backendRefs: [be], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['a', 'a'] } }] }), field: 'spec.rules[0].filters[0].requestHeaderModifier.remove[1]', message: 'Duplicate value: "a"' },
  // GRPCRoute
  { name: 'G14 service or method', doc: grpc({ rules: [{ matches: [{ method: { type: 'Exact' } }] }] }), field: 'spec.rules[0].matches[0].method', message: "One or both of 'service' or 'method' must be specified" },
  { name: 'G15 service characters', doc: grpc({ rules: [{ matches: [{ method: { service: 'a/b' } }] }] }), field: 'spec.rules[0].matches[0].method', message: 'service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)' },
  { name: 'G16 method characters', doc: grpc({ rules: [{ matches: [{ method: { service: 'a', method: 'b.c' } }] }] }), field: 'spec.rules[0].matches[0].method', message: 'method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)' },
  { name: 'G1 sectionName or port must be specified', doc: grpc({ parentRefs: [svcParent, { ...svcParent, sectionName: 'grpc' }] }), field: 'spec.parentRefs', message: 'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent' },
  { name: 'G2 sectionName or port must be unique', doc: grpc({ parentRefs: [{ ...svcParent, sectionName: 'grpc' }, { ...svcParent, sectionName: 'grpc' }] }), field: 'spec.parentRefs', message: 'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent' },
  { name: 'G17 Permanent needs absoluteTimeout', doc: grpc({ rules: [{ sessionPersistence: { cookieConfig: { lifetimeType: 'Permanent' } } }] }), field: 'spec.rules[0].sessionPersistence', message: 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent' },
  { name: 'GRPCRoute has no timeouts', doc: grpc({ rules: [{ timeouts: { request: '1s' } }] }), field: 'spec.rules[0].timeouts', message: 'unknown field "spec.rules[0].timeouts"' },
  { name: 'G3 backendRef port', doc: grpc({ rules: [{ backendRefs: [{ name: 'echo' }] }] }), field: 'spec.rules[0].backendRefs[0]', message: 'Must have port for Service reference' },
  { name: 'GRPCRoute filter enum excludes redirects', doc: grpc({ rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: {} }] }] }), field: 'spec.rules[0].filters[0].type', message: 'Unsupported value: "RequestRedirect": supported values: "ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror", "ExtensionRef"' },
  { name: 'G4 RequestHeaderModifier repeated', doc: grpc({ rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: {} }, { type: 'RequestHeaderModifier', requestHeaderModifier: {} }] }] }), field: 'spec.rules[0].filters', message: 'RequestHeaderModifier filter cannot be repeated' },
  // policies
  { name: 'L1 Permanent needs absoluteTimeout', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'p' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 's' }], sessionPersistence: { cookieConfig: { lifetimeType: 'Permanent' } } } }, field: 'spec.sessionPersistence', message: 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent' },
  { name: 'BackendLBPolicy targetRefs required', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'p' }, spec: {} }, field: 'spec.targetRefs', message: 'Required value' },
  { name: 'BackendTLSPolicy hostname required', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha3', kind: 'BackendTLSPolicy', metadata: { name: 'p' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 's' }], validation: { wellKnownCACertificates: 'System' } } }, field: 'spec.validation.hostname', message: 'Required value' },
  { name: 'BackendTLSPolicy wellKnown enum', doc: { apiVersion: 'gateway.networking.k8s.io/v1alpha3', kind: 'BackendTLSPolicy', metadata: { name: 'p' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 's' }], validation: { hostname: 'a.b', wellKnownCACertificates: 'Mozilla' } } }, field: 'spec.validation.wellKnownCACertificates', message: 'Unsupported value: "Mozilla": supported values: "System"' },
  { name: 'Workload command required', doc: { apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'w' }, spec: {} }, field: 'spec.command', message: 'Required value' },
];

t.test('each invalid field gets the CRD / API server message, naming resource and field', async (t) => {
  for (const c of cases) {
    const r = validateResource(c.doc, 'dir/x.yaml');
    t.equal(r.resource, undefined, `${c.name}: rejected`);
    const hit = r.errors.find((e) => e.field === c.field && e.message === c.message);
    t.ok(hit, `${c.name}: ${c.field}: ${c.message}`) || t.comment(JSON.stringify(r.errors, null, 1));
    if (hit) t.equal(hit.source, 'dir/x.yaml');
  }
});

t.test('errors name the resource', async (t) => {
  const r = validateResource(rule({ backendRefs: [{ name: 'echo' }] }), 'f.yaml');
  t.equal(r.errors[0]!.resource, 'HTTPRoute ns/r');
  const s = validateResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 'x' }] } }, 'f.yaml');
  t.equal(s.errors[0]!.resource, 'Service default/s');
  t.equal(s.errors[0]!.message, 'Invalid value: "string": spec.ports[0].port in body must be of type integer: "string"');
});

t.test('rules that are valid in spirit pass', async (t) => {
  const ok = [
    rule({ backendRefs: [be], sessionPersistence: { type: 'Header' } }), // v1.1.1 form of H41
    rule({ backendRefs: [be], timeouts: { request: '0s', backendRequest: '10s' } }), // request 0s disables H42
    rule({ backendRefs: [be], timeouts: { request: '1h30m', backendRequest: '500ms' } }),
    rule({ matches: [{ path: { value: '/a' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }], backendRefs: [be] }),
    rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] }), // default match is one PathPrefix
    rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 308, port: 8443, scheme: 'https' } }] }),
    rule({ backendRefs: [be], filters: [{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'm', port: 80 } } }, { type: 'RequestMirror', requestMirror: { backendRef: { name: 'n', port: 80 } } }] }),
    http({ parentRefs: [{ ...svcParent, port: 80 }, { ...svcParent, port: 8080 }] }),
    http({ parentRefs: [{ ...svcParent, sectionName: 'http' }, { ...svcParent, sectionName: 'grpc' }] }),
    http({ parentRefs: [svcParent, { ...svcParent, namespace: 'other' }] }),
    grpc({ rules: [{ matches: [{ method: { type: 'RegularExpression', service: 'a.*' } }] }] }),
    grpc({ rules: [{ matches: [{ method: { service: '.grpc.Health' } }] }] }),
  ];
  ok.forEach((d, i) => t.same(validateResource(d, 'f').errors, [], `case ${i}`));
});

// compile + view: directory, endpoints, attachment, producer/consumer routes,
// route-type conflicts, filters, backends and weights, timeouts, status.
import t from 'tap';
import type { EndpointSlice, RouteStatus } from '../../api/index.js';
import { compile } from '../compile.js';
import { backend, grpcRoute, httpRoute, parent, pod, snapshot, svc, v } from './helpers/compile-fixtures.js';

const NS = 'mesh';
const echo = svc(NS, 'echo', [
  { name: 'http', port: 80, targetPort: 8080 },
  { name: 'http-alt', port: 8080, targetPort: 8080 },
  { name: 'grpc', port: 7070, appProtocol: 'grpc' },
]);
const v1 = svc(NS, 'echo-v1', [{ name: 'http', port: 80, targetPort: 8080 }]);
const v2 = svc(NS, 'echo-v2', [{ name: 'http', port: 80, targetPort: 8080 }]);
const pods = [
  pod(NS, 'echo', '127.0.1.1', { labels: { app: 'echo' } }),
  pod(NS, 'echo-v1', '127.0.2.1'),
  pod(NS, 'echo-v2', '127.0.3.1'),
];

function routeStatus(statuses: ReturnType<typeof compile>['statuses'], kind: string, ns: string, name: string): RouteStatus {
  const s = statuses.find((x) => x.kind === kind && x.namespace === ns && x.name === name);
  if (!s) throw new Error(`no status for ${kind} ${ns}/${name}`);
  return s.status as RouteStatus;
}
function cond(st: RouteStatus, type: string, parentIndex = 0) {
  return st.parents[parentIndex]?.conditions.find((c) => c.type === type);
}

t.test('directory: every Service with normalized appProtocol, clusterIP and meshed', async (t) => {
  const ext = svc(NS, 'db', [{ port: 5432, appProtocol: 'tcp' }], { selector: undefined, clusterIP: 'None' });
  const h2 = svc('other', 'h2', [{ name: 'web', port: 80, appProtocol: 'kubernetes.io/h2c' }], { clusterIP: '10.0.0.9' });
  const c = compile(snapshot([echo, ext, h2], pods));
  t.same(c.directory.map((d) => `${d.namespace}/${d.name}`), ['mesh/db', 'mesh/echo', 'other/h2'], 'sorted by namespace/name');
  const e = c.directory.find((d) => d.name === 'echo')!;
  t.same(e.ports, [
    { name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' },
    { name: 'http-alt', port: 8080, targetPort: 8080, appProtocol: 'http' },
    { name: 'grpc', port: 7070, targetPort: 7070, appProtocol: 'grpc' },
  ]);
  t.equal(e.meshed, true);
  t.equal(e.clusterIP, '', 'local mode: no clusterIP');
  const db = c.directory.find((d) => d.name === 'db')!;
  t.equal(db.clusterIP, '', 'headless → no clusterIP');
  t.equal(db.meshed, false);
  t.equal(db.ports[0]!.appProtocol, 'tcp');
  const h = c.directory.find((d) => d.name === 'h2')!;
  t.equal(h.clusterIP, '10.0.0.9');
  t.equal(h.ports[0]!.appProtocol, 'http2', 'kubernetes.io/h2c → http2');
});

t.test('endpoints: selector over registered workloads, named targetPort, identity', async (t) => {
  const named = svc(NS, 'named', [{ name: 'web', port: 9000, targetPort: 'web' }], { selector: { app: 'echo-v1' } });
  const c = compile(snapshot([echo, named], [...pods, pod('elsewhere', 'echo', '127.0.9.1'), pod(NS, 'echo', '127.0.1.2', { meshed: false, labels: { app: 'echo' } })]));
  const view = c.view('mesh/echo', 'mesh')!;
  t.same(view.backends['mesh/echo:80']!.endpoints, [
    { ip: '127.0.1.1', port: 8080, ready: true, pod: 'echo-0', workload: 'echo', identity: { namespace: NS, serviceAccount: 'echo' } },
    { ip: '127.0.1.2', port: 8080, ready: true, pod: 'echo-0', workload: 'echo' },
  ], 'same namespace only; identity only for meshed workloads');
  t.same(view.backends['mesh/echo:7070']!.endpoints.map((e) => e.port), [7070, 7070], 'no targetPort → the port itself');
  const nv = c.view('mesh/named', 'mesh')!;
  t.same(nv.backends['mesh/named:9000']!.endpoints.map((e) => e.port), [8080], "named targetPort → the workload's only app port");
  t.equal(c.view('mesh/absent', 'mesh'), undefined);
});

t.test('endpoints: EndpointSlices for a selector-less Service, conditions and identity', async (t) => {
  const ext = svc(NS, 'ext', [{ name: 'https', port: 443, targetPort: 8443 }], { selector: undefined });
  const slice = v<EndpointSlice>({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'ext-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'ext' } },
    addressType: 'IPv4',
    ports: [{ name: 'https', port: 8443 }],
    endpoints: [
      { addresses: ['10.1.0.1'] },
      { addresses: ['10.1.0.2'], conditions: { ready: false, serving: true, terminating: true } },
      { addresses: ['10.1.0.3'], conditions: { ready: false, serving: false } },
      { addresses: ['127.0.2.1'], conditions: { ready: true } },
    ],
  });
  const c = compile(snapshot([ext, slice], pods));
  t.same(c.view('mesh/ext', 'x')!.backends['mesh/ext:443']!.endpoints, [
    { ip: '10.1.0.1', port: 8443, ready: true },
    { ip: '10.1.0.2', port: 8443, ready: false },
    { ip: '127.0.2.1', port: 8443, ready: true, identity: { namespace: NS, serviceAccount: 'echo-v1' }, pod: 'echo-v1-0', workload: 'echo-v1' },
  ], 'not-ready-not-serving dropped; terminating-but-serving kept as not ready; a registered address gets its identity');
});

t.test('no route: every port goes to the Service itself', async (t) => {
  const c = compile(snapshot([echo], pods));
  const view = c.view('mesh/echo', 'other')!;
  t.same(view.ports.map((p) => [p.port, p.routeKind, p.defaultBackend, p.rules.length]), [
    [80, 'none', 'mesh/echo:80', 0],
    [8080, 'none', 'mesh/echo:8080', 0],
    [7070, 'none', 'mesh/echo:7070', 0],
  ]);
  t.equal(view.consumerNamespace, 'other');
  t.equal(view.service, 'mesh/echo');
  t.match(view.sessionSecret, /^[A-Za-z0-9+/]{43}=$/);
  t.equal(view.sessionSecret, compile(snapshot([echo], pods)).view('mesh/echo', 'x')!.sessionSecret, 'the session secret depends only on key and service');
  t.not(view.sessionSecret, c.view('mesh/echo-v1', 'x')?.sessionSecret);
});

t.test('attachment: port, sectionName, all ports, group core, several parents', async (t) => {
  const routes = [
    httpRoute(NS, 'by-port', { parentRefs: [parent('echo', { port: 8080 })], rules: [{ backendRefs: [backend('echo-v2')] }] }),
    httpRoute(NS, 'by-section', { parentRefs: [parent('echo', { sectionName: 'http' })], rules: [{ matches: [{ path: { value: '/s' } }], backendRefs: [backend('echo-v1')] }] }),
    httpRoute(NS, 'core-group', { parentRefs: [{ group: 'core', kind: 'Service', name: 'echo-v1' }, parent('echo-v2')], rules: [{ backendRefs: [backend('echo-v1')] }] }),
    httpRoute(NS, 'no-port', { parentRefs: [parent('echo', { port: 81 })], rules: [{ backendRefs: [backend('echo-v1')] }] }),
    httpRoute(NS, 'port-and-section-disagree', { parentRefs: [parent('echo', { port: 80, sectionName: 'http-alt' })], rules: [{ backendRefs: [backend('echo-v1')] }] }),
    httpRoute(NS, 'missing', { parentRefs: [parent('nope')], rules: [{ backendRefs: [backend('echo-v1')] }] }),
    httpRoute(NS, 'gateway-parent', { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [backend('echo-v1')] }] }),
  ];
  const c = compile(snapshot([echo, v1, v2, ...routes], pods));
  const view = c.view('mesh/echo', NS)!;
  const p80 = view.ports.find((p) => p.port === 80)!;
  const p8080 = view.ports.find((p) => p.port === 8080)!;
  const p7070 = view.ports.find((p) => p.port === 7070)!;
  t.same(p80.rules.map((r) => r.route.name), ['by-section']);
  t.same(p8080.rules.map((r) => r.route.name), ['by-port']);
  t.equal(p7070.routeKind, 'none');
  t.same(c.view('mesh/echo-v1', NS)!.ports[0]!.rules.map((r) => r.route.name), ['core-group'], 'group "core" accepted as an alias of ""');
  t.same(c.view('mesh/echo-v2', NS)!.ports[0]!.rules.map((r) => r.route.name), ['core-group']);

  const ok = routeStatus(c.statuses, 'HTTPRoute', NS, 'core-group');
  t.equal(ok.parents.length, 2);
  t.same(ok.parents.map((p) => p.controllerName), ['weft.io/mesh-controller', 'weft.io/mesh-controller']);
  t.match(cond(ok, 'Accepted'), { status: 'True', reason: 'Accepted', observedGeneration: 3 });
  t.match(cond(ok, 'ResolvedRefs'), { status: 'True', reason: 'ResolvedRefs' });
  t.same(ok.parents[0]!.parentRef, { group: 'core', kind: 'Service', name: 'echo-v1' }, 'parentRef echoed as written');
  for (const name of ['no-port', 'port-and-section-disagree', 'missing']) {
    t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, name), 'Accepted'), { status: 'False', reason: 'NoMatchingParent' }, name);
  }
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'no-port'), 'Accepted')!.message, /has no port 81/);
  t.same(routeStatus(c.statuses, 'HTTPRoute', NS, 'gateway-parent').parents, [], 'Gateway parents are not ours to report');
  t.ok(c.errors.some((e) => e.resource === 'HTTPRoute mesh/missing' && e.field === 'spec.parentRefs[0]' && /NoMatchingParent/.test(e.message)));
});

t.test('producer and consumer routes (GEP-1426)', async (t) => {
  const producer = httpRoute(NS, 'producer', { parentRefs: [parent('echo', { port: 80 })], rules: [{ backendRefs: [backend('echo-v1')] }] });
  const consumer = httpRoute('consumer', 'consumer', { parentRefs: [parent('echo', { namespace: NS, port: 80 })], rules: [{ backendRefs: [backend('echo-v2', 80, { namespace: NS })] }] });
  const c = compile(snapshot([echo, v1, v2, producer, consumer], pods));
  const backendsOf = (ns: string, port = 80) => c.view('mesh/echo', ns)!.ports.find((p) => p.port === port)!.rules.flatMap((r) => r.backends.map((b) => b.backend));
  t.same(backendsOf(NS), ['mesh/echo-v1:80'], 'the producer namespace uses producer routes');
  t.same(backendsOf('third'), ['mesh/echo-v1:80'], 'namespaces without consumer routes use producer routes');
  t.same(backendsOf('consumer'), ['mesh/echo-v2:80'], 'the consumer namespace uses only its own routes (cross-namespace backendRef, no ReferenceGrant)');
  t.equal(c.view('mesh/echo', 'consumer')!.ports.find((p) => p.port === 8080)!.routeKind, 'none', 'consumer routes replace producer routes per port');
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', 'consumer', 'consumer'), 'Accepted')!.message, /consumer route: applies to callers in namespace consumer/);
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', 'consumer', 'consumer'), 'ResolvedRefs'), { status: 'True' });
});

t.test('GRPCRoute wins a Service port over HTTPRoute; the HTTPRoute is Conflicted there', async (t) => {
  const h = httpRoute(NS, 'h', { parentRefs: [parent('echo')], rules: [{ backendRefs: [backend('echo-v1')] }] });
  const h7070 = httpRoute(NS, 'h7070', { parentRefs: [parent('echo', { port: 7070 })], rules: [{ backendRefs: [backend('echo-v1')] }] });
  const g = grpcRoute(NS, 'g', { parentRefs: [parent('echo', { port: 7070 })], rules: [{ backendRefs: [backend('echo-v2')] }] });
  const c = compile(snapshot([echo, v1, v2, h, h7070, g], pods));
  const view = c.view('mesh/echo', NS)!;
  t.same(view.ports.map((p) => [p.port, p.routeKind]), [[80, 'HTTPRoute'], [8080, 'HTTPRoute'], [7070, 'GRPCRoute']]);
  t.same(view.ports[2]!.rules.map((r) => r.route.name), ['g']);
  const hs = cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'h'), 'Accepted')!;
  t.match(hs, { status: 'True', reason: 'Accepted' }, 'accepted where it still governs');
  t.match(hs.message, /not port\(s\) 7070/);
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'h7070'), 'Accepted'), { status: 'False', reason: 'Conflicted' });
  t.match(cond(routeStatus(c.statuses, 'GRPCRoute', NS, 'g'), 'Accepted'), { status: 'True' });
});

t.test('filters compile with defaults; ExtensionRef answers 500 and says so', async (t) => {
  const r = httpRoute(NS, 'f', {
    parentRefs: [parent('echo', { port: 8080 })],
    rules: [
      {
        matches: [{ path: { value: '/hdr' } }],
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: '1' }, { name: 'x-set', value: '2' }], add: [{ name: 'X-Add', value: 'a' }], remove: ['X-Gone'] } },
          { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'X-Resp', value: 'r' }] } },
          { type: 'RequestMirror', requestMirror: { backendRef: backend('echo-v2') } },
          { type: 'RequestMirror', requestMirror: { backendRef: backend('ghost') } },
        ],
        backendRefs: [backend('echo-v1', 80, { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'X-Backend', value: 'v1' }] } }] })],
      },
      { matches: [{ path: { value: '/redir' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'example.org' } }] },
      { matches: [{ path: { value: '/https' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }] },
      { matches: [{ path: { value: '/port' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { port: 8083, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }] },
      { matches: [{ path: { value: '/rewrite' } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'h.example', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ path: { value: '/ext' } }], filters: [{ type: 'ExtensionRef', extensionRef: { group: 'example.io', kind: 'Magic', name: 'm' } }], backendRefs: [backend('echo-v1')] },
    ],
  });
  const c = compile(snapshot([echo, v1, v2, r], pods));
  const port = c.view('mesh/echo', NS)!.ports.find((p) => p.port === 8080)!;
  const rules = port.rules;
  t.same(rules[0]!.filters, [
    { type: 'RequestHeaderModifier', set: [['x-set', '1']], add: [['x-add', 'a']], remove: ['x-gone'] },
    { type: 'ResponseHeaderModifier', set: [['x-resp', 'r']], add: [], remove: [] },
    { type: 'RequestMirror', backend: 'mesh/echo-v2:80' },
  ], 'names lower-cased, equivalent names: first wins, unresolved mirror dropped');
  t.same(rules[0]!.backends, [{ backend: 'mesh/echo-v1:80', weight: 1, filters: [{ type: 'RequestHeaderModifier', set: [], add: [['x-backend', 'v1']], remove: [] }] }]);
  t.same(rules[1]!.filters, [{ type: 'RequestRedirect', statusCode: 302, port: 8080, hostname: 'example.org' }], 'no scheme, no port → the Service port');
  t.same(rules[1]!.backends, []);
  t.equal(rules[1]!.fixed, undefined, 'a redirect rule needs no backend');
  t.same(rules[2]!.filters, [{ type: 'RequestRedirect', statusCode: 301, port: 443, scheme: 'https' }], 'https → 443');
  t.same(rules[3]!.filters, [{ type: 'RequestRedirect', statusCode: 302, port: 8083, path: { type: 'ReplacePrefixMatch', value: '/new' } }]);
  t.same(rules[4]!.filters, [{ type: 'URLRewrite', hostname: 'h.example', path: { type: 'ReplacePrefixMatch', value: '/' } }]);
  t.same(rules[5]!.fixed, { status: 500, reason: 'ExtensionRef filter example.io/Magic m is not supported' });
  t.ok(c.view('mesh/echo', NS)!.backends['mesh/echo-v2:80'], 'mirror backend is in backends');
  const st = routeStatus(c.statuses, 'HTTPRoute', NS, 'f');
  t.match(cond(st, 'ResolvedRefs'), { status: 'False', reason: 'BackendNotFound' });
  t.match(cond(st, 'ResolvedRefs')!.message, /rules\[0\]\.filters\[3\]\.requestMirror: Service mesh\/ghost not found/);
  t.match(cond(st, 'Accepted'), { status: 'True' });

  const onlyExt = httpRoute(NS, 'ext', { parentRefs: [parent('echo-v1')], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group: 'x.io', kind: 'K', name: 'n' } }], backendRefs: [backend('echo-v1')] }] });
  const c2 = compile(snapshot([echo, v1, onlyExt], pods));
  t.match(cond(routeStatus(c2.statuses, 'HTTPRoute', NS, 'ext'), 'ResolvedRefs'), { status: 'False', reason: 'InvalidKind' });
});

t.test('backends: weights, zero weights, invalid refs, no backendRefs', async (t) => {
  const r = httpRoute(NS, 'w', {
    parentRefs: [parent('echo', { port: 80 })],
    rules: [
      { matches: [{ path: { value: '/split' } }], backendRefs: [backend('echo-v1', 80, { weight: 70 }), backend('echo-v2', 80, { weight: 30 }), backend('echo', 80, { weight: 0 })] },
      { matches: [{ path: { value: '/zero' } }], backendRefs: [backend('echo-v1', 80, { weight: 0 }), backend('echo-v2', 80, { weight: 0 })] },
      { matches: [{ path: { value: '/half' } }], backendRefs: [backend('echo-v1'), backend('ghost')] },
      { matches: [{ path: { value: '/none' } }], backendRefs: [backend('ghost'), backend('echo-v1', 81), { group: 'example.io', kind: 'Thing', name: 'x' }] },
      { matches: [{ path: { value: '/nothing' } }] },
    ],
  });
  const c = compile(snapshot([echo, v1, v2, r], pods));
  const rules = c.view('mesh/echo', NS)!.ports[0]!.rules;
  t.same(rules[0]!.backends.map((b) => [b.backend, b.weight]), [['mesh/echo-v1:80', 70], ['mesh/echo-v2:80', 30], ['mesh/echo:80', 0]], 'weight 0 kept (sessions) but never picked');
  t.equal(rules[0]!.fixed, undefined);
  t.same(rules[1]!.fixed, { status: 500, reason: 'every backendRef of this rule has weight 0' });
  t.same(rules[2]!.backends[1], { backend: '', weight: 1, filters: [], invalid: { status: 500, reason: 'Service mesh/ghost not found' } }, 'an invalid backendRef answers 500 for its share');
  t.equal(rules[2]!.fixed, undefined);
  t.same(rules[3]!.fixed, { status: 500, reason: 'no backendRef of this rule is valid' });
  t.same(rules[3]!.backends.map((b) => b.invalid?.reason), ['Service mesh/ghost not found', 'Service mesh/echo-v1 has no port 81', 'backendRef example.io/Thing mesh/x: only Services are supported']);
  t.same(rules[4]!.fixed, { status: 404, reason: 'rule has no backendRefs' });
  const st = routeStatus(c.statuses, 'HTTPRoute', NS, 'w');
  t.match(cond(st, 'ResolvedRefs'), { status: 'False', reason: 'BackendNotFound' });
  t.match(cond(st, 'ResolvedRefs')!.message, /only Services are supported/);
  t.ok(c.errors.some((e) => e.field === 'spec.rules[3].backendRefs[2]' && /^InvalidKind: /.test(e.message)), 'errors name the field');
});

t.test('timeouts are parsed to milliseconds; 0s stays 0 (disabled)', async (t) => {
  const r = httpRoute(NS, 't', {
    parentRefs: [parent('echo-v1')],
    rules: [
      { matches: [{ path: { value: '/a' } }], timeouts: { request: '1m30s', backendRequest: '500ms' }, backendRefs: [backend('echo-v1')] },
      { matches: [{ path: { value: '/b' } }], timeouts: { request: '0s' }, backendRefs: [backend('echo-v1')] },
    ],
  });
  const rules = compile(snapshot([v1, r], pods)).view('mesh/echo-v1', NS)!.ports[0]!.rules;
  t.same(rules[0]!.timeouts, { requestMs: 90_000, backendRequestMs: 500 });
  t.same(rules[1]!.timeouts, { requestMs: 0 });
});

t.test('invalid RE2 drops the rule: PartiallyInvalid, or Accepted=False when every rule is', async (t) => {
  const partly = httpRoute(NS, 'partly', {
    parentRefs: [parent('echo-v1')],
    rules: [
      { matches: [{ path: { type: 'RegularExpression', value: '/(a' } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ headers: [{ type: 'RegularExpression', name: 'x', value: '(?<=a)b' }] }], backendRefs: [backend('echo-v1')] },
      { matches: [{ path: { type: 'RegularExpression', value: '/ok/[0-9]+' } }], backendRefs: [backend('echo-v1')] },
    ],
  });
  const all = httpRoute(NS, 'all', { parentRefs: [parent('echo-v2')], rules: [{ matches: [{ queryParams: [{ type: 'RegularExpression', name: 'q', value: '(' }] }], backendRefs: [backend('echo-v2')] }] });
  const c = compile(snapshot([v1, v2, partly, all], pods));
  const port = c.view('mesh/echo-v1', NS)!.ports[0]!;
  t.same(port.rules.map((r) => r.route.ruleIndex), [2], 'only the valid rule is compiled');
  t.same(port.matches.map((m) => m.rule), [0]);
  const ps = routeStatus(c.statuses, 'HTTPRoute', NS, 'partly');
  t.match(cond(ps, 'Accepted'), { status: 'True' });
  t.match(cond(ps, 'PartiallyInvalid'), { status: 'True', reason: 'UnsupportedValue' });
  t.match(cond(ps, 'PartiallyInvalid')!.message, /^Dropped Rule\(s\): rules\[0\]: matches\[0\]\.path: regular expression "\/\(a" is not valid RE2/);
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'all'), 'Accepted'), { status: 'False', reason: 'UnsupportedValue' });
  t.equal(c.view('mesh/echo-v2', NS)!.ports[0]!.routeKind, 'none', 'a route with no valid rule does not take the port');
  t.ok(c.errors.some((e) => e.resource === 'HTTPRoute mesh/partly' && e.field === 'spec.rules[1]'));
});

t.test('GRPCRoute method matches become :path matches (GEP-1016)', async (t) => {
  const g = grpcRoute(NS, 'g', {
    parentRefs: [parent('echo', { port: 7070 })],
    rules: [
      { matches: [{ method: { service: 'grpc.Echo', method: 'Slow' } }], backendRefs: [backend('echo-v2')] },
      { matches: [{ method: { service: 'grpc.Echo' } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ method: { method: 'Ping' } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ method: { type: 'RegularExpression', service: 'grpc\\..*', method: 'Get.*' } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ method: { type: 'RegularExpression', service: 'a.b' } }], backendRefs: [backend('echo-v1')] },
      { matches: [{ headers: [{ name: 'X-Env', value: 'canary' }] }], backendRefs: [backend('echo-v2')] },
      { backendRefs: [backend('echo-v1')] },
    ],
  });
  const port = compile(snapshot([echo, v1, v2, g], pods)).view('mesh/echo', NS)!.ports[2]!;
  t.equal(port.routeKind, 'GRPCRoute');
  const byRule = new Map(port.matches.map((m) => [port.rules[m.rule]!.route.ruleIndex, m]));
  t.same(byRule.get(0)!.path, { type: 'Exact', value: '/grpc.Echo/Slow' });
  t.same(byRule.get(1)!.path, { type: 'PathPrefix', value: '/grpc.Echo' });
  t.same(byRule.get(2)!.path, { type: 'RegularExpression', value: '/[^/]+/Ping' });
  t.same(byRule.get(3)!.path, { type: 'RegularExpression', value: '/(?:grpc\\..*)/(?:Get.*)' });
  t.same(byRule.get(4)!.path, { type: 'RegularExpression', value: '/(?:a.b)/[^/]+' });
  t.same(byRule.get(5)!.headers, [{ type: 'Exact', name: 'x-env', value: 'canary' }]);
  t.same(byRule.get(6)!.path, { type: 'PathPrefix', value: '/' }, 'no matches: every request');
  t.same(port.matches.map((m) => port.rules[m.rule]!.route.ruleIndex), [0, 1, 3, 4, 2, 5, 6], 'service characters, then method characters, then headers');
});

t.test('compile is deterministic: same snapshot, same statuses and views', async (t) => {
  const r = httpRoute(NS, 'd', { parentRefs: [parent('echo')], rules: [{ backendRefs: [backend('echo-v1'), backend('ghost')] }] }, '2026-01-01T00:00:00Z');
  const a = compile(snapshot([echo, v1, r], pods));
  const b = compile(snapshot([echo, v1, r], pods));
  t.same(a.statuses, b.statuses);
  t.same(a.view('mesh/echo', 'x'), b.view('mesh/echo', 'x'));
  t.equal(cond(routeStatus(a.statuses, 'HTTPRoute', NS, 'd'), 'Accepted')!.lastTransitionTime, '2026-01-01T00:00:00Z', 'condition time = creationTimestamp (pure)');
  t.equal(a.view('mesh/echo', 'x'), a.view('mesh/echo', 'x'), 'views are memoized per compile');
});

t.test('an empty matches list matches every request, as an absent one does', async (t) => {
  const r = httpRoute(NS, 'empty', { parentRefs: [parent('echo-v1')], rules: [{ matches: [], backendRefs: [backend('echo-v1')] }] });
  const port = compile(snapshot([v1, r], pods)).view('mesh/echo-v1', NS)!.ports[0]!;
  t.same(port.matches, [{ rule: 0, path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
});

t.test('redirect port defaults per scheme', async (t) => {
  const r = httpRoute(NS, 'redir', {
    parentRefs: [parent('echo', { port: 8080 })],
    rules: [
      { matches: [{ path: { value: '/http' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'http' } }] },
      { matches: [{ path: { value: '/https-port' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', port: 8443 } }] },
      { matches: [{ path: { value: '/same' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 308 } }] },
    ],
  });
  const rules = compile(snapshot([echo, r], pods)).view('mesh/echo', NS)!.ports.find((p) => p.port === 8080)!.rules;
  t.same(rules.map((x) => x.filters[0]), [
    { type: 'RequestRedirect', statusCode: 302, port: 80, scheme: 'http' },
    { type: 'RequestRedirect', statusCode: 302, port: 8443, scheme: 'https' },
    { type: 'RequestRedirect', statusCode: 308, port: 8080 },
  ]);
});

t.test('odd but valid input compiles without throwing', async (t) => {
  const bare = v<import('../../api/index.js').Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'bare', namespace: NS }, spec: {} });
  const ext = v<import('../../api/index.js').Service>({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'ext', namespace: NS }, spec: { type: 'ExternalName', externalName: 'example.com' } });
  const slice = v<EndpointSlice>({ apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', namespace: NS, labels: { 'kubernetes.io/service-name': 'bare' } }, addressType: 'FQDN', endpoints: [{ addresses: ['x.example.com'] }] });
  const routes = [
    httpRoute(NS, 'to-bare', { parentRefs: [parent('bare')], rules: [{ backendRefs: [backend('bare')] }] }),
    httpRoute(NS, 'to-ext', { parentRefs: [parent('ext')], rules: [{ backendRefs: [backend('ext')] }] }),
    httpRoute(NS, 'no-rules-parentless', { rules: [] }),
    grpcRoute(NS, 'grpc-empty', { parentRefs: [parent('echo', { port: 7070 })] }),
    httpRoute(NS, 'via-ext-backend', { parentRefs: [parent('echo', { port: 80 })], rules: [{ backendRefs: [backend('ext')] }] }),
  ];
  const lbBad = v<import('../../api/index.js').AnyResource>({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'x', namespace: NS }, spec: { targetRefs: [{ group: 'apps', kind: 'Deployment', name: 'd' }] } });
  const c = compile(snapshot([echo, bare, ext, slice, ...routes, lbBad], pods));
  t.equal(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'to-bare'), 'Accepted')!.message, 'Service mesh/bare has no ports');
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'to-ext'), 'Accepted'), { status: 'False', reason: 'NoMatchingParent', message: /ExternalName/ });
  const view = c.view('mesh/echo', NS)!;
  t.same(view.ports.find((p) => p.port === 7070)!.matches, [], 'a GRPCRoute without rules takes the port and matches nothing');
  t.equal(view.ports.find((p) => p.port === 7070)!.routeKind, 'GRPCRoute');
  t.match(view.ports.find((p) => p.port === 80)!.rules[0]!.fixed, { status: 500 });
  t.match(cond(routeStatus(c.statuses, 'HTTPRoute', NS, 'via-ext-backend'), 'ResolvedRefs'), { status: 'False', reason: 'UnsupportedValue' });
  t.same(c.view('mesh/bare', NS)!.ports, []);
  t.match((c.statuses.find((s) => s.name === 'x')!.status as import('../../api/index.js').PolicyStatus).ancestors[0]!.conditions[0], { reason: 'Invalid' });
});

t.test('compile stays fast at 10,000 rules on one Service (625 routes × 16 rules)', async (t) => {
  const routes = Array.from({ length: 625 }, (_, i) =>
    httpRoute(NS, `r${i}`, {
      parentRefs: [parent('echo', { port: 80 })],
      rules: Array.from({ length: 16 }, (_, j) => ({ matches: [{ path: { value: `/p${i}/r${j}` }, headers: [{ name: 'x', value: String(j) }] }], backendRefs: [backend('echo-v1')] })),
    }),
  );
  const t0 = performance.now();
  const c = compile(snapshot([echo, v1, ...routes], pods));
  const port = c.view('mesh/echo', NS)!.ports[0]!;
  const ms = performance.now() - t0;
  t.equal(port.matches.length, 10_000);
  t.equal(port.rules.length, 10_000);
  t.equal(port.rules[port.matches[0]!.rule]!.route.name.startsWith('r'), true);
  t.ok(ms < 10_000, `compile + view took ${Math.round(ms)} ms`);
});

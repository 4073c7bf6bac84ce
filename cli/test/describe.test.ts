// weft get / describe text: label selectors, tables and the effective rules
// per Service port and consumer namespace.
import t from 'tap';
import type { AnyResource } from '../../api/index.js';
import { compile } from '../../control/index.js';
import { age, describe, getTable, inventoryFrom, parseSelector, selectorMatches, snapshotOf, type Inventory } from '../describe.js';
import { backend, grpcRoute, httpRoute, parent, pod, svc, v } from '../../control/test/helpers/compile-fixtures.js';

t.test('label selectors: =, ==, !=, in, notin, exists, !exists', async (t) => {
  const labels = { app: 'echo', tier: 'web', version: 'v1' };
  const cases: Array<[string, boolean]> = [
    ['app=echo', true],
    ['app==echo', true],
    ['app=other', false],
    ['app!=other', true],
    ['missing!=x', true],
    ['version in (v1,v2)', true],
    ['version in (v2, v3)', false],
    ['version notin (v2)', true],
    ['version notin (v1)', false],
    ['missing notin (v1)', true],
    ['tier', true],
    ['missing', false],
    ['!missing', true],
    ['!tier', false],
    ['app=echo,version in (v1, v2),!canary', true],
    ['app=echo,tier=db', false],
    ['', true],
    ['example.com/team', false],
  ];
  for (const [sel, want] of cases) t.equal(selectorMatches(parseSelector(sel), labels), want, JSON.stringify(sel));
  for (const bad of ['app in ()', 'version in (v1', 'a=b,,c=d', 'app=bad value', 'Bad Key', 'app=-x']) {
    t.throws(() => parseSelector(bad), undefined, `rejects ${JSON.stringify(bad)}`);
  }
});

const NS = 'mesh';
const echo = svc(NS, 'echo', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 7070, appProtocol: 'grpc' }]);
const v1 = svc(NS, 'echo-v1', [{ name: 'http', port: 80, targetPort: 8080 }]);
const v2 = svc(NS, 'echo-v2', [{ name: 'http', port: 80, targetPort: 8080 }]);
const producer = httpRoute(NS, 'split', {
  parentRefs: [parent('echo', { port: 80 })],
  rules: [
    { matches: [{ path: { value: '/v2' }, headers: [{ name: 'X-Canary', value: '1' }] }], filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-via', value: 'v2' }] } }], backendRefs: [backend('echo-v2')], timeouts: { request: '2s' } },
    { backendRefs: [backend('echo-v1', 80, { weight: 3 }), backend('echo-v2', 80, { weight: 1 }), backend('ghost')] },
  ],
}, '2026-01-01T00:00:00Z');
const consumer = httpRoute('client', 'mine', { parentRefs: [parent('echo', { namespace: NS, port: 80 })], rules: [{ backendRefs: [backend('echo-v2', 80, { namespace: NS })] }] });
const g = grpcRoute(NS, 'g', { parentRefs: [parent('echo', { port: 7070 })], rules: [{ matches: [{ method: { service: 'grpc.Echo', method: 'Slow' } }], backendRefs: [backend('echo-v2')] }] });
const labelled = v<AnyResource>({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'labelled', namespace: NS, labels: { team: 'a' } }, spec: { parentRefs: [parent('nope')] } });
const policy = v<AnyResource>({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy', metadata: { name: 'lb', namespace: NS }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'echo-v1' }], sessionPersistence: { sessionName: 'sticky' } } });
const resources: AnyResource[] = [echo, v1, v2, producer, consumer, g, labelled, policy];
const registered = [pod(NS, 'echo-v1', '127.0.7.1'), pod(NS, 'echo-v2', '127.0.7.2')];

function inventory(): Inventory {
  const c = compile(snapshotOf(resources, registered));
  // As the admin endpoint serves it: registry entries wrap the workload.
  return inventoryFrom({ resources, statuses: c.statuses, errors: c.errors, registered: registered.map((w) => ({ workload: w, state: 'connected', connections: 1 })) });
}

t.test('get: tables per kind, namespace, selector', async (t) => {
  const inv = inventory();
  t.equal(inv.registered[0]!.podIP, '127.0.7.1', 'registry entries are unwrapped');
  const now = Date.parse('2026-01-01T02:00:00Z');
  t.equal(getTable(inv, 'routes', { namespace: NS, now }),
    [
      'NAME       KIND        PARENTS     RULES   ACCEPTED                  RESOLVED                 AGE',
      'g          GRPCRoute   echo:7070   1       True                      True                     <unknown>',
      'labelled   HTTPRoute   nope        1       False(NoMatchingParent)   True                     <unknown>',
      'split      HTTPRoute   echo:80     2       True                      False(BackendNotFound)   2h',
      '',
    ].join('\n'));
  const all = getTable(inv, 'routes', { allNamespaces: true, now });
  t.match(all, /^NAMESPACE\s+NAME/);
  t.match(all, /client\s+mine\s+HTTPRoute\s+mesh\/echo:80/);
  t.match(getTable(inv, 'routes', { allNamespaces: true, selector: parseSelector('team=a') }), /labelled/);
  t.notMatch(getTable(inv, 'routes', { allNamespaces: true, selector: parseSelector('team=a') }), /split/);
  t.equal(getTable(inv, 'routes', { namespace: 'empty' }), 'No routes found in namespace empty.\n');
  const svcs = getTable(inv, 'services', { namespace: NS });
  t.match(svcs, /echo\s+-\s+80:8080\/http,7070\/grpc\s+no\s+0\s+3/);
  t.match(svcs, /echo-v1\s+-\s+80:8080\/http\s+yes\s+1\s+0/);
  t.match(getTable(inv, 'policies', { namespace: NS }), /lb\s+BackendLBPolicy\s+Service\/echo-v1\s+True/);
});

t.test('describe service: routes, policies, effective rules per port and consumer namespace', async (t) => {
  const text = describe(inventory(), 'service', NS, 'echo', { now: Date.parse('2026-01-02T00:00:00Z') })!;
  t.match(text, /Routes:\s*\n\s+GRPCRoute mesh\/g\s+producer\s+Accepted=True\n\s+HTTPRoute mesh\/split\s+producer\s+Accepted=True\n\s+HTTPRoute client\/mine\s+consumer \(client\)\s+Accepted=True/);
  t.match(text, /port 80 \(http\), callers in every namespace without consumer routes: HTTPRoutes, first match wins\n\s+1\. PathPrefix \/v2, header x-canary=1 → HTTPRoute mesh\/split rules\[0\]/);
  t.match(text, /filter ResponseHeaderModifier \(set x-via: v2\)/);
  t.match(text, /timeouts request 2s/);
  t.match(text, /backend mesh\/echo-v1:80 weight 3 \(60%\), 1\/1 endpoints ready\n\s+backend mesh\/echo-v2:80 weight 1 \(20%\)[^\n]*\n\s+backend <invalid> weight 1 \(20%\): answers 500: Service mesh\/ghost not found\n\s+session Cookie sticky, from BackendLBPolicy/, 'weights as shares (an invalid backend keeps its share of 500s); the policy session on the rule');
  t.match(text, /port 80 \(http\), callers in namespace client: HTTPRoutes, first match wins\n\s+1\. PathPrefix \/ → HTTPRoute client\/mine rules\[0\]/);
  t.match(text, /port 7070 \(grpc\), callers in every namespace without consumer routes: GRPCRoutes, first match wins\n\s+1\. Exact \/grpc\.Echo\/Slow/);
  t.match(text, /otherwise: UNIMPLEMENTED \(404\)/);
  t.notMatch(text, /port 7070 \(grpc\), callers in namespace client/, 'a consumer namespace without routes on a port is not repeated');
});

t.test('describe route and policy: status with reasons; invalid resources show their errors', async (t) => {
  const inv = inventory();
  const r = describe(inv, 'route', NS, 'split')!;
  t.match(r, /Service mesh\/echo port 80 \(producer route\)\n\s+Accepted\s+True\s+Accepted: attached to Service mesh\/echo port\(s\) 80/);
  t.match(r, /ResolvedRefs\s+False\s+BackendNotFound: rules\[1\]\.backendRefs\[2\]: Service mesh\/ghost not found/);
  t.match(r, /\[0\]\n\s+match PathPrefix \/v2, header x-canary=1/);
  t.match(r, /Errors:\n\s+compile: HTTPRoute mesh\/split: spec\.rules\[1\]\.backendRefs\[2\]: BackendNotFound: Service mesh\/ghost not found/);
  const l = describe(inv, 'route', NS, 'labelled')!;
  t.match(l, /Accepted\s+False\s+NoMatchingParent: Service mesh\/nope not found/);
  t.match(l, /not in effect on any Service port/);
  const p = describe(inv, 'policy', NS, 'lb')!;
  t.match(p, /Session persistence: Cookie sticky/);
  t.match(p, /Service mesh\/echo-v1\n\s+Accepted\s+True\s+Accepted: session persistence \(Cookie\) applies to Service mesh\/echo-v1/);
  t.equal(describe(inv, 'service', NS, 'absent'), undefined);
  const bad: Inventory = { ...inv, errors: [{ source: 'dir/r.yaml', resource: 'HTTPRoute mesh/broken', field: 'spec.rules[0]', message: 'Must have port for Service reference' }] };
  t.equal(describe(bad, 'route', NS, 'broken'), 'route mesh/broken was not loaded: it is invalid\nErrors:\n  dir/r.yaml: HTTPRoute mesh/broken: spec.rules[0]: Must have port for Service reference\n');
});

t.test('age', async (t) => {
  const now = Date.parse('2026-01-10T00:00:00Z');
  t.equal(age('2026-01-09T23:59:30Z', now), '30s');
  t.equal(age('2026-01-09T23:00:00Z', now), '60m');
  t.equal(age('2026-01-09T00:00:00Z', now), '24h');
  t.equal(age('2026-01-01T00:00:00Z', now), '9d');
  t.equal(age(undefined, now), '<unknown>');
});

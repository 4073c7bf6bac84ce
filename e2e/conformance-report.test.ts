// The ConformanceReport builder and the response checks of the conformance
// runner, as tables: the same rules as upstream's reports.go and
// compareRequest, including the cases that must fail.
import t from 'tap';
import { buildReport, applySupport, profileReport, PROFILES, type ScenarioOutcome } from '../conformance/index.js';
import { checkResponse } from '../conformance/index.js';
import type { HttpResult } from './helpers/mesh.js';
import type { Case } from '../conformance/index.js';

const r = (name: string, features: string[], result: ScenarioOutcome['result']): ScenarioOutcome => ({ name, features, result });

t.test('results split into core and extended by features, as upstream', async (t) => {
  const p = profileReport(
    PROFILES['MESH-HTTP'],
    [
      r('MeshBasic', ['Mesh'], 'SUCCEEDED'),
      r('MeshTrafficSplit', ['Mesh', 'HTTPRoute'], 'SUCCEEDED'),
      r('MeshPorts', ['Mesh', 'HTTPRoute', 'HTTPRouteParentRefPort'], 'FAILED'),
      r('MeshFrontendHostname', ['Mesh', 'MeshClusterIPMatching'], 'SKIPPED'),
      r('Unsupported', ['Mesh', 'HTTPRouteRequestMirror'], 'NOT_SUPPORTED'),
      r('GrpcOnly', ['Mesh', 'GRPCRoute'], 'SUCCEEDED'),
    ],
    ['HTTPRouteParentRefPort', 'MeshClusterIPMatching'],
  );
  t.same(p.core, { result: 'success', statistics: { Passed: 2, Skipped: 0, Failed: 0 } });
  t.equal(p.extended?.result, 'failure');
  t.same(p.extended?.statistics, { Passed: 0, Skipped: 1, Failed: 1 });
  t.same(p.extended?.failedTests, ['MeshPorts']);
  t.same(p.extended?.skippedTests, ['MeshFrontendHostname']);
  t.same(p.extended?.supportedFeatures, ['HTTPRouteParentRefPort', 'MeshClusterIPMatching']);
  t.ok(p.extended?.unsupportedFeatures?.includes('HTTPRouteRequestMirror'));
  t.equal(p.summary, 'Core tests succeeded. Extended tests failed with 1 test failures.');
});

t.test('no extended block without an extended result; partial with skips', async (t) => {
  const p = profileReport(PROFILES['MESH-GRPC'], [r('MeshBasic', ['Mesh'], 'SKIPPED')], []);
  t.same(p.core, { result: 'partial', statistics: { Passed: 0, Skipped: 1, Failed: 0 }, skippedTests: ['MeshBasic'] });
  t.equal(p.extended, undefined);
  t.equal(p.summary, 'Core tests partially succeeded with 1 test skips.');
});

t.test('tests needing an unclaimed feature become NOT_SUPPORTED and are not counted', async (t) => {
  const out = applySupport([r('Mirror', ['Mesh', 'HTTPRouteRequestMirror'], 'FAILED')], [], ['Mesh', 'HTTPRoute']);
  t.equal(out[0]!.result, 'NOT_SUPPORTED');
  const rep = buildReport(out, { profiles: ['MESH-HTTP'], supportedFeatures: [], date: 'd', version: 'v0' });
  t.same(rep.profiles[0]!.core.statistics, { Passed: 0, Skipped: 0, Failed: 0 });
  t.equal(rep.apiVersion, 'gateway.networking.k8s.io/v1');
  t.equal(rep.gatewayAPIVersion, 'v1.1.0');
});

const res = (status: number, headers: Record<string, string>, body: unknown = {}): HttpResult => ({
  status,
  headers,
  body: JSON.stringify(body),
  json: <T>() => body as T,
});
const echo = (pod: string, path = '/', headers: Record<string, string[]> = {}) => ({ pod, path, headers });

const checks: Array<[string, Case, HttpResult, boolean]> = [
  ['status and backend match', { name: '', host: 'echo', path: '/', expect: { status: 200, backend: 'echo-v1' } }, res(200, {}, echo('echo-v1-0')), true],
  ['wrong backend fails', { name: '', host: 'echo', path: '/', expect: { backend: 'echo-v1' } }, res(200, {}, echo('echo-v2-0')), false],
  ['wrong status fails', { name: '', host: 'echo', path: '/', expect: { status: 404 } }, res(200, {}), false],
  ['absent response header present fails', { name: '', host: 'echo', path: '/', expect: { absentHeaders: ['X-Header-Set'] } }, res(200, { 'x-header-set': 'v' }), false],
  ['response header value checked', { name: '', host: 'echo', path: '/', expect: { headers: { 'X-Header-Set': 'v1' } } }, res(200, { 'x-header-set': 'v2' }), false],
  [
    'request headers joined by comma',
    { name: '', host: 'echo', path: '/', expect: { requestHeaders: { 'X-Header-Add': 'a,b' } } },
    res(200, {}, echo('echo-v1-0', '/', { 'x-header-add': ['a', 'b'] })),
    true,
  ],
  ['request path checked without query', { name: '', host: 'echo', path: '/', expect: { requestPath: '/one' } }, res(200, {}, echo('e', '/one?x=1')), true],
  ['redirect defaults to the request path and scheme', { name: '', host: 'echo', path: '/redirect', expect: { status: 303, redirect: {} } }, res(303, { location: 'http://echo/redirect' }), true],
  ['redirect with an unexpected port fails', { name: '', host: 'echo', path: '/p', expect: { status: 302, redirect: {} } }, res(302, { location: 'http://echo:8083/p' }), false],
  ['redirect port expected', { name: '', host: 'echo', path: '/p', expect: { status: 302, redirect: { port: '8083' } } }, res(302, { location: 'http://echo:8083/p' }), true],
  ['https default port is no port', { name: '', host: 'echo', path: '/s', expect: { status: 302, redirect: { scheme: 'https' } } }, res(302, { location: 'https://echo:443/s' }), true],
  ['relative Location is refused', { name: '', host: 'echo', path: '/s', expect: { status: 302, redirect: {} } }, res(302, { location: '/s' }), false],
];

t.test('response checks', async (t) => {
  for (const [name, c, r, pass] of checks) t.equal(checkResponse(c, r) === '', pass, name);
});

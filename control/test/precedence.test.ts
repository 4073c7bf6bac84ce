// Gateway API match precedence (HTTPRouteRule.Matches doc, v1.1): every step
// and every tie-breaker, through compile so the sorted PortConfig.matches is
// what the sidecar gets.
import t from 'tap';
import type { HTTPRoute } from '../../api/index.js';
import { compile } from '../compile.js';
import { compareHTTPMatch, createdMs, prefixLength, type HTTPMatchKey } from '../precedence.js';
import { backend, httpRoute, parent, pod, snapshot, svc } from './helpers/compile-fixtures.js';

const NS = 'p';
const target = svc(NS, 'echo', [{ name: 'http', port: 80 }]);

/** Sorted matches as "route#rule.match" labels. */
function order(routes: HTTPRoute[]): string[] {
  const port = compile(snapshot([target, ...routes], [pod(NS, 'echo', '127.0.5.1')])).view(`${NS}/echo`, NS)!.ports[0]!;
  return port.matches.map((m) => {
    const r = port.rules[m.rule]!.route;
    const rule = (routes.find((x) => x.metadata.name === r.name)!.spec.rules ?? [])[r.ruleIndex]!;
    const ms = rule.matches ?? [];
    const mi = ms.length === 1 ? 0 : ms.findIndex((x) => samePath(x.path?.value ?? '/', m.path.value) && (x.method ?? '') === (m.method ?? '') && (x.headers?.length ?? 0) === m.headers.length && (x.queryParams?.length ?? 0) === m.queryParams.length);
    return `${r.name}#${r.ruleIndex}.${mi}`;
  });
}
function samePath(spec: string, compiled: string): boolean {
  return spec === compiled || (spec.endsWith('/') && spec.slice(0, -1) === compiled);
}

const one = (name: string, matches: unknown[], created?: string, ns = NS) =>
  httpRoute(ns, name, { parentRefs: [parent('echo', { namespace: NS })], rules: [{ matches, backendRefs: [backend('echo', 80, { namespace: NS })] }] }, created);
const rules = (name: string, ruleMatches: unknown[][], created?: string) =>
  httpRoute(NS, name, { parentRefs: [parent('echo')], rules: ruleMatches.map((matches) => ({ matches, backendRefs: [backend('echo')] })) }, created);

const T1 = '2026-01-01T00:00:00Z';
const T2 = '2026-02-01T00:00:00Z';

interface Case {
  name: string;
  routes: HTTPRoute[];
  want: string[];
}

const cases: Case[] = [
  {
    name: '1. Exact beats any prefix, even a longer one',
    routes: [one('prefix', [{ path: { type: 'PathPrefix', value: '/foo/bar/baz' } }], T1), one('exact', [{ path: { type: 'Exact', value: '/foo' } }], T2)],
    want: ['exact#0.0', 'prefix#0.0'],
  },
  {
    name: '2. longer PathPrefix beats shorter',
    routes: [one('short', [{ path: { value: '/foo' } }], T1), one('long', [{ path: { value: '/foo/bar' } }], T2)],
    want: ['long#0.0', 'short#0.0'],
  },
  {
    name: '2. a trailing slash does not count (ignored by PathPrefix): tie goes to the older route',
    routes: [one('slash', [{ path: { value: '/foo/' } }], T2), one('bare', [{ path: { value: '/foo' } }], T1)],
    want: ['bare#0.0', 'slash#0.0'],
  },
  {
    name: 'RegularExpression (implementation-specific): after Exact, before PathPrefix, longer first',
    routes: [one('prefix', [{ path: { value: '/foo/bar/baz/qux' } }], T1), one('regex', [{ path: { type: 'RegularExpression', value: '/f.*' }, }, { path: { type: 'RegularExpression', value: '/foo/[0-9]+' } }], T1), one('exact', [{ path: { type: 'Exact', value: '/x' } }], T2)],
    want: ['exact#0.0', 'regex#0.1', 'regex#0.0', 'prefix#0.0'],
  },
  {
    name: '3. method match beats none at equal path',
    routes: [one('any', [{ path: { value: '/a' }, headers: [{ name: 'h1', value: '1' }, { name: 'h2', value: '2' }] }], T1), one('get', [{ path: { value: '/a' }, method: 'GET' }], T2)],
    want: ['get#0.0', 'any#0.0'],
  },
  {
    name: '4. more header matches win',
    routes: [one('one', [{ headers: [{ name: 'a', value: '1' }], queryParams: [{ name: 'q', value: '1' }, { name: 'r', value: '2' }] }], T1), one('two', [{ headers: [{ name: 'a', value: '1' }, { name: 'b', value: '2' }] }], T2)],
    want: ['two#0.0', 'one#0.0'],
  },
  {
    name: '4. equivalent header names count once (first wins)',
    routes: [one('dup', [{ headers: [{ name: 'A', value: '1' }, { name: 'a', value: '2' }] }], T1), one('two', [{ headers: [{ name: 'a', value: '1' }, { name: 'b', value: '2' }] }], T2)],
    want: ['two#0.0', 'dup#0.0'],
  },
  {
    name: '5. more query param matches win',
    routes: [one('none', [{ path: { value: '/' } }], T1), one('q', [{ queryParams: [{ name: 'q', value: '1' }] }], T2)],
    want: ['q#0.0', 'none#0.0'],
  },
  {
    name: 'tie: the oldest route by creationTimestamp',
    routes: [one('aaa-newer', [{ path: { value: '/a' } }], T2), one('zzz-older', [{ path: { value: '/a' } }], T1)],
    want: ['zzz-older#0.0', 'aaa-newer#0.0'],
  },
  {
    name: 'tie: a route without creationTimestamp counts as newest',
    routes: [one('aaa-unknown', [{ path: { value: '/a' } }]), one('zzz-dated', [{ path: { value: '/a' } }], T2)],
    want: ['zzz-dated#0.0', 'aaa-unknown#0.0'],
  },
  {
    name: 'tie: then "{namespace}/{name}" alphabetically',
    routes: [one('b', [{ path: { value: '/a' } }], T1), one('a', [{ path: { value: '/a' } }], T1)],
    want: ['a#0.0', 'b#0.0'],
  },
  {
    name: 'tie within a route: first rule in list order, then first match',
    routes: [rules('r', [[{ path: { value: '/b' } }, { path: { value: '/a' } }], [{ path: { value: '/c' } }]], T1)],
    want: ['r#0.0', 'r#0.1', 'r#1.0'],
  },
  {
    name: 'all steps at once',
    routes: [
      rules('mix', [
        [{ path: { value: '/' } }],
        [{ path: { value: '/api' }, method: 'POST' }],
        [{ path: { value: '/api' }, headers: [{ name: 'x', value: '1' }] }],
        [{ path: { type: 'Exact', value: '/api/health' } }],
        [{ path: { value: '/api/v1' } }],
        [{ path: { value: '/api' }, queryParams: [{ name: 'debug', value: '1' }] }],
        [{ path: { value: '/api' } }],
      ], T1),
    ],
    want: ['mix#3.0', 'mix#4.0', 'mix#1.0', 'mix#2.0', 'mix#5.0', 'mix#6.0', 'mix#0.0'],
  },
];

t.test('HTTPRoute match precedence', async (t) => {
  for (const c of cases) t.same(order(c.routes), c.want, c.name);
});

t.test('comparator and helpers', async (t) => {
  const base: HTTPMatchKey = { created: 0, key: 'a/a', ruleIndex: 0, matchIndex: 0, pathType: 'PathPrefix', pathLength: 1, hasMethod: false, headers: 0, queryParams: 0 };
  t.ok(compareHTTPMatch({ ...base, pathType: 'Exact' }, base) < 0);
  t.ok(compareHTTPMatch({ ...base, pathType: 'RegularExpression' }, { ...base, pathLength: 100 }) < 0);
  t.ok(compareHTTPMatch(base, { ...base, matchIndex: 1 }) < 0);
  t.equal(compareHTTPMatch(base, { ...base }), 0);
  // Routes merged on one port always share a namespace (producer or one consumer
  // namespace), so the namespace half of "{namespace}/{name}" only shows here.
  t.ok(compareHTTPMatch({ ...base, key: 'aa/z' }, { ...base, key: 'zz/a' }) < 0);
  t.equal(prefixLength('/foo/'), 4);
  t.equal(prefixLength('/'), 1);
  t.equal(createdMs(undefined), Number.POSITIVE_INFINITY);
  t.equal(createdMs('garbage'), Number.POSITIVE_INFINITY);
  t.equal(createdMs(T1), Date.parse(T1));
});

t.test('PathPrefix values reach the sidecar without their ignored trailing slash', async (t) => {
  const port = compile(snapshot([target, one('s', [{ path: { value: '/foo/' } }, { path: { value: '/' } }])])).view(`${NS}/echo`, NS)!.ports[0]!;
  t.same(port.matches.map((m) => m.path), [{ type: 'PathPrefix', value: '/foo' }, { type: 'PathPrefix', value: '/' }]);
});

// The conformance cases of MeshHTTPRouteMatching and MeshHTTPRouteQueryParamMatching
// (gateway-api conformance/tests/mesh), resolved by "first entry that matches"
// over the compiled order, as the sidecar does.
function firstMatch(port: import('../../api/index.js').PortConfig, url: string, headers: Record<string, string> = {}): string | undefined {
  const [path, query = ''] = url.split('?') as [string, string?];
  const qs = new URLSearchParams(query);
  const h = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  const hit = port.matches.find((m) => {
    const p = m.path;
    if (p.type === 'Exact' && path !== p.value) return false;
    if (p.type === 'PathPrefix' && !(p.value === '/' || path === p.value || path.startsWith(`${p.value}/`))) return false;
    if (p.type === 'RegularExpression' && !new RegExp(`^(?:${p.value})$`).test(path)) return false;
    if (m.method) return false;
    if (!m.headers.every((x) => h[x.name] === x.value)) return false;
    return m.queryParams.every((x) => qs.get(x.name) === x.value);
  });
  if (!hit) return undefined;
  return port.rules[hit.rule]!.backends[0]!.backend.replace(/^mesh\/(echo-v[12]):\d+$/, '$1');
}

t.test('conformance: MeshHTTPRouteMatching and QueryParamMatching resolve as upstream expects', async (t) => {
  const echo = svc('mesh', 'echo', [{ name: 'http', port: 80 }]);
  const v1 = svc('mesh', 'echo-v1', [{ name: 'http', port: 8080 }]);
  const v2 = svc('mesh', 'echo-v2', [{ name: 'http', port: 8080 }]);
  const be = (n: string) => [{ name: n, port: 8080 }];
  const matching = httpRoute('mesh', 'mesh-matching', {
    parentRefs: [parent('echo', { port: 80 })],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/' } }, { headers: [{ name: 'version', value: 'one' }] }], backendRefs: be('echo-v1') },
      { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }, { headers: [{ name: 'version', value: 'two' }] }], backendRefs: be('echo-v2') },
    ],
  });
  const port = compile(snapshot([echo, v1, v2, matching])).view('mesh/echo', 'mesh')!.ports[0]!;
  const cases: Array<[string, Record<string, string>, string]> = [
    ['/', {}, 'echo-v1'],
    ['/example', {}, 'echo-v1'],
    ['/', { Version: 'one' }, 'echo-v1'],
    ['/v2', {}, 'echo-v2'],
    ['/v2/example', {}, 'echo-v2'],
    ['/', { Version: 'two' }, 'echo-v2'],
    ['/v2/', {}, 'echo-v2'],
    ['/v2example', {}, 'echo-v1'],
    ['/foo/v2/example', {}, 'echo-v1'],
  ];
  for (const [url, h, want] of cases) t.equal(firstMatch(port, url, h), want, `${url} ${JSON.stringify(h)}`);

  const q = (name: string, value: string) => ({ name, value });
  const qp = httpRoute('mesh', 'mesh-query-param-matching', {
    parentRefs: [parent('echo', { port: 80 })],
    rules: [
      { matches: [{ queryParams: [q('animal', 'whale')] }], backendRefs: be('echo-v1') },
      { matches: [{ queryParams: [q('animal', 'dolphin')] }], backendRefs: be('echo-v2') },
      { matches: [{ path: { type: 'PathPrefix', value: '/path1' }, queryParams: [q('animal', 'whale')] }], backendRefs: be('echo-v1') },
      { matches: [{ headers: [q('version', 'one')], queryParams: [q('animal', 'whale')] }], backendRefs: be('echo-v2') },
      { matches: [{ path: { type: 'PathPrefix', value: '/path3' }, queryParams: [q('animal', 'shark')] }, { path: { type: 'PathPrefix', value: '/path4' }, headers: [q('version', 'three')], queryParams: [q('animal', 'kraken')] }], backendRefs: be('echo-v1') },
      { matches: [{ path: { type: 'PathPrefix', value: '/path5' } }], backendRefs: be('echo-v1') },
      { matches: [{ queryParams: [q('animal', 'hydra')] }], backendRefs: be('echo-v2') },
    ],
  });
  const qport = compile(snapshot([echo, v1, v2, qp])).view('mesh/echo', 'mesh')!.ports[0]!;
  const qcases: Array<[string, Record<string, string>, string | undefined]> = [
    ['/?animal=whale', {}, 'echo-v1'],
    ['/?animal=dolphin', {}, 'echo-v2'],
    ['/?animal=whale&otherparam=irrelevant', {}, 'echo-v1'],
    ['/?animal=dolphin&color=yellow', {}, 'echo-v2'],
    ['/?color=blue', {}, undefined],
    ['/?animal=dog', {}, undefined],
    ['/?animal=whaledolphin', {}, undefined],
    ['/', {}, undefined],
    ['/path1?animal=whale', {}, 'echo-v1'],
    ['/?animal=whale', { version: 'one' }, 'echo-v2'],
    ['/path3?animal=shark', {}, 'echo-v1'],
    ['/path4?animal=kraken', { version: 'three' }, 'echo-v1'],
    ['/?animal=shark', {}, undefined],
    ['/path4?animal=kraken', {}, undefined],
    ['/path5?animal=hydra', {}, 'echo-v1'],
  ];
  for (const [url, h, want] of qcases) t.equal(firstMatch(qport, url, h), want, `${url} ${JSON.stringify(h)}`);
});

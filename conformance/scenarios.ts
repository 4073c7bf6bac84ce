// The Gateway API mesh conformance tests, re-expressed for weft's local mode.
//
// Each scenario keeps upstream's Services, routes, requests and expected
// responses (kubernetes-sigs/gateway-api conformance/tests/mesh/*: the six
// v1.1.0 tests and the mesh HTTP tests added since). What differs is only how
// a request leaves the client pod: here the runner plays the echo-v1 pod's app
// and hands each request to that pod's outbound sidecar, as an app with
// HTTP_PROXY does. The checks are upstream's compareRequest (status, response
// headers present/absent, request headers the backend saw, backend pod
// prefix) plus the redirect Location checks of conformance/utils/http.

export const MESH_NS = 'gateway-conformance-mesh';
export const CONSUMER_NS = 'gateway-conformance-mesh-consumer';

export interface RedirectExpect {
  scheme?: string;
  host?: string;
  port?: string;
  path?: string;
}

export interface Expect {
  /** Default 200. */
  status?: number;
  /** The answering pod's name must start with this (upstream's `Backend`). */
  backend?: string;
  headers?: Record<string, string>;
  absentHeaders?: string[];
  /** Headers the backend must have received (values of repeats joined by ","). */
  requestHeaders?: Record<string, string>;
  absentRequestHeaders?: string[];
  /** Path the backend must have received (rewrite tests). */
  requestPath?: string;
  redirect?: RedirectExpect;
}

export interface Case {
  name: string;
  /** Which pod's app sends it: the producer namespace's echo-v1 (default) or the consumer's. */
  from?: 'producer' | 'consumer';
  /** URL host as the client writes it (`echo`, `echo-v1:8080`); `{pod:echo-v2}` = that pod's IP. */
  host: string;
  path: string;
  method?: string;
  headers?: Record<string, string>;
  /** 'grpc': a unary weft.test.Echo/Echo call with `headers` as metadata (host names the Service:port); the answer is checked like the echo app's JSON. */
  protocol?: 'grpc';
  expect: Expect;
}

export interface Scenario {
  name: string;
  description: string;
  /** Upstream's feature names; the profile and core/extended split follow from them. */
  features: string[];
  provisional?: boolean;
  /** Route manifests applied for this scenario (YAML). */
  manifests: string;
  cases: Case[];
  /** Weighted distribution check instead of (or after) cases. */
  weights?: { request: Case; expected: Record<string, number>; requests: number; tolerance: number };
  /** Why this scenario cannot run in local mode (it is reported as skipped). */
  localSkip?: string;
}

const route = (name: string, body: string, port: number | null = 80, parent = 'echo') =>
  `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: ${MESH_NS}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: ${parent}${port === null ? '' : `\n    port: ${port}`}
  rules:
${body}`;

const ok = (backend: string, extra: Expect = {}): Expect => ({ status: 200, backend, ...extra });

const redirectRule = (prefix: string, redirect: string) => `  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}
    filters:
    - type: RequestRedirect
      requestRedirect:
${redirect}`;

const redirectCase = (path: string, status: number, redirect: RedirectExpect): Case => ({
  name: `${path} redirects with ${status}`,
  host: 'echo',
  path,
  expect: { status, redirect },
});

const headerModifierCases = (): Case[] => [
  {
    name: 'set adds a missing header',
    host: 'echo',
    path: '/set',
    headers: { 'Some-Other-Header': 'val' },
    expect: ok('echo-v1', { requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } }),
  },
  {
    name: 'set overwrites a present header',
    host: 'echo',
    path: '/set',
    headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' },
    expect: ok('echo-v1', { requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } }),
  },
  {
    name: 'add adds a missing header',
    host: 'echo',
    path: '/add',
    headers: { 'Some-Other-Header': 'val' },
    expect: ok('echo-v1', { requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' } }),
  },
  {
    name: 'add appends to a present header',
    host: 'echo',
    path: '/add',
    headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' },
    expect: ok('echo-v1', {
      requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' },
    }),
  },
  {
    name: 'remove drops a header',
    host: 'echo',
    path: '/remove',
    headers: { 'X-Header-Remove': 'val' },
    expect: ok('echo-v1', { absentRequestHeaders: ['X-Header-Remove'] }),
  },
  {
    name: 'set, add and remove together',
    host: 'echo',
    path: '/multiple',
    headers: {
      'X-Header-Set-2': 'set-val-2',
      'X-Header-Add-2': 'add-val-2',
      'X-Header-Remove-2': 'remove-val-2',
      'Another-Header': 'another-header-val',
    },
    expect: ok('echo-v1', {
      requestHeaders: {
        'X-Header-Set-1': 'header-set-1',
        'X-Header-Set-2': 'header-set-2',
        'X-Header-Add-1': 'header-add-1',
        'X-Header-Add-2': 'add-val-2,header-add-2',
        'X-Header-Add-3': 'header-add-3',
        'Another-Header': 'another-header-val',
      },
      absentRequestHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
    }),
  },
  {
    name: 'header names are case-insensitive',
    host: 'echo',
    path: '/case-insensitivity',
    headers: {
      'x-header-set': 'original-val-set',
      'x-header-add': 'original-val-add',
      'x-header-remove': 'original-val-remove',
      'Another-Header': 'another-header-val',
    },
    expect: ok('echo-v1', {
      requestHeaders: { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'Another-Header': 'another-header-val' },
      absentRequestHeaders: ['x-header-remove', 'X-Header-Remove'],
    }),
  },
];

/** The header modifier rules, at rule level (`where: 'rule'`) or backendRef level. */
function headerModifierRoute(where: 'rule' | 'backend'): string {
  const rule = (prefix: string, modifier: string) => {
    const filter = `- type: RequestHeaderModifier
  requestHeaderModifier:
${modifier}`;
    const indent = (s: string, n: number) =>
      s
        .split('\n')
        .map((l) => ' '.repeat(n) + l)
        .join('\n');
    return where === 'rule'
      ? `  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}
    filters:
${indent(filter, 4)}
    backendRefs:
    - name: echo-v1
      port: 8080
`
      : `  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}
    backendRefs:
    - name: echo-v1
      port: 8080
      filters:
${indent(filter, 6)}
`;
  };
  return route(
    'mesh-request-header-modifier',
    [
      rule('/set', '    set:\n    - name: X-Header-Set\n      value: set-overwrites-values'),
      rule('/add', '    add:\n    - name: X-Header-Add\n      value: add-appends-values'),
      rule('/remove', '    remove:\n    - X-Header-Remove'),
      rule(
        '/multiple',
        [
          '    set:',
          '    - name: X-Header-Set-1',
          '      value: header-set-1',
          '    - name: X-Header-Set-2',
          '      value: header-set-2',
          '    add:',
          '    - name: X-Header-Add-1',
          '      value: header-add-1',
          '    - name: X-Header-Add-2',
          '      value: header-add-2',
          '    - name: X-Header-Add-3',
          '      value: header-add-3',
          '    remove:',
          '    - X-Header-Remove-1',
          '    - X-Header-Remove-2',
        ].join('\n'),
      ),
      rule(
        '/case-insensitivity',
        [
          '    set:',
          '    - name: X-Header-Set',
          '      value: header-set',
          '    add:',
          '    - name: X-Header-Add',
          '      value: header-add',
          '    remove:',
          '    - X-Header-Remove',
        ].join('\n'),
      ),
    ].join(''),
  );
}

const setHeaderFilter = (value: string) => `    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set
          value: ${value}`;

export const SCENARIOS: Scenario[] = [
  // ---- v1.1.0 -----------------------------------------------------------------
  {
    name: 'MeshBasic',
    description: 'A mesh client can communicate with a mesh server. This tests basic reachability with no configuration applied.',
    features: ['Mesh'],
    manifests: '',
    cases: [{ name: "request to 'echo' should receive a 200", host: 'echo', path: '', expect: { status: 200 } }],
  },
  {
    name: 'MeshConsumerRoute',
    description: "An HTTPRoute in a namespace other than its parentRef's namespace only affects requests from the route's namespace",
    features: ['Mesh', 'MeshConsumerRoute', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-echo-add-header
  namespace: ${CONSUMER_NS}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-v1
    namespace: ${MESH_NS}
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set
          value: set
    backendRefs:
    - name: echo-v1
      namespace: ${MESH_NS}
      port: 80
`,
    cases: [
      {
        name: "request from consumer route's namespace modified by HTTPRoute",
        from: 'consumer',
        host: `echo-v1.${MESH_NS}`,
        path: '/',
        expect: ok('echo-v1', { headers: { 'X-Header-Set': 'set' } }),
      },
      {
        name: "request not from consumer route's namespace not modified by HTTPRoute",
        from: 'producer',
        host: `echo-v1.${MESH_NS}`,
        path: '/',
        expect: ok('echo-v1', { absentHeaders: ['X-Header-Set'] }),
      },
    ],
  },
  {
    name: 'MeshFrontend',
    description: 'Mesh rules should only apply to the associated frontend',
    features: ['Mesh', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: route('mesh-split-v1', `  - ${setHeaderFilter('set').trimStart()}\n    backendRefs:\n    - name: echo-v2\n      port: 80\n`, null, 'echo-v2'),
    cases: [
      { name: 'Send to service', host: 'echo-v2', path: '', expect: ok('echo-v2', { headers: { 'X-Header-Set': 'set' } }) },
      { name: 'Send to pod IP', host: '{pod:echo-v2}:8080', path: '', expect: ok('echo-v2', { absentHeaders: ['X-Header-Set'] }) },
    ],
  },
  {
    name: 'MeshFrontendHostname',
    description: 'Mesh parentRef matches Service IP (not Host)',
    features: ['Mesh', 'MeshClusterIPMatching', 'HTTPRoute', 'HTTPRouteResponseHeaderModification'],
    manifests: '',
    cases: [],
    localSkip:
      'needs ClusterIP interception (a connection to one Service with the Host header of another): ' +
      'it runs in the network-namespace test bed, e2e/conformance-frontend-hostname.test.ts',
  },
  {
    name: 'MeshPorts',
    description: "A mesh route can optionally configure 'port' in parentRef",
    features: ['Mesh', 'HTTPRoute', 'HTTPRouteParentRefPort', 'HTTPRouteResponseHeaderModification'],
    manifests:
      route('mesh-split-v1', `  - ${setHeaderFilter('v1').trimStart()}\n    backendRefs:\n    - name: echo-v1\n      port: 80\n`, 80, 'echo-v1') +
      '---\n' +
      route('mesh-split-v2', `  - ${setHeaderFilter('v2').trimStart()}\n    backendRefs:\n    - name: echo-v2\n      port: 80\n`, null, 'echo-v2'),
    cases: [
      { name: 'Explicit port set, send to that port', host: 'echo-v1', path: '', expect: ok('echo-v1', { headers: { 'X-Header-Set': 'v1' } }) },
      { name: 'Explicit port, send to an excluded port', host: 'echo-v1:8080', path: '', expect: ok('echo-v1', { absentHeaders: ['X-Header-Set'] }) },
      { name: 'No port set', host: 'echo-v2', path: '', expect: ok('echo-v2', { headers: { 'X-Header-Set': 'v2' } }) },
      { name: 'No port set#01', host: 'echo-v2:8080', path: '', expect: ok('echo-v2', { headers: { 'X-Header-Set': 'v2' } }) },
    ],
  },
  {
    name: 'MeshTrafficSplit',
    description: 'A mesh client can send traffic to a Service which is split between two versions',
    features: ['Mesh', 'HTTPRoute'],
    manifests: route(
      'mesh-split',
      `  - matches:
    - path:
        type: Exact
        value: /v1
    backendRefs:
    - name: echo-v1
      port: 80
  - matches:
    - path:
        type: Exact
        value: /v2
    backendRefs:
    - name: echo-v2
      port: 80
`,
      null,
    ),
    cases: [
      { name: "request to 'echo/v1' should go to echo-v1", host: 'echo', path: '/v1', expect: ok('echo-v1') },
      { name: "request to 'echo/v2' should go to echo-v2", host: 'echo', path: '/v2', expect: ok('echo-v2') },
    ],
  },

  // ---- added to the mesh suite after v1.1.0 -----------------------------------------
  {
    name: 'MeshHTTPRouteMatching',
    description: 'A single HTTPRoute with path and header matching for different backends',
    features: ['Mesh', 'HTTPRoute'],
    manifests: route(
      'mesh-matching',
      `  - matches:
    - path:
        type: PathPrefix
        value: /
    - headers:
      - name: version
        value: one
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /v2
    - headers:
      - name: version
        value: two
    backendRefs:
    - name: echo-v2
      port: 8080
`,
    ),
    cases: [
      { name: '/ goes to v1', host: 'echo', path: '/', expect: ok('echo-v1') },
      { name: '/example goes to v1', host: 'echo', path: '/example', expect: ok('echo-v1') },
      { name: 'version: one goes to v1', host: 'echo', path: '/', headers: { Version: 'one' }, expect: ok('echo-v1') },
      { name: '/v2 goes to v2', host: 'echo', path: '/v2', expect: ok('echo-v2') },
      { name: '/v2/example goes to v2', host: 'echo', path: '/v2/example', expect: ok('echo-v2') },
      { name: 'version: two goes to v2', host: 'echo', path: '/', headers: { Version: 'two' }, expect: ok('echo-v2') },
      { name: '/v2/ goes to v2', host: 'echo', path: '/v2/', expect: ok('echo-v2') },
      { name: '/v2example is not a segment prefix of /v2', host: 'echo', path: '/v2example', expect: ok('echo-v1') },
      { name: '/foo/v2/example goes to v1', host: 'echo', path: '/foo/v2/example', expect: ok('echo-v1') },
    ],
  },
  {
    name: 'MeshHTTPRouteQueryParamMatching',
    description: 'A single HTTPRoute with query param matching for different backends',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteQueryParamMatching'],
    manifests: route(
      'mesh-query-param-matching',
      `  - matches:
    - queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: dolphin
    backendRefs:
    - name: echo-v2
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /path1
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - headers:
      - name: version
        value: one
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: echo-v2
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /path3
      queryParams:
      - name: animal
        value: shark
    - path:
        type: PathPrefix
        value: /path4
      headers:
      - name: version
        value: three
      queryParams:
      - name: animal
        value: kraken
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /path5
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - queryParams:
      - name: animal
        value: hydra
    backendRefs:
    - name: echo-v2
      port: 8080
`,
    ),
    cases: [
      { name: 'animal=whale', host: 'echo', path: '/?animal=whale', expect: ok('echo-v1') },
      { name: 'animal=dolphin', host: 'echo', path: '/?animal=dolphin', expect: ok('echo-v2') },
      { name: 'animal=whale and another', host: 'echo', path: '/?animal=whale&otherparam=irrelevant', expect: ok('echo-v1') },
      { name: 'animal=dolphin and another', host: 'echo', path: '/?animal=dolphin&color=yellow', expect: ok('echo-v2') },
      { name: 'color=blue matches nothing', host: 'echo', path: '/?color=blue', expect: { status: 404 } },
      { name: 'animal=dog matches nothing', host: 'echo', path: '/?animal=dog', expect: { status: 404 } },
      { name: 'animal=whaledolphin matches nothing', host: 'echo', path: '/?animal=whaledolphin', expect: { status: 404 } },
      { name: 'no query matches nothing', host: 'echo', path: '/', expect: { status: 404 } },
      { name: 'path and query', host: 'echo', path: '/path1?animal=whale', expect: ok('echo-v1') },
      { name: 'header and query beat query alone', host: 'echo', path: '/?animal=whale', headers: { version: 'one' }, expect: ok('echo-v2') },
      { name: 'first of two ORed matches', host: 'echo', path: '/path3?animal=shark', expect: ok('echo-v1') },
      { name: 'second of two ORed matches', host: 'echo', path: '/path4?animal=kraken', headers: { version: 'three' }, expect: ok('echo-v1') },
      { name: 'a subset of ANDed conditions does not match (query only)', host: 'echo', path: '/?animal=shark', expect: { status: 404 } },
      { name: 'a subset of ANDed conditions does not match (no header)', host: 'echo', path: '/path4?animal=kraken', expect: { status: 404 } },
      { name: 'a path match outranks a query match', host: 'echo', path: '/path5?animal=hydra', expect: ok('echo-v1') },
    ],
  },
  {
    name: 'MeshHTTPRouteWeight',
    description: 'An HTTPRoute with weighted backends',
    features: ['Mesh', 'HTTPRoute'],
    manifests: route(
      'mesh-weighted-backends',
      `  - backendRefs:
    - name: echo-v1
      port: 8080
      weight: 70
    - name: echo-v2
      port: 8080
      weight: 30
`,
    ),
    cases: [{ name: 'the route serves', host: 'echo', path: '/', expect: { status: 200 } }],
    // Upstream: 500 requests, each backend within 5 points of its share, up to 10 tries.
    weights: {
      request: { name: 'distribution', host: 'echo', path: '/', expect: { status: 200 } },
      expected: { 'echo-v1': 0.7, 'echo-v2': 0.3 },
      requests: 500,
      tolerance: 0.05,
    },
  },
  {
    name: 'MeshHTTPRouteRequestHeaderModifier',
    description: 'An HTTPRoute has request header modifier filters applied correctly',
    features: ['Mesh', 'HTTPRoute'],
    manifests: headerModifierRoute('rule'),
    cases: headerModifierCases(),
  },
  {
    name: 'MeshHTTPRouteBackendRequestHeaderModifier',
    description: 'An HTTPRoute backend has request header modifier filters applied correctly',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteBackendRequestHeaderModification'],
    manifests: headerModifierRoute('backend'),
    cases: headerModifierCases(),
  },
  {
    name: 'MeshHTTPRouteRedirectHostAndStatus',
    description: 'An HTTPRoute with hostname and statusCode redirect filters',
    features: ['Mesh', 'HTTPRoute'],
    manifests: route(
      'mesh-redirect-host-and-status',
      [
        redirectRule('/hostname-redirect', '        hostname: example.org'),
        redirectRule('/host-and-status', '        statusCode: 301\n        hostname: example.org'),
      ].join('\n') + '\n',
    ),
    cases: [
      redirectCase('/hostname-redirect', 302, { host: 'example.org' }),
      redirectCase('/host-and-status', 301, { host: 'example.org' }),
    ],
  },
  {
    name: 'MeshHTTPRouteRedirectPath',
    description: 'An HTTPRoute with path redirect filters',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRedirectPath'],
    manifests: route(
      'mesh-redirect-path',
      [
        redirectRule('/original-prefix', '        path:\n          type: ReplacePrefixMatch\n          replacePrefixMatch: /replacement-prefix'),
        redirectRule('/full', '        path:\n          type: ReplaceFullPath\n          replaceFullPath: /full-path-replacement'),
        redirectRule(
          '/path-and-host',
          '        hostname: example.org\n        path:\n          type: ReplacePrefixMatch\n          replacePrefixMatch: /replacement-prefix',
        ),
        redirectRule(
          '/path-and-status',
          '        path:\n          type: ReplacePrefixMatch\n          replacePrefixMatch: /replacement-prefix\n        statusCode: 301',
        ),
        redirectRule(
          '/full-path-and-host',
          '        hostname: example.org\n        path:\n          type: ReplaceFullPath\n          replaceFullPath: /replacement-full',
        ),
        redirectRule(
          '/full-path-and-status',
          '        path:\n          type: ReplaceFullPath\n          replaceFullPath: /replacement-full\n        statusCode: 301',
        ),
      ].join('\n') + '\n',
    ),
    cases: [
      redirectCase('/original-prefix/lemon', 302, { path: '/replacement-prefix/lemon' }),
      redirectCase('/full/path/original', 302, { path: '/full-path-replacement' }),
      redirectCase('/path-and-host', 302, { host: 'example.org', path: '/replacement-prefix' }),
      redirectCase('/path-and-status', 301, { path: '/replacement-prefix' }),
      redirectCase('/full-path-and-host', 302, { host: 'example.org', path: '/replacement-full' }),
      redirectCase('/full-path-and-status', 301, { path: '/replacement-full' }),
    ],
  },
  {
    name: 'MeshHTTPRouteRedirectPort',
    description: 'An HTTPRoute with a port redirect filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRedirectPort'],
    manifests: route(
      'mesh-redirect-port',
      [
        redirectRule('/port', '        port: 8083'),
        redirectRule('/port-and-host', '        hostname: example.org\n        port: 8083'),
        redirectRule('/port-and-status', '        port: 8083\n        statusCode: 301'),
        redirectRule('/port-and-host-and-status', '        port: 8083\n        hostname: example.org\n        statusCode: 302'),
      ].join('\n') + '\n',
    ),
    cases: [
      redirectCase('/port', 302, { port: '8083' }),
      redirectCase('/port-and-host', 302, { host: 'example.org', port: '8083' }),
      redirectCase('/port-and-status', 301, { port: '8083' }),
      redirectCase('/port-and-host-and-status', 302, { host: 'example.org', port: '8083' }),
    ],
  },
  {
    name: 'MeshHTTPRouteSchemeRedirect',
    description: 'An HTTPRoute with a scheme redirect filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteSchemeRedirect'],
    manifests: route(
      'mesh-redirect-scheme',
      [
        redirectRule('/scheme', '        scheme: "https"'),
        redirectRule('/scheme-and-host', '        hostname: example.org\n        scheme: "https"'),
        redirectRule('/scheme-and-status', '        scheme: "https"\n        statusCode: 301'),
        redirectRule('/scheme-and-host-and-status', '        scheme: "https"\n        statusCode: 302\n        hostname: example.org'),
      ].join('\n') + '\n',
    ),
    cases: [
      redirectCase('/scheme', 302, { scheme: 'https' }),
      redirectCase('/scheme-and-host', 302, { host: 'example.org', scheme: 'https' }),
      redirectCase('/scheme-and-status', 301, { scheme: 'https' }),
      redirectCase('/scheme-and-host-and-status', 302, { scheme: 'https', host: 'example.org' }),
    ],
  },
  // Provisional upstream tests, one per redirect status code added after v1.1.
  ...([
    [303, '/redirect'],
    [307, '/temporary'],
    [308, '/permanent'],
  ] as const).map(
    ([code, path]): Scenario => ({
      name: `MeshHTTPRoute${code}Redirect`,
      description: `An HTTPRoute with statusCode ${code} redirect filter`,
      features: ['Mesh', 'HTTPRoute', `HTTPRoute${code}RedirectStatusCode`],
      provisional: true,
      manifests: route(`mesh-${code}-redirect`, redirectRule(path, `        statusCode: ${code}`) + '\n'),
      cases: [redirectCase(path, code, { path })],
    }),
  ),
  {
    name: 'MeshHTTPRouteRewritePath',
    description: 'An HTTPRoute with path rewrite filter',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteRewritePath'],
    manifests: route(
      'mesh-rewrite-path',
      [
        ['/prefix/one', 'ReplacePrefixMatch', '/one', ''],
        ['/strip-prefix', 'ReplacePrefixMatch', '/', ''],
        ['/full/one', 'ReplaceFullPath', '/one', ''],
        ['/full/rewrite-path-and-modify-headers', 'ReplaceFullPath', '/test', 'headers'],
        ['/prefix/rewrite-path-and-modify-headers', 'ReplacePrefixMatch', '/prefix', 'headers'],
      ]
        .map(
          ([prefix, type, value, headers]) => `  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}
    filters:
    - type: URLRewrite
      urlRewrite:
        path:
          type: ${type}
          ${type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch'}: ${value}
${
  headers
    ? `    - type: RequestHeaderModifier
      requestHeaderModifier:
        set:
        - name: X-Header-Set
          value: set-overwrites-values
        add:
        - name: X-Header-Add
          value: header-val-1
        - name: X-Header-Add-Append
          value: header-val-2
        remove:
        - X-Header-Remove
`
    : ''
}    backendRefs:
    - name: echo-v1
      port: 80
`,
        )
        .join(''),
    ),
    cases: [
      { name: 'prefix rewrite', host: 'echo', path: '/prefix/one/two', expect: ok('echo-v1', { requestPath: '/one/two' }) },
      { name: 'strip a prefix', host: 'echo', path: '/strip-prefix/three', expect: ok('echo-v1', { requestPath: '/three' }) },
      { name: 'strip the whole path', host: 'echo', path: '/strip-prefix', expect: ok('echo-v1', { requestPath: '/' }) },
      { name: 'full path rewrite', host: 'echo', path: '/full/one/two', expect: ok('echo-v1', { requestPath: '/one' }) },
      {
        name: 'full path rewrite and header edits',
        host: 'echo',
        path: '/full/rewrite-path-and-modify-headers/test',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' },
        expect: ok('echo-v1', {
          requestPath: '/test',
          requestHeaders: { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' },
          absentRequestHeaders: ['X-Header-Remove'],
        }),
      },
      {
        name: 'prefix rewrite and header edits',
        host: 'echo',
        path: '/prefix/rewrite-path-and-modify-headers/one',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' },
        expect: ok('echo-v1', {
          requestPath: '/prefix/one',
          requestHeaders: { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' },
          absentRequestHeaders: ['X-Header-Remove'],
        }),
      },
    ],
  },
  {
    name: 'MeshHTTPRouteNamedRule',
    description: 'An HTTPRoute with a named HTTPRouteRule',
    features: ['Mesh', 'HTTPRoute', 'MeshHTTPRouteNamedRouteRule'],
    provisional: true,
    manifests: route(
      'mesh-http-named-rules',
      `  - name: named-rule
    matches:
    - path:
        type: PathPrefix
        value: /named
    backendRefs:
    - name: echo-v1
      port: 8080
  - matches:
    - path:
        type: PathPrefix
        value: /unnamed
    backendRefs:
    - name: echo-v2
      port: 8080
`,
    ),
    cases: [
      { name: 'the named rule routes', host: 'echo', path: '/named', expect: ok('echo-v1') },
      { name: 'the unnamed rule routes', host: 'echo', path: '/unnamed', expect: ok('echo-v2') },
    ],
  },
  {
    name: 'MeshHTTPRouteSimpleSameNamespace',
    description: 'A single HTTPRoute in the gateway-conformance-mesh namespace attaches to a Service in the same namespace',
    features: ['Mesh', 'HTTPRoute'],
    manifests: route('gateway-conformance-mesh-test', '  - backendRefs:\n    - name: echo-v1\n      port: 8080\n'),
    cases: [{ name: 'routes to echo-v1', host: 'echo', path: '/', expect: ok('echo-v1') }],
  },
];

/** conformance/mesh/manifests.yaml, as a weft local-mode config dir (echo as the app). */
export function baseManifests(echoApp: string, grpcApp?: string): string {
  const svc = (name: string, selector: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${MESH_NS}
spec:
  selector: ${selector}
  ports:
  - { name: http, port: 80, appProtocol: http, targetPort: 8080 }
  - { name: http-alt, port: 8080, appProtocol: http }
${grpcApp ? '  - { name: grpc, port: 7070, appProtocol: grpc }\n' : ''}`;
  const workload = (name: string, ns: string, version: string) => `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  command: [node, ${JSON.stringify(grpcApp ?? echoApp)}]
  serviceAccount: default
  labels: { app: echo, version: ${version} }
  ports: [8080${grpcApp ? ', 7070' : ''}]
  env: { PORTS: "8080"${grpcApp ? ', GRPC_PORT: "7070"' : ''} }
`;
  const ns = (name: string, label: string) => `apiVersion: v1
kind: Namespace
metadata:
  name: ${name}
  labels: { gateway-conformance: ${label}, weft.io/inject: enabled }
`;
  return [
    ns(MESH_NS, 'mesh'),
    ns(CONSUMER_NS, 'mesh-consumer'),
    svc('echo', '{ app: echo }'),
    svc('echo-v1', '{ app: echo, version: v1 }'),
    svc('echo-v2', '{ app: echo, version: v2 }'),
    workload('echo-v1', MESH_NS, 'v1'),
    workload('echo-v2', MESH_NS, 'v2'),
    workload('echo-v1', CONSUMER_NS, 'v1'),
  ].join('---\n');
}

// ---- Mesh-GRPC (conformance/tests/mesh/grpcroute-*.go) ---------------------------
// gRPC cases are unary weft.test.Echo/Echo calls from the echo-v1 pod's app
// to its sidecar (h2c), to `echo:7070`; the echo app's gRPC side answers
// with its pod name and the metadata it received (conformance/apps/grpc-echo-app.mjs).

const grpcRoute = (name: string, body: string) =>
  `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: ${name}
  namespace: ${MESH_NS}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo
    port: 7070
  rules:
${body}`;

const grpcHeaderRule = (value: string, modifier: string, backend: string) => `  - matches:
    - headers:
      - name: x-test-case
        value: ${value}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
${modifier}    backendRefs:
    - name: ${backend}
      port: 7070
`;

const grpcCase = (name: string, headers: Record<string, string>, expect: Expect): Case => ({ name, host: 'echo:7070', path: '', protocol: 'grpc', headers, expect });

export const GRPC_SCENARIOS: Scenario[] = [
  {
    name: 'MeshGRPCRouteWeight',
    description: 'A GRPCRoute with weighted backends in mesh mode',
    features: ['Mesh', 'GRPCRoute'],
    manifests: grpcRoute(
      'mesh-grpc-weighted-backends',
      `  - backendRefs:
    - name: echo-v1
      port: 7070
      weight: 70
    - name: echo-v2
      port: 7070
      weight: 30
    - name: echo-v3
      port: 7070
      weight: 0
`,
    ),
    cases: [grpcCase('the route serves', {}, { status: 200 })],
    weights: {
      request: grpcCase('distribution', {}, { status: 200 }),
      expected: { 'echo-v1': 0.7, 'echo-v2': 0.3 },
      requests: 500,
      tolerance: 0.05,
    },
  },
  {
    name: 'MeshGRPCRouteRequestHeaderModifier',
    description: 'A GRPCRoute with RequestHeaderModifier filter should modify request headers in mesh mode',
    features: ['Mesh', 'GRPCRoute'],
    manifests: grpcRoute(
      'grpc-request-header-modifier',
      grpcHeaderRule('set', '        set:\n        - name: x-header-set\n          value: set-overwrites-values\n', 'echo-v1') +
        grpcHeaderRule('add', '        add:\n        - name: x-header-add\n          value: add-appends-values\n', 'echo-v1') +
        grpcHeaderRule('remove', '        remove:\n        - x-header-remove\n', 'echo-v1') +
        grpcHeaderRule(
          'multi',
          [
            '        set:',
            '        - name: x-header-set-1',
            '          value: header-set-1',
            '        - name: x-header-set-2',
            '          value: header-set-2',
            '        add:',
            '        - name: x-header-add-1',
            '          value: header-add-1',
            '        - name: x-header-add-2',
            '          value: header-add-2',
            '        remove:',
            '        - x-header-remove-1',
            '        - x-header-remove-2',
            '',
          ].join('\n'),
          'echo-v2',
        ),
    ),
    cases: [
      grpcCase(
        'set overwrites an existing header',
        { 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'this-value-should-be-overwritten' },
        ok('echo-v1', { requestHeaders: { 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'set-overwrites-values' } }),
      ),
      grpcCase(
        'add appends to an existing header',
        { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended' },
        ok('echo-v1', { requestHeaders: { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended,add-appends-values' } }),
      ),
      grpcCase(
        'remove removes a header',
        { 'x-test-case': 'remove', 'x-header-remove': 'this-should-be-removed' },
        ok('echo-v1', { requestHeaders: { 'x-test-case': 'remove' }, absentRequestHeaders: ['x-header-remove'] }),
      ),
      grpcCase(
        'set, add and remove together',
        { 'x-test-case': 'multi', 'x-header-set-2': 'set-header-2', 'x-header-add-2': 'add-header-2', 'x-header-remove-2': 'should-be-removed-2' },
        ok('echo-v2', {
          requestHeaders: { 'x-test-case': 'multi', 'x-header-set-1': 'header-set-1', 'x-header-set-2': 'header-set-2', 'x-header-add-1': 'header-add-1', 'x-header-add-2': 'add-header-2,header-add-2' },
          absentRequestHeaders: ['x-header-remove-1', 'x-header-remove-2'],
        }),
      ),
    ],
  },
];

SCENARIOS.push(...GRPC_SCENARIOS);

// One Service config that exercises every match kind and every filter, and
// the table of requests with what must happen to each. decide.test.ts checks
// the decision for each case; adapters-parity.test.ts sends each case
// through the HTTP/1.1 and the HTTP/2 adapter with real sockets and checks
// both protocols end the same way.
import type { BackendConfig, BackendTLS, CompiledRule, Endpoint, Filter, MatchEntry, ServiceConfig, SessionConfig, ValueMatch } from '../../../api/index.js';

export interface Hosts {
  /** A meshed endpoint (behind a sidecar). */
  meshed: string;
  /** An endpoint without a sidecar. */
  plain: string;
  /** The mirror endpoint (no sidecar). */
  mirror: string;
  /** An HTTPS endpoint (BackendTLSPolicy), serving `TLS_HOST`. */
  tls: string;
  /** Nothing listens there. */
  nothing: string;
}

export const APP_PORT = 8080;
export const TLS_PORT = 8443;
export const TLS_HOST = 'backend.example.test';
export const SERVICE_PORT = 80;

export type AppName = 'meshed' | 'plain' | 'mirror' | 'tls';

export interface CaseWant {
  /** Status the caller sees (the app answers 200). */
  status: number;
  /** weft-proxy-error the mesh sets (absent when undefined). */
  proxyError?: RegExp;
  location?: string;
  /** Which app served the request. */
  app?: AppName;
  /** Backend key decide() picks. */
  backend?: string;
  /** Request target and authority the app saw. */
  upstreamPath?: string;
  upstreamHost?: string;
  /** Request headers the app saw (undefined: absent). */
  seen?: Record<string, string | undefined>;
  /** Response headers the caller sees (undefined: absent; a RegExp: matches). */
  response?: Record<string, string | RegExp | undefined>;
  /** An app that receives a mirrored copy (same path). */
  mirror?: AppName;
  /** decide() forwards; the failure happens on the way (refused, reset, TLS). */
  upstreamFailure?: boolean;
}

export interface RouteCase {
  name: string;
  method?: string;
  /** path?query */
  path: string;
  headers?: Record<string, string>;
  want: CaseWant;
}

const meshedEp = (h: Hosts): Endpoint => ({ ip: h.meshed, port: APP_PORT, identity: { namespace: 'demo', serviceAccount: 'echo' }, ready: true, workload: 'echo' });
const plainEp = (h: Hosts): Endpoint => ({ ip: h.plain, port: APP_PORT, ready: true });

const hm = (set: Array<[string, string]>, add: Array<[string, string]> = [], remove: string[] = []) => ({ set, add, remove });
const to = (b: string, weight = 1, filters: Filter[] = []) => ({ backend: `demo/${b}:80`, weight, filters });

export const SESSION_COOKIE: SessionConfig = { type: 'Cookie', name: 'weft-session', permanent: false, path: '/sess', scope: 'demo/r/sess', source: 'route', idleTimeoutMs: 60_000 };
export const SESSION_HEADER: SessionConfig = { type: 'Header', name: 'x-session', permanent: false, scope: 'demo/r/sessh', source: 'route' };

interface RuleSpec {
  name: string;
  matches: Array<Omit<MatchEntry, 'rule'>>;
  backends: CompiledRule['backends'];
  extra?: Partial<CompiledRule>;
}

const path = (type: MatchEntry['path']['type'], value: string, more: Partial<MatchEntry> = {}): Omit<MatchEntry, 'rule'> => ({ path: { type, value }, headers: [], queryParams: [], ...more });
const v = (name: string, value: string, type: ValueMatch['type'] = 'Exact'): ValueMatch => ({ type, name, value });

function rules(): RuleSpec[] {
  return [
    { name: 'exact', matches: [path('Exact', '/exact')], backends: [to('meshed')] },
    { name: 'prefix', matches: [path('PathPrefix', '/prefix')], backends: [to('plain')] },
    { name: 'regex', matches: [path('RegularExpression', '/re/[0-9]+')], backends: [to('plain')] },
    { name: 'header-exact', matches: [path('PathPrefix', '/h', { headers: [v('x-version', 'v2')] })], backends: [to('plain')] },
    { name: 'header-regex', matches: [path('PathPrefix', '/h', { headers: [v('x-user', 'adm.n-[0-9]+', 'RegularExpression')] })], backends: [to('plain')] },
    { name: 'header-none', matches: [path('PathPrefix', '/h')], backends: [to('meshed')] },
    { name: 'query-exact', matches: [path('PathPrefix', '/q', { queryParams: [v('v', '1')] })], backends: [to('plain')] },
    { name: 'query-regex', matches: [path('PathPrefix', '/q', { queryParams: [v('w', '[a-c]+', 'RegularExpression')] })], backends: [to('meshed')] },
    { name: 'method', matches: [path('PathPrefix', '/m', { method: 'POST' })], backends: [to('plain')] },
    {
      name: 'reqhdr',
      matches: [path('PathPrefix', '/reqhdr')],
      backends: [to('plain', 1, [{ type: 'RequestHeaderModifier', ...hm([['x-backend', 'plain']]) }])],
      extra: { filters: [{ type: 'RequestHeaderModifier', ...hm([['X-A', '1']], [['x-b', '2']], ['x-c']) }] },
    },
    {
      name: 'resphdr',
      matches: [path('PathPrefix', '/resphdr')],
      backends: [to('plain', 1, [{ type: 'ResponseHeaderModifier', ...hm([['x-backend-resp', 'b']]) }])],
      extra: { filters: [{ type: 'ResponseHeaderModifier', ...hm([['x-resp', 'yes']], [['x-from-app', 'more']], ['x-drop']) }] },
    },
    { name: 'redirect', matches: [path('PathPrefix', '/old')], backends: [], extra: { filters: [{ type: 'RequestRedirect', scheme: 'https', statusCode: 302, path: { type: 'ReplacePrefixMatch', value: '/moved' } }] } },
    { name: 'redirect-full', matches: [path('Exact', '/redir2')], backends: [], extra: { filters: [{ type: 'RequestRedirect', hostname: 'elsewhere.example', port: 8080, statusCode: 301, path: { type: 'ReplaceFullPath', value: '/full' } }] } },
    { name: 'rewrite-prefix', matches: [path('PathPrefix', '/rewrite')], backends: [to('plain')], extra: { filters: [{ type: 'URLRewrite', hostname: 'rewritten.example', path: { type: 'ReplacePrefixMatch', value: '/new' } }] } },
    { name: 'rewrite-full', matches: [path('PathPrefix', '/rwfull')], backends: [to('meshed')], extra: { filters: [{ type: 'URLRewrite', path: { type: 'ReplaceFullPath', value: '/full' } }] } },
    { name: 'mirror', matches: [path('PathPrefix', '/mirror')], backends: [to('meshed')], extra: { filters: [{ type: 'RequestMirror', backend: 'demo/mirror:80' }] } },
    { name: 'mirror-tls', matches: [path('PathPrefix', '/mtls')], backends: [to('plain')], extra: { filters: [{ type: 'RequestMirror', backend: 'demo/tls:80' }] } },
    { name: 'fixed', matches: [path('Exact', '/fixed')], backends: [], extra: { fixed: { status: 500, reason: 'ExtensionRef filter is not supported' } } },
    { name: 'invalid', matches: [path('PathPrefix', '/invalid')], backends: [{ backend: '', weight: 1, filters: [], invalid: { status: 500, reason: 'backendRef demo/missing not found' } }] },
    { name: 'zero', matches: [path('PathPrefix', '/zero')], backends: [to('plain', 0)] },
    { name: 'noeps', matches: [path('PathPrefix', '/noeps')], backends: [to('empty')] },
    { name: 'tls', matches: [path('PathPrefix', '/tls')], backends: [to('tls')] },
    { name: 'tls-invalid', matches: [path('PathPrefix', '/badtls')], backends: [to('badtls')] },
    { name: 'refused', matches: [path('PathPrefix', '/refused')], backends: [to('nothing')] },
    { name: 'wrong-identity', matches: [path('PathPrefix', '/wrongid')], backends: [to('wrongid')] },
    { name: 'session-cookie', matches: [path('PathPrefix', '/sess')], backends: [to('pair')], extra: { session: SESSION_COOKIE } },
    { name: 'session-header', matches: [path('PathPrefix', '/sessh')], backends: [to('pair')], extra: { session: SESSION_HEADER } },
    { name: 'timeouts', matches: [path('PathPrefix', '/slow')], backends: [to('meshed')], extra: { timeouts: { requestMs: 5000, backendRequestMs: 3000 } } },
  ];
}

/** The Service demo/echo (port 80) with one rule per behaviour. */
export function routeCasesService(h: Hosts, tlsCaPem: string): ServiceConfig {
  const tls = (policy: string, extra: Partial<BackendTLS> = {}): BackendTLS => ({ hostname: TLS_HOST, policy: `demo/${policy}`, caPem: tlsCaPem, ...extra });
  const be = (name: string, endpoints: Endpoint[], extra: Partial<BackendConfig> = {}): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints, ...extra });
  const specs = rules();
  // Already in precedence order (headers before none on '/h'); no two other prefixes overlap.
  const matches: MatchEntry[] = [];
  specs.forEach((s, i) => {
    for (const m of s.matches) matches.push({ ...m, rule: i });
  });
  return {
    service: 'demo/echo', namespace: 'demo', name: 'echo', consumerNamespace: 'demo', clusterIP: '10.96.0.10', sessionSecret: Buffer.alloc(32, 7).toString('base64'),
    backends: {
      'demo/meshed:80': be('meshed', [meshedEp(h)]),
      'demo/plain:80': be('plain', [plainEp(h)]),
      'demo/mirror:80': be('mirror', [{ ip: h.mirror, port: APP_PORT, ready: true }]),
      'demo/tls:80': be('tls', [{ ip: h.tls, port: TLS_PORT, ready: true }], { tls: tls('tls') }),
      'demo/badtls:80': be('badtls', [{ ip: h.tls, port: TLS_PORT, ready: true }], { tls: tls('badtls', { invalid: 'ConfigMap demo/missing-ca not found' }) }),
      'demo/nothing:80': be('nothing', [{ ip: h.nothing, port: APP_PORT, ready: true }]),
      // The meshed pod, listed with an identity it does not have: the hop must refuse to talk to it.
      'demo/wrongid:80': be('wrongid', [{ ...meshedEp(h), identity: { namespace: 'demo', serviceAccount: 'other' } }]),
      'demo/empty:80': be('empty', []),
      'demo/pair:80': be('pair', [meshedEp(h), plainEp(h)]),
      'demo/echo:80': be('echo', [meshedEp(h)]),
    },
    ports: [{
      port: SERVICE_PORT, targetPort: APP_PORT, appProtocol: 'http', routeKind: 'HTTPRoute', defaultBackend: 'demo/echo:80',
      rules: specs.map((s, i) => ({ route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: i, ruleName: s.name }, filters: [], backends: s.backends, ...s.extra })),
      matches,
    }],
  };
}

/** Every case, with the outcome both protocols must produce. */
export const ROUTE_CASES: RouteCase[] = [
  { name: 'Exact path', path: '/exact', want: { status: 200, app: 'meshed', backend: 'demo/meshed:80', upstreamPath: '/exact' } },
  { name: 'Exact path does not match a longer path', path: '/exact/more', want: { status: 404, proxyError: /no route of service demo\/echo port 80 matches/ } },
  { name: 'PathPrefix matches whole elements', path: '/prefix/a/b?x=1', want: { status: 200, app: 'plain', upstreamPath: '/prefix/a/b?x=1' } },
  { name: 'PathPrefix does not match a longer element', path: '/prefixed', want: { status: 404, proxyError: /no route/ } },
  { name: 'RegularExpression path', path: '/re/123', want: { status: 200, app: 'plain' } },
  { name: 'RegularExpression must match the whole path', path: '/re/12x', want: { status: 404, proxyError: /no route/ } },
  { name: 'header Exact match', path: '/h/x', headers: { 'x-version': 'v2' }, want: { status: 200, app: 'plain', backend: 'demo/plain:80' } },
  { name: 'header values are case-sensitive', path: '/h/x', headers: { 'x-version': 'V2' }, want: { status: 200, app: 'meshed', backend: 'demo/meshed:80' } },
  { name: 'header RegularExpression match', path: '/h/x', headers: { 'x-user': 'admin-42' }, want: { status: 200, app: 'plain' } },
  { name: 'query Exact match', path: '/q?v=1', want: { status: 200, app: 'plain' } },
  { name: 'query RegularExpression match', path: '/q?w=abc', want: { status: 200, app: 'meshed' } },
  { name: 'query without a match is 404', path: '/q?v=2', want: { status: 404, proxyError: /no route/ } },
  { name: 'method match', method: 'POST', path: '/m', want: { status: 200, app: 'plain' } },
  { name: 'method mismatch is 404', path: '/m', want: { status: 404, proxyError: /no route/ } },
  {
    name: 'RequestHeaderModifier: rule set/add/remove, then the backendRef’s',
    path: '/reqhdr',
    headers: { 'x-b': 'old', 'x-c': 'gone', 'x-a': 'replaced' },
    want: { status: 200, app: 'plain', seen: { 'x-a': '1', 'x-b': 'old,2', 'x-c': undefined, 'x-backend': 'plain' } },
  },
  {
    name: 'ResponseHeaderModifier: rule set/add/remove, then the backendRef’s',
    path: '/resphdr',
    want: { status: 200, app: 'plain', response: { 'x-resp': 'yes', 'x-from-app': 'plain,more', 'x-drop': undefined, 'x-backend-resp': 'b' } },
  },
  { name: 'RequestRedirect with scheme and ReplacePrefixMatch', path: '/old/x?y=1', want: { status: 302, location: 'https://echo/moved/x?y=1' } },
  { name: 'RequestRedirect with hostname, port and ReplaceFullPath', path: '/redir2', want: { status: 301, location: 'http://elsewhere.example:8080/full' } },
  { name: 'URLRewrite hostname and ReplacePrefixMatch', path: '/rewrite/a?k=v', want: { status: 200, app: 'plain', upstreamPath: '/new/a?k=v', upstreamHost: 'rewritten.example' } },
  { name: 'URLRewrite ReplaceFullPath keeps the query', path: '/rwfull/a?k=v', want: { status: 200, app: 'meshed', upstreamPath: '/full?k=v', upstreamHost: 'echo' } },
  { name: 'RequestMirror to a plain backend', path: '/mirror/x', want: { status: 200, app: 'meshed', mirror: 'mirror' } },
  { name: 'RequestMirror to a BackendTLSPolicy backend originates TLS', path: '/mtls/x', want: { status: 200, app: 'plain', mirror: 'tls' } },
  { name: 'a rule’s fixed status', path: '/fixed', want: { status: 500, proxyError: /ExtensionRef filter is not supported/ } },
  { name: 'an invalid backendRef is 500', path: '/invalid', want: { status: 500, proxyError: /backendRef demo\/missing not found/ } },
  { name: 'zero weight is 500', path: '/zero', want: { status: 500, proxyError: /no backend with weight > 0/ } },
  { name: 'a backend without endpoints is 503', path: '/noeps', want: { status: 503, proxyError: /no endpoints for demo\/empty:80/ } },
  { name: 'BackendTLSPolicy: TLS originated to the backend', path: '/tls/x', want: { status: 200, app: 'tls', backend: 'demo/tls:80' } },
  { name: 'an invalid BackendTLSPolicy fails closed with 503', path: '/badtls', want: { status: 503, proxyError: /BackendTLSPolicy demo\/badtls: ConfigMap demo\/missing-ca not found/ } },
  { name: 'a refused connection is 503 and says why', path: '/refused', want: { status: 503, proxyError: /connection refused/, upstreamFailure: true, backend: 'demo/nothing:80' } },
  {
    // The peer's inbound refuses a server name that is not its own identity (the handshake is cut) before
    // the outbound could compare SPIFFE IDs: both protocols say so with the same 502.
    name: 'an endpoint listed with another identity is refused with 502 and says why',
    path: '/wrongid',
    want: { status: 502, proxyError: /^upstream (connection reset|identity mismatch)/, upstreamFailure: true, backend: 'demo/wrongid:80' },
  },
  { name: 'session persistence (Cookie): the answer starts a session', path: '/sess', want: { status: 200, response: { 'set-cookie': /^weft-session=[^;]+; Path=\/sess; HttpOnly; SameSite=Lax$/ } } },
  { name: 'session persistence (Header): the answer carries the token', path: '/sessh', want: { status: 200, response: { 'x-session': /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/ } } },
];

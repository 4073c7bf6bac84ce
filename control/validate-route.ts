// Schema, defaults and CEL rules of the v1.1.0 HTTPRoute and GRPCRoute CRDs
// (experimental channel, served version v1), with the CRD's own messages.
// Rule ids (H3, G14, ...) refer to shared/research/gateway-api-v1.1-mesh.md §6.
// Works on a clone: defaults are written into the object as the API server would.
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { checkHTTPRouteRetry } from './validate-retry.js';
import {
  Checker,
  GROUP,
  HEADER_NAME,
  HOSTNAME,
  KIND,
  NAMESPACE,
  PRECISE_HOSTNAME,
  SECTION_NAME,
  isObj,
  type Obj,
} from './validate-checker.js';

const PATH_TYPES = ['Exact', 'PathPrefix', 'RegularExpression'] as const;
const VALUE_MATCH_TYPES = ['Exact', 'RegularExpression'] as const;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
const HTTP_FILTERS = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'ExtensionRef',
] as const;
const GRPC_FILTERS = ['ResponseHeaderModifier', 'RequestHeaderModifier', 'RequestMirror', 'ExtensionRef'] as const;
// v1.1.0 allows 301/302; later versions (v1.2+) add 303/307/308, which the
// newer mesh conformance tests use. Accepting the superset loses nothing.
const REDIRECT_CODES = [301, 302, 303, 307, 308];
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

type RouteKind = 'HTTPRoute' | 'GRPCRoute';

function has(o: Obj | undefined, k: string): boolean {
  return !!o && o[k] !== undefined && o[k] !== null;
}

/** spec.parentRefs: schema, defaults (group gateway.networking.k8s.io, kind Gateway) and H1/H2 (G1/G2). */
export function checkParentRefs(c: Checker, spec: Obj): void {
  const refs = c.arr(spec.parentRefs, 'spec.parentRefs', { max: 32 });
  if (!refs) return;
  refs.forEach((r, i) => {
    const f = `spec.parentRefs[${i}]`;
    const p = c.obj(r, f, true);
    if (!p) return;
    if (p.group === undefined) p.group = 'gateway.networking.k8s.io';
    if (p.kind === undefined) p.kind = 'Gateway';
    c.str(p.group, `${f}.group`, { max: 253, pattern: GROUP });
    c.str(p.kind, `${f}.kind`, { min: 1, max: 63, pattern: KIND });
    c.str(p.name, `${f}.name`, { required: true, min: 1, max: 253 });
    c.str(p.namespace, `${f}.namespace`, { min: 1, max: 63, pattern: NAMESPACE });
    c.str(p.sectionName, `${f}.sectionName`, { min: 1, max: 253, pattern: SECTION_NAME });
    c.int(p.port, `${f}.port`, { min: 1, max: 65535 });
  });
  const ps = refs.filter(isObj);
  const emptyStr = (v: unknown) => v === undefined || v === null || v === '';
  const emptyPort = (v: unknown) => v === undefined || v === null || v === 0;
  const sameParent = (a: Obj, b: Obj) =>
    a.group === b.group &&
    a.kind === b.kind &&
    a.name === b.name &&
    ((emptyStr(a.namespace) && emptyStr(b.namespace)) || (!emptyStr(a.namespace) && a.namespace === b.namespace));
  // H1 / G1
  const h1 = ps.every((a) =>
    ps.every((b) =>
      sameParent(a, b)
        ? emptyStr(a.sectionName) === emptyStr(b.sectionName) && emptyPort(a.port) === emptyPort(b.port)
        : true,
    ),
  );
  if (!h1) {
    c.err('spec.parentRefs', 'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent');
  }
  // H2 / G2
  const h2 = ps.every(
    (a) =>
      ps.filter(
        (b) =>
          sameParent(a, b) &&
          ((emptyStr(a.sectionName) && emptyStr(b.sectionName)) || (!emptyStr(a.sectionName) && a.sectionName === b.sectionName)) &&
          ((emptyPort(a.port) && emptyPort(b.port)) || (!emptyPort(a.port) && a.port === b.port)),
      ).length === 1,
  );
  if (!h2) {
    c.err('spec.parentRefs', 'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent');
  }
}

function checkHostnames(c: Checker, spec: Obj): void {
  const hs = c.arr(spec.hostnames, 'spec.hostnames', { max: 16 });
  hs?.forEach((h, i) => c.str(h, `spec.hostnames[${i}]`, { required: true, min: 1, max: 253, pattern: HOSTNAME }));
}

/** BackendObjectReference: defaults group "" / kind Service, and H8/G3 "Must have port for Service reference". */
export function checkBackendObjectRef(c: Checker, r: Obj, f: string): void {
  if (r.group === undefined) r.group = '';
  if (r.kind === undefined) r.kind = 'Service';
  c.str(r.group, `${f}.group`, { max: 253, pattern: GROUP });
  c.str(r.kind, `${f}.kind`, { min: 1, max: 63, pattern: KIND });
  c.str(r.name, `${f}.name`, { required: true, min: 1, max: 253 });
  c.str(r.namespace, `${f}.namespace`, { min: 1, max: 63, pattern: NAMESPACE });
  c.int(r.port, `${f}.port`, { min: 1, max: 65535 });
  if (r.group === '' && r.kind === 'Service' && !has(r, 'port')) {
    c.err(f, 'Must have port for Service reference');
  }
}

function checkHeaderFilter(c: Checker, v: unknown, f: string): void {
  const h = c.obj(v, f);
  if (!h) return;
  for (const list of ['set', 'add'] as const) {
    const items = c.arr(h[list], `${f}.${list}`, { max: 16 });
    if (!items) continue;
    items.forEach((it, i) => {
      const e = c.obj(it, `${f}.${list}[${i}]`, true);
      if (!e) return;
      c.str(e.name, `${f}.${list}[${i}].name`, { required: true, min: 1, max: 256, pattern: HEADER_NAME });
      c.str(e.value, `${f}.${list}[${i}].value`, { required: true, min: 1, max: 4096 });
    });
    c.uniqueKeys(items, `${f}.${list}`, 'name');
  }
  const rm = c.arr(h.remove, `${f}.remove`, { max: 16 });
  if (rm) {
    rm.forEach((n, i) => c.str(n, `${f}.remove[${i}]`, { required: true }));
    c.uniqueSet(rm, `${f}.remove`);
  }
}

function checkPathModifier(c: Checker, v: unknown, f: string): void {
  const p = c.obj(v, f);
  if (!p) return;
  c.str(p.type, `${f}.type`, { required: true, enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] });
  c.str(p.replaceFullPath, `${f}.replaceFullPath`, { max: 1024 });
  c.str(p.replacePrefixMatch, `${f}.replacePrefixMatch`, { max: 1024 });
  // H26–H29
  if (p.type === 'ReplaceFullPath' && !has(p, 'replaceFullPath')) {
    c.err(f, "replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
  }
  if (has(p, 'replaceFullPath') && p.type !== 'ReplaceFullPath') {
    c.err(f, "type must be 'ReplaceFullPath' when replaceFullPath is set");
  }
  if (p.type === 'ReplacePrefixMatch' && !has(p, 'replacePrefixMatch')) {
    c.err(f, "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'");
  }
  if (has(p, 'replacePrefixMatch') && p.type !== 'ReplacePrefixMatch') {
    c.err(f, "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
  }
}

const FILTER_FIELDS: Array<[string, string]> = [
  ['RequestHeaderModifier', 'requestHeaderModifier'],
  ['ResponseHeaderModifier', 'responseHeaderModifier'],
  ['RequestMirror', 'requestMirror'],
  ['RequestRedirect', 'requestRedirect'],
  ['URLRewrite', 'urlRewrite'],
  ['ExtensionRef', 'extensionRef'],
];

function checkFilters(c: Checker, v: unknown, f: string, kind: RouteKind): void {
  const list = c.arr(v, f, { max: 16 });
  if (!list) return;
  const types = kind === 'HTTPRoute' ? HTTP_FILTERS : GRPC_FILTERS;
  const fields = FILTER_FIELDS.filter(([t]) => (types as readonly string[]).includes(t));
  list.forEach((it, i) => {
    const ff = `${f}[${i}]`;
    const flt = c.obj(it, ff, true);
    if (!flt) return;
    c.str(flt.type, `${ff}.type`, { required: true, enum: types });
    // H14–H25 / G6–G13: the field named by type must be set, the others nil.
    for (const [type, field] of fields) {
      if (has(flt, field) && flt.type !== type) c.err(ff, `filter.${field} must be nil if the filter.type is not ${type}`);
      if (!has(flt, field) && flt.type === type) c.err(ff, `filter.${field} must be specified for ${type} filter.type`);
    }
    checkHeaderFilter(c, flt.requestHeaderModifier, `${ff}.requestHeaderModifier`);
    checkHeaderFilter(c, flt.responseHeaderModifier, `${ff}.responseHeaderModifier`);
    const mirror = c.obj(flt.requestMirror, `${ff}.requestMirror`);
    if (mirror) {
      const br = c.obj(mirror.backendRef, `${ff}.requestMirror.backendRef`, true);
      if (br) checkBackendObjectRef(c, br, `${ff}.requestMirror.backendRef`);
    }
    const ext = c.obj(flt.extensionRef, `${ff}.extensionRef`);
    if (ext) {
      c.str(ext.group, `${ff}.extensionRef.group`, { required: true, max: 253, pattern: GROUP });
      c.str(ext.kind, `${ff}.extensionRef.kind`, { required: true, min: 1, max: 63, pattern: KIND });
      c.str(ext.name, `${ff}.extensionRef.name`, { required: true, min: 1, max: 253 });
    }
    if (kind === 'HTTPRoute') {
      const rr = c.obj(flt.requestRedirect, `${ff}.requestRedirect`);
      if (rr) {
        const rf = `${ff}.requestRedirect`;
        c.str(rr.scheme, `${rf}.scheme`, { enum: ['http', 'https'] });
        c.str(rr.hostname, `${rf}.hostname`, { min: 1, max: 253, pattern: PRECISE_HOSTNAME });
        checkPathModifier(c, rr.path, `${rf}.path`);
        c.int(rr.port, `${rf}.port`, { min: 1, max: 65535 });
        if (rr.statusCode === undefined) rr.statusCode = 302;
        const sc = c.int(rr.statusCode, `${rf}.statusCode`);
        if (sc !== undefined && !REDIRECT_CODES.includes(sc)) {
          c.err(`${rf}.statusCode`, `Unsupported value: ${sc}: supported values: ${REDIRECT_CODES.map((n) => `"${n}"`).join(', ')}`);
        }
      }
      const rw = c.obj(flt.urlRewrite, `${ff}.urlRewrite`);
      if (rw) {
        c.str(rw.hostname, `${ff}.urlRewrite.hostname`, { min: 1, max: 253, pattern: PRECISE_HOSTNAME });
        checkPathModifier(c, rw.path, `${ff}.urlRewrite.path`);
      }
    }
    // A GRPCRoute filter has no requestRedirect or urlRewrite: strict fields (validate-fields.ts) report them.
  });
  const flts = list.filter(isObj);
  const count = (t: string) => flts.filter((x) => x.type === t).length;
  // H9–H13 / G4–G5
  if (kind === 'HTTPRoute' && count('RequestRedirect') > 0 && count('URLRewrite') > 0) {
    c.err(f, 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both');
  }
  const once = kind === 'HTTPRoute'
    ? ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']
    : ['RequestHeaderModifier', 'ResponseHeaderModifier'];
  for (const t of once) if (count(t) > 1) c.err(f, `${t} filter cannot be repeated`);
}

/** SessionPersistence (GEP-1619) schema, defaults and the v1.1.1 form of H41/G17/L1. */
export function checkSessionPersistence(c: Checker, v: unknown, f: string): void {
  const s = c.obj(v, f);
  if (!s) return;
  c.str(s.sessionName, `${f}.sessionName`, { max: 128 });
  c.str(s.absoluteTimeout, `${f}.absoluteTimeout`, { pattern: DURATION_PATTERN });
  c.str(s.idleTimeout, `${f}.idleTimeout`, { pattern: DURATION_PATTERN });
  if (s.type === undefined) s.type = 'Cookie';
  c.str(s.type, `${f}.type`, { enum: ['Cookie', 'Header'] });
  const cc = c.obj(s.cookieConfig, `${f}.cookieConfig`);
  if (cc) {
    if (cc.lifetimeType === undefined) cc.lifetimeType = 'Session';
    c.str(cc.lifetimeType, `${f}.cookieConfig.lifetimeType`, { enum: ['Permanent', 'Session'] });
    // v1.1.0's rule errors when cookieConfig is absent (fixed in v1.1.1, #3221); we follow v1.1.1.
    if (cc.lifetimeType === 'Permanent' && !has(s, 'absoluteTimeout')) {
      c.err(f, 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent');
    }
  }
}

function checkBackendRefs(c: Checker, v: unknown, f: string, kind: RouteKind): void {
  const list = c.arr(v, f, { max: 16 });
  list?.forEach((it, i) => {
    const bf = `${f}[${i}]`;
    const b = c.obj(it, bf, true);
    if (!b) return;
    checkBackendObjectRef(c, b, bf);
    if (b.weight === undefined) b.weight = 1;
    c.int(b.weight, `${bf}.weight`, { min: 0, max: 1_000_000 });
    checkFilters(c, b.filters, `${bf}.filters`, kind);
  });
}

function checkValueMatches(c: Checker, v: unknown, f: string, maxValue: number): void {
  const list = c.arr(v, f, { max: 16 });
  if (!list) return;
  list.forEach((it, i) => {
    const mf = `${f}[${i}]`;
    const m = c.obj(it, mf, true);
    if (!m) return;
    if (m.type === undefined) m.type = 'Exact';
    c.str(m.type, `${mf}.type`, { enum: VALUE_MATCH_TYPES });
    c.str(m.name, `${mf}.name`, { required: true, min: 1, max: 256, pattern: HEADER_NAME });
    c.str(m.value, `${mf}.value`, { required: true, min: 1, max: maxValue });
  });
  c.uniqueKeys(list, f, 'name');
}

function checkHTTPMatch(c: Checker, m: Obj, mf: string): void {
  if (m.path === undefined) m.path = { type: 'PathPrefix', value: '/' };
  const p = c.obj(m.path, `${mf}.path`);
  if (p) {
    if (p.type === undefined) p.type = 'PathPrefix';
    if (p.value === undefined) p.value = '/';
    c.str(p.type, `${mf}.path.type`, { enum: PATH_TYPES });
    const value = c.str(p.value, `${mf}.path.value`, { max: 1024 });
    const pf = `${mf}.path`;
    if (!(PATH_TYPES as readonly string[]).includes(p.type as string)) {
      c.err(pf, "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']"); // H39
    }
    if ((p.type === 'Exact' || p.type === 'PathPrefix') && value !== undefined) {
      // H30–H38, H40
      const t = "when type one of ['Exact', 'PathPrefix']";
      if (!value.startsWith('/')) c.err(pf, `value must be an absolute path and start with '/' ${t}`);
      for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
        if (value.includes(bad)) c.err(pf, `must not contain '${bad}' ${t}`);
      }
      if (value.endsWith('/..')) c.err(pf, `must not end with '/..' ${t}`);
      if (value.endsWith('/.')) c.err(pf, `must not end with '/.' ${t}`);
      if (!PATH_CHARS.test(value)) {
        c.err(pf, "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']");
      }
    }
  }
  checkValueMatches(c, m.headers, `${mf}.headers`, 4096);
  checkValueMatches(c, m.queryParams, `${mf}.queryParams`, 1024);
  c.str(m.method, `${mf}.method`, { enum: METHODS });
}

function checkGRPCMatch(c: Checker, m: Obj, mf: string): void {
  const meth = c.obj(m.method, `${mf}.method`);
  if (meth) {
    const f = `${mf}.method`;
    if (meth.type === undefined) meth.type = 'Exact';
    c.str(meth.type, `${f}.type`, { enum: VALUE_MATCH_TYPES });
    c.str(meth.service, `${f}.service`, { max: 1024 });
    c.str(meth.method, `${f}.method`, { max: 1024 });
    // G14–G16
    if (!has(meth, 'service') && !has(meth, 'method')) c.err(f, "One or both of 'service' or 'method' must be specified");
    if (meth.type === 'Exact' && typeof meth.service === 'string' && !GRPC_SERVICE.test(meth.service)) {
      c.err(f, 'service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)');
    }
    if (meth.type === 'Exact' && typeof meth.method === 'string' && !GRPC_METHOD.test(meth.method)) {
      c.err(f, 'method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)');
    }
  }
  checkValueMatches(c, m.headers, `${mf}.headers`, 4096);
}

/** H3–H7: rule-level combinations of filters, backendRefs and matches. */
function checkRuleCombinations(c: Checker, r: Obj, rf: string): void {
  const filters = Array.isArray(r.filters) ? r.filters.filter(isObj) : [];
  const backendRefs = Array.isArray(r.backendRefs) ? r.backendRefs.filter(isObj) : [];
  const matches = Array.isArray(r.matches) ? r.matches.filter(isObj) : [];
  if (backendRefs.length > 0 && filters.some((x) => has(x, 'requestRedirect'))) {
    c.err(rf, 'RequestRedirect filter must not be used together with backendRefs');
  }
  const onePrefix = () => {
    if (matches.length !== 1) return false;
    const p = matches[0]!.path;
    return isObj(p) && p.type === 'PathPrefix';
  };
  const isPrefixRewrite = (x: Obj, field: string) => {
    const v = x[field];
    if (!isObj(v) || !isObj(v.path)) return false;
    return v.path.type === 'ReplacePrefixMatch' && has(v.path, 'replacePrefixMatch');
  };
  const exactlyOne = <T>(xs: T[], p: (x: T) => boolean) => xs.filter(p).length === 1;
  if (exactlyOne(filters, (x) => isPrefixRewrite(x, 'requestRedirect')) && !onePrefix()) {
    c.err(rf, 'When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
  }
  if (exactlyOne(filters, (x) => isPrefixRewrite(x, 'urlRewrite')) && !onePrefix()) {
    c.err(rf, 'When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
  }
  const bFilters = (b: Obj) => (Array.isArray(b.filters) ? b.filters.filter(isObj) : []);
  if (exactlyOne(backendRefs, (b) => exactlyOne(bFilters(b), (x) => isPrefixRewrite(x, 'requestRedirect'))) && !onePrefix()) {
    c.err(rf, 'Within backendRefs, when using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
  }
  if (exactlyOne(backendRefs, (b) => exactlyOne(bFilters(b), (x) => isPrefixRewrite(x, 'urlRewrite'))) && !onePrefix()) {
    c.err(rf, 'Within backendRefs, When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
  }
}

function checkTimeouts(c: Checker, v: unknown, f: string): void {
  const t = c.obj(v, f);
  if (!t) return;
  const req = c.str(t.request, `${f}.request`, { pattern: DURATION_PATTERN });
  const be = c.str(t.backendRequest, `${f}.backendRequest`, { pattern: DURATION_PATTERN });
  if (req !== undefined && be !== undefined) {
    const r = parseDuration(req);
    const b = parseDuration(be);
    // H42
    if (r !== null && b !== null && r !== 0 && b > r) c.err(f, 'backendRequest timeout cannot be longer than request timeout');
  }
}

export function checkRouteSpec(c: Checker, obj: Obj, kind: RouteKind): void {
  const spec = c.obj(obj.spec, 'spec', true);
  if (!spec) return;
  checkParentRefs(c, spec);
  checkHostnames(c, spec);
  if (kind === 'HTTPRoute' && spec.rules === undefined) {
    spec.rules = [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }] }];
  }
  const rules = c.arr(spec.rules, 'spec.rules', { max: 16 });
  if (!rules) return;
  rules.forEach((it, i) => {
    const rf = `spec.rules[${i}]`;
    const r = c.obj(it, rf, true);
    if (!r) return;
    c.str(r.name, `${rf}.name`, { min: 1, max: 253, pattern: SECTION_NAME });
    if (kind === 'HTTPRoute' && r.matches === undefined) r.matches = [{ path: { type: 'PathPrefix', value: '/' } }];
    const matches = c.arr(r.matches, `${rf}.matches`, { max: 8 });
    matches?.forEach((m, j) => {
      const mo = c.obj(m, `${rf}.matches[${j}]`, true);
      if (!mo) return;
      if (kind === 'HTTPRoute') checkHTTPMatch(c, mo, `${rf}.matches[${j}]`);
      else checkGRPCMatch(c, mo, `${rf}.matches[${j}]`);
    });
    checkFilters(c, r.filters, `${rf}.filters`, kind);
    checkBackendRefs(c, r.backendRefs, `${rf}.backendRefs`, kind);
    if (kind === 'HTTPRoute') {
      checkTimeouts(c, r.timeouts, `${rf}.timeouts`);
      checkRuleCombinations(c, r, rf);
      checkHTTPRouteRetry(c, r.retry, `${rf}.retry`);
    }
    // GRPCRoute rules have no timeouts: strict fields (validate-fields.ts) report them.
    checkSessionPersistence(c, r.sessionPersistence, `${rf}.sessionPersistence`);
  });
}

// Shape check of a ServiceConfig received from control, before anything is
// built from it. The first problem is returned as a value naming the field;
// the caller NACKs with it and keeps the previous config.
import type { ServiceConfig } from '../../api/index.js';

export interface ValidationError {
  field: string;
  message: string;
}

type Obj = Record<string, unknown>;

class Checker {
  error: ValidationError | undefined;
  fail(field: string, message: string): false {
    if (!this.error) this.error = { field, message };
    return false;
  }
  obj(v: unknown, field: string): v is Obj {
    return (typeof v === 'object' && v !== null && !Array.isArray(v)) || this.fail(field, 'must be an object');
  }
  arr(v: unknown, field: string): v is unknown[] {
    return Array.isArray(v) || this.fail(field, 'must be an array');
  }
  str(v: unknown, field: string): v is string {
    return typeof v === 'string' || this.fail(field, 'must be a string');
  }
  optStr(v: unknown, field: string): boolean {
    return v === undefined || this.str(v, field);
  }
  num(v: unknown, field: string, min = -Infinity, max = Infinity): v is number {
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(field, 'must be a number');
    if (v < min || v > max) return this.fail(field, `must be between ${min} and ${max}`);
    return true;
  }
  oneOf(v: unknown, field: string, allowed: readonly string[]): boolean {
    return (typeof v === 'string' && allowed.includes(v)) || this.fail(field, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
  }
}

const FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror'] as const;

function checkFilters(c: Checker, v: unknown, field: string, backends: Obj): void {
  if (!c.arr(v, field)) return;
  v.forEach((f, i) => {
    const at = `${field}[${i}]`;
    if (!c.obj(f, at)) return;
    if (!c.oneOf(f.type, `${at}.type`, FILTER_TYPES)) return;
    switch (f.type) {
      case 'RequestHeaderModifier':
      case 'ResponseHeaderModifier':
        for (const k of ['set', 'add'] as const) {
          if (f[k] === undefined) continue;
          if (!c.arr(f[k], `${at}.${k}`)) continue;
          (f[k] as unknown[]).forEach((p, j) => {
            if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string' || typeof p[1] !== 'string') c.fail(`${at}.${k}[${j}]`, 'must be a [name, value] pair of strings');
          });
        }
        if (f.remove !== undefined && c.arr(f.remove, `${at}.remove`)) (f.remove as unknown[]).forEach((n, j) => c.str(n, `${at}.remove[${j}]`));
        break;
      case 'RequestRedirect':
        if (f.scheme !== undefined) c.oneOf(f.scheme, `${at}.scheme`, ['http', 'https']);
        c.optStr(f.hostname, `${at}.hostname`);
        if (f.port !== undefined) c.num(f.port, `${at}.port`, 1, 65535);
        if (f.statusCode !== undefined) c.num(f.statusCode, `${at}.statusCode`, 300, 399);
        if (f.path !== undefined) checkPathMod(c, f.path, `${at}.path`);
        break;
      case 'URLRewrite':
        c.optStr(f.hostname, `${at}.hostname`);
        if (f.path !== undefined) checkPathMod(c, f.path, `${at}.path`);
        break;
      case 'RequestMirror':
        if (c.str(f.backend, `${at}.backend`) && !(f.backend in backends)) c.fail(`${at}.backend`, `names backend ${f.backend} that is not in backends`);
        break;
    }
  });
}

function checkPathMod(c: Checker, v: unknown, field: string): void {
  if (!c.obj(v, field)) return;
  c.oneOf(v.type, `${field}.type`, ['ReplaceFullPath', 'ReplacePrefixMatch']);
  c.str(v.value, `${field}.value`);
}

function checkValueMatches(c: Checker, v: unknown, field: string): void {
  if (!c.arr(v, field)) return;
  v.forEach((m, i) => {
    const at = `${field}[${i}]`;
    if (!c.obj(m, at)) return;
    c.oneOf(m.type, `${at}.type`, ['Exact', 'RegularExpression']);
    c.str(m.name, `${at}.name`);
    c.str(m.value, `${at}.value`);
  });
}

export function validateServiceConfig(raw: unknown, expectKey?: string): { ok: true; config: ServiceConfig } | { ok: false; error: ValidationError } {
  const c = new Checker();
  check(c, raw, expectKey);
  if (c.error) return { ok: false, error: c.error };
  return { ok: true, config: raw as ServiceConfig };
}

function check(c: Checker, raw: unknown, expectKey: string | undefined): void {
  if (!c.obj(raw, '$')) return;
  if (!c.str(raw.service, 'service')) return;
  if (expectKey !== undefined && raw.service !== expectKey) {
    c.fail('service', `is ${raw.service} but the update is for ${expectKey}`);
    return;
  }
  c.str(raw.namespace, 'namespace');
  c.str(raw.name, 'name');
  c.str(raw.consumerNamespace, 'consumerNamespace');
  c.str(raw.clusterIP, 'clusterIP');
  if (raw.sessionSecret !== undefined) c.str(raw.sessionSecret, 'sessionSecret');
  if (!c.obj(raw.backends, 'backends')) return;
  const backends = raw.backends;
  for (const [key, b] of Object.entries(backends)) {
    const at = `backends[${JSON.stringify(key)}]`;
    if (!c.obj(b, at)) return;
    if (b.key !== key) c.fail(`${at}.key`, `must equal its map key ${key}`);
    c.str(b.namespace, `${at}.namespace`);
    c.str(b.name, `${at}.name`);
    c.num(b.port, `${at}.port`, 0, 65535);
    if (!c.arr(b.endpoints, `${at}.endpoints`)) return;
    b.endpoints.forEach((e, i) => {
      const ea = `${at}.endpoints[${i}]`;
      if (!c.obj(e, ea)) return;
      c.str(e.ip, `${ea}.ip`);
      c.num(e.port, `${ea}.port`, 1, 65535);
      if (typeof e.ready !== 'boolean') c.fail(`${ea}.ready`, 'must be a boolean');
      if (e.identity !== undefined && c.obj(e.identity, `${ea}.identity`)) {
        c.str(e.identity.namespace, `${ea}.identity.namespace`);
        c.str(e.identity.serviceAccount, `${ea}.identity.serviceAccount`);
      }
    });
    if (b.tls !== undefined && c.obj(b.tls, `${at}.tls`)) c.str(b.tls.hostname, `${at}.tls.hostname`);
    if (b.retryBudget !== undefined) checkRetryBudget(c, b.retryBudget, `${at}.retryBudget`);
  }
  if (!c.arr(raw.ports, 'ports')) return;
  raw.ports.forEach((p, pi) => {
    const at = `ports[${pi}]`;
    if (!c.obj(p, at)) return;
    c.num(p.port, `${at}.port`, 1, 65535);
    c.oneOf(p.routeKind, `${at}.routeKind`, ['none', 'HTTPRoute', 'GRPCRoute']);
    if (c.str(p.defaultBackend, `${at}.defaultBackend`) && p.defaultBackend !== '' && !(p.defaultBackend in backends)) {
      c.fail(`${at}.defaultBackend`, `names backend ${p.defaultBackend} that is not in backends`);
    }
    if (!c.arr(p.rules, `${at}.rules`)) return;
    const nRules = p.rules.length;
    p.rules.forEach((r, ri) => {
      const ra = `${at}.rules[${ri}]`;
      if (!c.obj(r, ra)) return;
      if (c.obj(r.route, `${ra}.route`)) {
        c.oneOf(r.route.kind, `${ra}.route.kind`, ['HTTPRoute', 'GRPCRoute']);
        c.str(r.route.namespace, `${ra}.route.namespace`);
        c.str(r.route.name, `${ra}.route.name`);
      }
      checkFilters(c, r.filters, `${ra}.filters`, backends);
      if (c.arr(r.backends, `${ra}.backends`)) {
        r.backends.forEach((wb, bi) => {
          const ba = `${ra}.backends[${bi}]`;
          if (!c.obj(wb, ba)) return;
          c.str(wb.backend, `${ba}.backend`);
          c.num(wb.weight, `${ba}.weight`, 0, 1_000_000);
          if (wb.filters !== undefined) checkFilters(c, wb.filters, `${ba}.filters`, backends);
          if (wb.invalid === undefined && typeof wb.backend === 'string' && !(wb.backend in backends)) {
            c.fail(`${ba}.backend`, `names backend ${wb.backend} that is not in backends`);
          }
        });
      }
      if (r.timeouts !== undefined && c.obj(r.timeouts, `${ra}.timeouts`)) {
        if (r.timeouts.requestMs !== undefined) c.num(r.timeouts.requestMs, `${ra}.timeouts.requestMs`, 0);
        if (r.timeouts.backendRequestMs !== undefined) c.num(r.timeouts.backendRequestMs, `${ra}.timeouts.backendRequestMs`, 0);
      }
      if (r.fixed !== undefined && c.obj(r.fixed, `${ra}.fixed`)) c.num(r.fixed.status, `${ra}.fixed.status`, 100, 599);
      if (r.retry !== undefined) checkRetry(c, r.retry, `${ra}.retry`);
    });
    if (!c.arr(p.matches, `${at}.matches`)) return;
    p.matches.forEach((m, mi) => {
      const ma = `${at}.matches[${mi}]`;
      if (!c.obj(m, ma)) return;
      if (c.num(m.rule, `${ma}.rule`, 0) && (m.rule as number) >= nRules) c.fail(`${ma}.rule`, `is ${m.rule as number} but the port has ${nRules} rules`);
      if (c.obj(m.path, `${ma}.path`)) {
        c.oneOf(m.path.type, `${ma}.path.type`, ['Exact', 'PathPrefix', 'RegularExpression']);
        if (c.str(m.path.value, `${ma}.path.value`) && m.path.type !== 'RegularExpression' && !(m.path.value as string).startsWith('/')) {
          c.fail(`${ma}.path.value`, 'must start with /');
        }
      }
      checkValueMatches(c, m.headers, `${ma}.headers`);
      checkValueMatches(c, m.queryParams, `${ma}.queryParams`);
      c.optStr(m.method, `${ma}.method`);
    });
  });
}

function checkRetry(c: Checker, v: unknown, at: string): void {
  if (!c.obj(v, at)) return;
  if (c.arr(v.codes, `${at}.codes`)) (v.codes as unknown[]).forEach((n, i) => c.num(n, `${at}.codes[${i}]`, 400, 599));
  if (c.arr(v.grpcCodes, `${at}.grpcCodes`)) (v.grpcCodes as unknown[]).forEach((n, i) => c.num(n, `${at}.grpcCodes[${i}]`, 1, 16));
  c.num(v.attempts, `${at}.attempts`, 0, 1000);
  c.num(v.backoffMs, `${at}.backoffMs`, 0);
  if (v.perTryTimeoutMs !== undefined) c.num(v.perTryTimeoutMs, `${at}.perTryTimeoutMs`, 1);
}

function checkRetryBudget(c: Checker, v: unknown, at: string): void {
  if (!c.obj(v, at)) return;
  c.num(v.percent, `${at}.percent`, 0, 100);
  c.num(v.intervalMs, `${at}.intervalMs`, 1);
  c.num(v.minRetryCount, `${at}.minRetryCount`, 0);
  c.num(v.minRetryIntervalMs, `${at}.minRetryIntervalMs`, 1);
}

// Retries and retry budgets, checked as the API server would:
//   - HTTPRoute `rules[].retry` (GEP-1731, experimental channel v1.2+):
//     codes 400–599, attempts ≥ 0, backoff a Gateway API duration;
//   - GRPCRoute `retry.weft.io/*` annotations (weft's, after Linkerd's
//     `retry.linkerd.io/*`), which the API server cannot check for us;
//   - XBackendTrafficPolicy (gateway.networking.x-k8s.io/v1alpha1, GEP-3388)
//     with the CRD's schema, defaults and CEL rules.
// Like the other validators this works on a clone and writes the CRD defaults
// into it. A failure drops only the resource at fault: its last good version
// keeps serving (source-files / source-kubernetes). Unknown fields are the
// strict-field table's (validate-fields.ts: HTTPRouteRetry, XBackendTrafficPolicy).
import { GRPC_STATUS_CODES, RETRY_ANNOTATIONS } from '../api/index.js';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { Checker, GROUP, KIND, isObj, type Obj } from './validate-checker.js';

/** GEP-1731: `rules[].retry` of an HTTPRoute. */
export function checkHTTPRouteRetry(c: Checker, v: unknown, f: string): void {
  const r = c.obj(v, f);
  if (!r) return;
  const codes = c.arr(r.codes, `${f}.codes`);
  // HTTPRouteRetryStatusCode: +kubebuilder:validation:Minimum=400, Maximum=599.
  codes?.forEach((code, i) => c.int(code, `${f}.codes[${i}]`, { required: true, min: 400, max: 599 }));
  c.int(r.attempts, `${f}.attempts`, { min: 0 });
  c.str(r.backoff, `${f}.backoff`, { pattern: DURATION_PATTERN });
}

/** Every annotation under retry.weft.io/ that weft reads. */
const KNOWN_RETRY_ANNOTATIONS = new Set<string>(Object.values(RETRY_ANNOTATIONS));

/** Parsed `retry.weft.io/grpc`: codes, or the first name that is not a gRPC status. */
export function parseGrpcCodes(value: string): { codes: number[] } | { bad: string } {
  const codes: number[] = [];
  for (const raw of value.split(',')) {
    const name = raw.trim().toLowerCase().replace(/_/g, '-');
    if (name === '') continue;
    const code = GRPC_STATUS_CODES[name];
    if (code === undefined) return { bad: raw.trim() };
    if (!codes.includes(code)) codes.push(code);
  }
  return { codes };
}

/**
 * `retry.weft.io/*` on a GRPCRoute. On an HTTPRoute they are refused too, so
 * nobody believes them in effect there: HTTPRoutes use `rules[].retry`.
 */
export function checkRetryAnnotations(c: Checker, o: Obj, kind: 'HTTPRoute' | 'GRPCRoute'): void {
  const meta = isObj(o.metadata) ? o.metadata : undefined;
  const ann = meta && isObj(meta.annotations) ? (meta.annotations as Record<string, unknown>) : undefined;
  if (!ann) return;
  const at = (k: string) => `metadata.annotations[${JSON.stringify(k)}]`;
  for (const [k, val] of Object.entries(ann)) {
    if (!k.startsWith('retry.weft.io/')) continue;
    if (typeof val !== 'string') continue; // stringMap already said so
    if (kind === 'HTTPRoute') {
      c.err(at(k), `retry annotations apply to GRPCRoutes only; an HTTPRoute configures retries with spec.rules[].retry (GEP-1731)`);
      continue;
    }
    if (!KNOWN_RETRY_ANNOTATIONS.has(k)) {
      c.err(at(k), `Unsupported annotation: weft reads ${[...KNOWN_RETRY_ANNOTATIONS].join(', ')}`);
      continue;
    }
    switch (k) {
      case RETRY_ANNOTATIONS.grpc: {
        const p = parseGrpcCodes(val);
        if ('bad' in p) {
          c.err(at(k), `Invalid value: ${JSON.stringify(val)}: ${JSON.stringify(p.bad)} is not a gRPC status name; use names such as unavailable, resource-exhausted, internal (comma-separated)`);
        } else if (p.codes.length === 0) {
          c.err(at(k), `Invalid value: ${JSON.stringify(val)}: name at least one gRPC status, e.g. unavailable`);
        } else if (p.codes.includes(0)) {
          c.err(at(k), 'Invalid value: OK is not a failure');
        }
        break;
      }
      case RETRY_ANNOTATIONS.limit:
        if (!/^[0-9]{1,3}$/.test(val.trim()) || Number(val) > 100) {
          c.err(at(k), `Invalid value: ${JSON.stringify(val)}: must be a whole number of retries from 0 to 100`);
        }
        break;
      case RETRY_ANNOTATIONS.timeout:
      case RETRY_ANNOTATIONS.backoff: {
        const ms = parseDuration(val.trim());
        if (ms === null) c.err(at(k), `Invalid value: ${JSON.stringify(val)}: should match '${DURATION_PATTERN.source}' (a Gateway API duration such as 500ms or 2s)`);
        else if (k === RETRY_ANNOTATIONS.timeout && ms === 0) c.err(at(k), `Invalid value: ${JSON.stringify(val)}: a per-try timeout must be longer than 0s`);
        break;
      }
    }
  }
}

/**
 * XBackendTrafficPolicy v1alpha1 (config/crd/experimental/
 * gateway.networking.x-k8s.io_xbackendtrafficpolicies.yaml): schema, the
 * defaults budget {percent: 20, interval: 10s} and minRetryRate {count: 10,
 * interval: 1s}, and the interval rules with the CRD's own messages.
 * `checkSessionPersistence` is passed in so this file needs no route checks.
 */
export function checkXBackendTrafficPolicy(c: Checker, o: Obj, checkSessionPersistence: (c: Checker, v: unknown, f: string) => void): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const refs = c.arr(spec.targetRefs, 'spec.targetRefs', { required: true, min: 1, max: 16 });
  const seen = new Set<string>();
  refs?.forEach((it, i) => {
    const f = `spec.targetRefs[${i}]`;
    const r = c.obj(it, f, true);
    if (!r) return;
    c.str(r.group, `${f}.group`, { required: true, max: 253, pattern: GROUP });
    c.str(r.kind, `${f}.kind`, { required: true, min: 1, max: 63, pattern: KIND });
    c.str(r.name, `${f}.name`, { required: true, min: 1, max: 253 });
    const k = JSON.stringify([r.group, r.kind, r.name]);
    if (seen.has(k)) c.err(f, `Duplicate value: ${JSON.stringify({ group: r.group, kind: r.kind, name: r.name })}`);
    seen.add(k);
  });
  const rc = c.obj(spec.retryConstraint, 'spec.retryConstraint');
  if (rc) {
    if (rc.budget === undefined) rc.budget = { percent: 20, interval: '10s' };
    const b = c.obj(rc.budget, 'spec.retryConstraint.budget');
    if (b) {
      if (b.percent === undefined) b.percent = 20;
      if (b.interval === undefined) b.interval = '10s';
      c.int(b.percent, 'spec.retryConstraint.budget.percent', { min: 0, max: 100 });
      const iv = c.str(b.interval, 'spec.retryConstraint.budget.interval', { pattern: DURATION_PATTERN });
      const ms = iv === undefined ? null : parseDuration(iv);
      if (ms !== null && (ms < 1000 || ms > 3_600_000)) {
        c.err('spec.retryConstraint.budget.interval', 'interval cannot be greater than one hour or less than one second');
      }
    }
    if (rc.minRetryRate === undefined) rc.minRetryRate = { count: 10, interval: '1s' };
    const m = c.obj(rc.minRetryRate, 'spec.retryConstraint.minRetryRate');
    if (m) {
      c.int(m.count, 'spec.retryConstraint.minRetryRate.count', { min: 1, max: 1_000_000 });
      const iv = c.str(m.interval, 'spec.retryConstraint.minRetryRate.interval', { pattern: DURATION_PATTERN });
      const ms = iv === undefined ? null : parseDuration(iv);
      if (ms !== null && (ms === 0 || ms > 3_600_000)) c.err('spec.retryConstraint.minRetryRate.interval', 'interval cannot be greater than one hour');
    }
  }
  checkSessionPersistence(c, spec.sessionPersistence, 'spec.sessionPersistence');
  const sp = isObj(spec.sessionPersistence) ? spec.sessionPersistence : undefined;
  if (sp && sp.cookieConfig !== undefined && sp.type !== 'Cookie') c.err('spec.sessionPersistence', 'cookieConfig can only be set with type Cookie');
}

// admission.k8s.io/v1 AdmissionReview in, AdmissionReview out. Pure.
//
// Bad input policy: whatever goes wrong, the answer is allowed: true with the
// reason in status.message and in warnings (kubectl shows warnings to the user).
// The webhook only mutates; refusing a pod because we could not read the request
// would turn an injector bug into an outage of someone else's workload. The
// HTTP status is 200 whenever the request carried a uid (a real API server
// request, which needs a well-formed response), 400 when it did not (no API
// server sends that; the caller is misconfigured and should see an error).
import { INJECT_NAMESPACE_LABEL } from '../api/index.js';
import { buildPatch } from './patch.js';
import { isRecord, type PodLike } from './pod.js';
import type { InjectOptions } from './proxy-spec.js';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string };
}

export interface AdmissionReviewOut {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export interface ReviewOutcome {
  httpStatus: number;
  review: AdmissionReviewOut;
  /** What happened, for the log line. */
  summary: string;
}

/** Which namespaces the webhook entry that called us selects (see deploy/webhook). */
export type Route = 'namespace-enabled' | 'pod-opt-in';

function fail(uid: string, code: number, message: string): ReviewOutcome {
  return {
    httpStatus: uid ? 200 : 400,
    review: {
      apiVersion: ADMISSION_API_VERSION,
      kind: 'AdmissionReview',
      response: { uid, allowed: true, status: { code, message }, warnings: [`weft-injector: ${message}`] },
    },
    summary: `error: ${message}`,
  };
}

export function handleReview(body: string | Buffer, route: Route, opts: InjectOptions = {}): ReviewOutcome {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (e) {
    return fail('', 400, `request body is not JSON (${(e as Error).message})`);
  }
  if (!isRecord(doc)) return fail('', 400, 'request body is not a JSON object');
  const req = isRecord(doc['request']) ? doc['request'] : undefined;
  const uid = typeof req?.['uid'] === 'string' ? req['uid'] : '';
  if (doc['kind'] !== 'AdmissionReview') return fail(uid, 400, `kind: expected AdmissionReview, got ${JSON.stringify(doc['kind'] ?? null)}`);
  if (doc['apiVersion'] !== ADMISSION_API_VERSION) {
    return fail(uid, 400, `apiVersion: expected ${ADMISSION_API_VERSION}, got ${JSON.stringify(doc['apiVersion'] ?? null)} (the webhook declares admissionReviewVersions: [v1])`);
  }
  if (!req) return fail('', 400, 'AdmissionReview has no request');
  if (!uid) return fail('', 400, 'request.uid is missing');
  const kind = isRecord(req['kind']) ? req['kind'] : {};
  const resource = isRecord(req['resource']) ? req['resource'] : {};
  if (kind['kind'] !== 'Pod' || (kind['group'] ?? '') !== '' || resource['resource'] !== 'pods' || req['subResource']) {
    return fail(uid, 400, `request.kind: only core/v1 Pods are injected, got ${String(kind['group'] || 'core')}/${String(kind['version'] ?? '?')} ${String(kind['kind'] ?? '?')}${req['subResource'] ? `/${String(req['subResource'])}` : ''}`);
  }
  const name = `${String(req['namespace'] ?? '')}/${String((isRecord(req['object']) && isRecord(req['object']['metadata']) && (req['object']['metadata']['name'] || req['object']['metadata']['generateName'])) || req['name'] || '?')}`;
  if (req['operation'] !== 'CREATE') {
    return { httpStatus: 200, review: allow(uid), summary: `${name}: not injected: operation ${String(req['operation'])} (only CREATE)` };
  }
  const obj = req['object'];
  if (!isRecord(obj) || !isRecord(obj['spec']) || !Array.isArray(obj['spec']['containers'])) {
    return fail(uid, 400, 'request.object: not a Pod (no spec.containers)');
  }
  const pod = obj as PodLike;
  // The webhook entry that routed here tells us the namespace label (requests carry no namespace object).
  const nsLabels: Record<string, string> = route === 'namespace-enabled' ? { [INJECT_NAMESPACE_LABEL]: 'enabled' } : {};
  let r;
  try {
    r = buildPatch(pod, nsLabels, opts);
  } catch (e) {
    return fail(uid, 500, `building the patch failed: ${(e as Error).message}`);
  }
  if (!r.inject) {
    const review = allow(uid);
    return { httpStatus: 200, review, summary: `${name}: not injected: ${r.reason}` };
  }
  const review = allow(uid);
  review.response.patchType = 'JSONPatch';
  review.response.patch = Buffer.from(JSON.stringify(r.ops)).toString('base64');
  if (r.warnings.length > 0) review.response.warnings = r.warnings.map((w) => `weft-injector: ${w}`);
  return { httpStatus: 200, review, summary: `${name}: injected${r.warnings.length ? ` (${r.warnings.length} warnings)` : ''}` };
}

function allow(uid: string): AdmissionReviewOut {
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response: { uid, allowed: true } };
}

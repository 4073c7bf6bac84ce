// AuthorizationPolicy (policy.weft.io/v1alpha1) validation: GEP-3779's rules,
// each error naming the field. What the GEP leaves to the implementation
// (which target kinds are supported) is reported in status by compile, not
// here: a policy that is well formed but targets nothing weft enforces is
// stored and shown as Accepted=False.
import { DEFAULT_INBOUND_POLICIES } from '../api/index.js';
import { Checker, DNS1123_LABEL, DNS1123_SUBDOMAIN, GROUP, KIND, MSG_DNS1123_LABEL, MSG_DNS1123_SUBDOMAIN, type Obj } from './validate-checker.js';

/** spiffe://<trust domain>/<path>: a trust domain of lower-case letters, digits, '.', '-', '_' and a non-empty path. */
export const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/;

const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^$|^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** metav1.LabelSelector: matchLabels and matchExpressions, as the API server checks them. */
export function checkLabelSelector(c: Checker, v: unknown, field: string): void {
  const sel = c.obj(v, field);
  if (!sel) return;
  const ml = c.stringMap(sel.matchLabels, `${field}.matchLabels`);
  for (const [k, val] of Object.entries(ml ?? {})) {
    if (k.length > 316 || !LABEL_KEY.test(k)) c.err(`${field}.matchLabels`, `Invalid value: ${JSON.stringify(k)}: not a valid label key`);
    if (typeof val === 'string' && (val.length > 63 || !LABEL_VALUE.test(val))) {
      c.err(`${field}.matchLabels.${k}`, `Invalid value: ${JSON.stringify(val)}: not a valid label value`);
    }
  }
  const exprs = c.arr(sel.matchExpressions, `${field}.matchExpressions`);
  exprs?.forEach((e, i) => {
    const f = `${field}.matchExpressions[${i}]`;
    const x = c.obj(e, f, true);
    if (!x) return;
    c.str(x.key, `${f}.key`, { required: true, min: 1 });
    const op = c.str(x.operator, `${f}.operator`, { required: true, enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] });
    const values = c.arr(x.values, `${f}.values`);
    values?.forEach((s, j) => c.str(s, `${f}.values[${j}]`, { required: true }));
    if ((op === 'In' || op === 'NotIn') && (!values || values.length === 0)) {
      c.err(`${f}.values`, `Required value: must be specified when operator is ${op}`);
    }
    if ((op === 'Exists' || op === 'DoesNotExist') && values && values.length > 0) {
      c.err(`${f}.values`, `Forbidden: may not be specified when operator is ${op}`);
    }
  });
}

export function checkAuthorizationPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;

  const refs = c.arr(spec.targetRefs, 'spec.targetRefs', { required: true, min: 1, max: 16 });
  refs?.forEach((r, i) => {
    const f = `spec.targetRefs[${i}]`;
    const ref = c.obj(r, f, true);
    if (!ref) return;
    c.str(ref.group, `${f}.group`, { pattern: GROUP, max: 253 });
    if (ref.group === undefined) ref.group = '';
    const kind = c.str(ref.kind, `${f}.kind`, { required: true, min: 1, max: 63, pattern: KIND });
    const name = c.str(ref.name, `${f}.name`, { max: 253 });
    if (kind === 'Pod') {
      // GEP-3779: a Pod target selects; it never names a pod.
      if (ref.selector === undefined || ref.selector === null) c.err(`${f}.selector`, 'Required value: targetRefs of kind Pod must have a selector (`selector: {}` selects every pod of the namespace)');
      if (name !== undefined) c.err(`${f}.name`, 'Forbidden: targetRefs of kind Pod select pods with a selector and may not have a name');
      if (ref.group !== '') c.err(`${f}.group`, `Unsupported value: ${JSON.stringify(ref.group)}: kind Pod is in the core group ""`);
      checkLabelSelector(c, ref.selector, `${f}.selector`);
    } else if (kind !== undefined) {
      if (ref.selector !== undefined) c.err(`${f}.selector`, `Forbidden: a selector is only allowed on targetRefs of kind Pod, not ${kind}`);
      if (name === undefined || name === '') c.err(`${f}.name`, `Required value: targetRefs of kind ${kind} name their target`);
      else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) c.err(`${f}.name`, `Invalid value: ${JSON.stringify(name)}: ${MSG_DNS1123_SUBDOMAIN}`);
    }
  });

  // GEP-3779 v1 has ALLOW only (DENY is future work); say so rather than ignore.
  if (spec.action === undefined) c.required('spec.action');
  else c.str(spec.action, 'spec.action', { enum: ['ALLOW'] });

  const rules = c.arr(spec.rules, 'spec.rules', { max: 64 });
  rules?.forEach((r, i) => {
    const f = `spec.rules[${i}]`;
    const rule = c.obj(r, f, true);
    if (!rule) return;
    const sources = c.arr(rule.sources, `${f}.sources`, { max: 128 });
    sources?.forEach((s, j) => checkSource(c, s, `${f}.sources[${j}]`));
    const na = c.obj(rule.networkAttributes, `${f}.networkAttributes`);
    if (na) {
      const ports = c.arr(na.ports, `${f}.networkAttributes.ports`, { max: 64 });
      ports?.forEach((p, j) => c.int(p, `${f}.networkAttributes.ports[${j}]`, { required: true, min: 1, max: 65535 }));
    }
  });
}

function checkSource(c: Checker, v: unknown, f: string): void {
  const s = c.obj(v, f, true);
  if (!s) return;
  const type = c.str(s.type, `${f}.type`, { required: true, enum: ['ServiceAccount', 'SPIFFE'] });
  if (type === 'ServiceAccount') {
    if (s.spiffe !== undefined) c.err(`${f}.spiffe`, 'Forbidden: a source of type ServiceAccount names a serviceAccount, not a spiffe ID');
    const sa = c.obj(s.serviceAccount, `${f}.serviceAccount`);
    if (s.serviceAccount === undefined || s.serviceAccount === null) {
      c.err(`${f}.serviceAccount`, 'Required value: a source of type ServiceAccount must have serviceAccount');
    }
    if (sa) {
      const ns = c.str(sa.namespace, `${f}.serviceAccount.namespace`);
      if (ns !== undefined && (ns.length > 63 || !DNS1123_LABEL.test(ns))) c.err(`${f}.serviceAccount.namespace`, `Invalid value: ${JSON.stringify(ns)}: ${MSG_DNS1123_LABEL}`);
      const name = c.str(sa.name, `${f}.serviceAccount.name`, { required: true, min: 1 });
      if (name !== undefined && name !== '*' && (name.length > 253 || !DNS1123_SUBDOMAIN.test(name))) {
        c.err(`${f}.serviceAccount.name`, `Invalid value: ${JSON.stringify(name)}: ${MSG_DNS1123_SUBDOMAIN} (or "*" for every service account of the namespace)`);
      }
    }
  } else if (type === 'SPIFFE') {
    if (s.serviceAccount !== undefined) c.err(`${f}.serviceAccount`, 'Forbidden: a source of type SPIFFE names a spiffe ID, not a serviceAccount');
    if (s.spiffe === undefined || s.spiffe === null) c.err(`${f}.spiffe`, 'Required value: a source of type SPIFFE must have spiffe');
    else {
      const id = c.str(s.spiffe, `${f}.spiffe`, { max: 2048 });
      if (id !== undefined && !SPIFFE_ID.test(id)) c.err(`${f}.spiffe`, `Invalid value: ${JSON.stringify(id)}: must be of the form spiffe://<trust domain>/<path>`);
    }
  }
}

/** Workload (local mode) fields of inbound authorization. */
export function checkWorkloadAuthz(c: Checker, spec: Obj): void {
  c.str(spec.defaultInboundPolicy, 'spec.defaultInboundPolicy', { enum: DEFAULT_INBOUND_POLICIES });
  const probes = c.arr(spec.probePaths, 'spec.probePaths', { max: 16 });
  probes?.forEach((p, i) => {
    const path = c.str(p, `spec.probePaths[${i}]`, { required: true, min: 1, max: 1024 });
    if (path !== undefined && !path.startsWith('/')) c.err(`spec.probePaths[${i}]`, `Invalid value: ${JSON.stringify(path)}: must be an absolute path`);
  });
}

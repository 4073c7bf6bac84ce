// validateResource: one YAML/JSON document → a typed, defaulted resource, or
// errors naming the resource and field, worded as kube-apiserver and the
// v1.1.0 CRDs word them. A file-mode user learns here what the API server
// would have told a kubectl user.
import type { AnyResource } from '../api/index.js';
import type { ConfigError } from './types.js';
import {
  Checker,
  DNS1035_LABEL,
  DNS1123_LABEL,
  DNS1123_SUBDOMAIN,
  GROUP,
  IANA_SVC_NAME,
  KIND,
  MSG_DNS1035_LABEL,
  MSG_DNS1123_LABEL,
  MSG_DNS1123_SUBDOMAIN,
  NAMESPACE,
  PRECISE_HOSTNAME,
  SECTION_NAME,
  isObj,
  type Obj,
} from './validate-checker.js';
import { strictFieldErrors } from './validate-fields.js';
import { checkRouteSpec, checkSessionPersistence } from './validate-route.js';
import { checkRetryAnnotations, checkXBackendTrafficPolicy } from './validate-retry.js';
import { checkAuthorizationPolicy, checkWorkloadAuthz } from './validate-authz.js';

const GW = 'gateway.networking.k8s.io';

/** apiVersions weft reads for each kind. */
export const SUPPORTED_API_VERSIONS: Record<string, readonly string[]> = {
  Service: ['v1'],
  Namespace: ['v1'],
  ConfigMap: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  HTTPRoute: [`${GW}/v1`, `${GW}/v1beta1`],
  // v1alpha2 is still served (deprecated) by the v1.1 experimental channel.
  GRPCRoute: [`${GW}/v1`, `${GW}/v1alpha2`],
  ReferenceGrant: [`${GW}/v1beta1`, `${GW}/v1alpha2`],
  BackendLBPolicy: [`${GW}/v1alpha2`],
  BackendTLSPolicy: [`${GW}/v1alpha3`],
  XBackendTrafficPolicy: ['gateway.networking.x-k8s.io/v1alpha1'],
  Workload: ['local.weft.io/v1alpha1'],
  AuthorizationPolicy: ['policy.weft.io/v1alpha1'],
};

const CLUSTER_SCOPED = new Set(['Namespace']);

/** "HTTPRoute ns/name" (or "Namespace name") for error messages and describe. */
export function resourceLabel(kind: string, namespace: string | undefined, name: string): string {
  return namespace ? `${kind} ${namespace}/${name}` : `${kind} ${name}`;
}

export interface Validated {
  /** The typed, defaulted resource, when there are no errors. */
  resource?: AnyResource;
  errors: ConfigError[];
  /**
   * An invalid resource that is safer served than dropped (a BackendTLSPolicy
   * failing only T1/T2: compile makes its backend fail closed). Served only
   * when the resource has no last good version.
   */
  failClosed?: AnyResource;
}

export interface ValidateOptions {
  /**
   * Unknown fields are errors (default). Off for objects read from the API
   * server: it has applied its own schema, and a newer CRD's fields must not
   * make weft drop an object the cluster accepted.
   */
  strictFields?: boolean;
}

export function validateResource(obj: unknown, source: string, opts: ValidateOptions = {}): Validated {
  const c = new Checker(source, '');
  if (!isObj(obj)) {
    c.err('', `a Kubernetes object must be a mapping, got ${obj === null ? 'null' : Array.isArray(obj) ? 'a list' : typeof obj}`);
    return { errors: c.errors };
  }
  const o = structuredClone(obj) as Obj;
  const kind = typeof o.kind === 'string' ? o.kind : '';
  const meta = isObj(o.metadata) ? o.metadata : undefined;
  const name = meta && typeof meta.name === 'string' ? meta.name : '';
  if (meta && !CLUSTER_SCOPED.has(kind) && (meta.namespace === undefined || meta.namespace === '')) {
    meta.namespace = 'default';
  }
  const ns = meta && typeof meta.namespace === 'string' && !CLUSTER_SCOPED.has(kind) ? meta.namespace : undefined;
  c.resource = kind ? resourceLabel(kind, ns, name || '<unnamed>') : name;

  if (!kind) {
    c.err('kind', 'Required value');
    return { errors: c.errors };
  }
  const versions = SUPPORTED_API_VERSIONS[kind];
  if (!versions) {
    c.err('kind', `Unsupported value: "${kind}": weft reads ${Object.keys(SUPPORTED_API_VERSIONS).join(', ')}`);
    return { errors: c.errors };
  }
  if (typeof o.apiVersion !== 'string' || !versions.includes(o.apiVersion)) {
    c.err('apiVersion', `Unsupported value: ${JSON.stringify(o.apiVersion ?? '')}: supported values for ${kind}: ${versions.map((v) => `"${v}"`).join(', ')}`);
    return { errors: c.errors };
  }

  // Strict fields first (on the document as written, before defaults), then
  // every other check: all of a resource's errors are reported at once.
  if (opts.strictFields !== false) for (const e of strictFieldErrors(kind, o)) c.err(e.field, e.message);

  // metadata
  const m = c.obj(o.metadata, 'metadata', true);
  if (!m) return { errors: c.errors };
  const nm = c.str(m.name, 'metadata.name', { required: true });
  if (nm !== undefined) {
    if (kind === 'Service') {
      if (nm.length > 63 || !DNS1035_LABEL.test(nm)) c.err('metadata.name', `Invalid value: ${JSON.stringify(nm)}: ${MSG_DNS1035_LABEL}`);
    } else if (kind === 'Namespace') {
      if (nm.length > 63 || !DNS1123_LABEL.test(nm)) c.err('metadata.name', `Invalid value: ${JSON.stringify(nm)}: ${MSG_DNS1123_LABEL}`);
    } else if (nm.length > 253 || !DNS1123_SUBDOMAIN.test(nm)) {
      c.err('metadata.name', `Invalid value: ${JSON.stringify(nm)}: ${MSG_DNS1123_SUBDOMAIN}`);
    }
  }
  if (ns !== undefined && (ns.length > 63 || !DNS1123_LABEL.test(ns))) {
    c.err('metadata.namespace', `Invalid value: ${JSON.stringify(ns)}: ${MSG_DNS1123_LABEL}`);
  }
  c.stringMap(m.labels, 'metadata.labels');
  c.stringMap(m.annotations, 'metadata.annotations');
  c.int(m.generation, 'metadata.generation', { min: 0 });
  c.str(m.creationTimestamp, 'metadata.creationTimestamp');
  if (typeof m.creationTimestamp === 'string' && Number.isNaN(Date.parse(m.creationTimestamp))) {
    c.err('metadata.creationTimestamp', `Invalid value: ${JSON.stringify(m.creationTimestamp)}: must be an RFC 3339 date-time`);
  }
  // YAML may parse an unquoted timestamp into a Date; keep the wire form.
  if ((m.creationTimestamp as unknown) instanceof Date) m.creationTimestamp = (m.creationTimestamp as unknown as Date).toISOString();

  switch (kind) {
    case 'Service':
      checkService(c, o);
      break;
    case 'Namespace':
      break;
    case 'ConfigMap':
      c.stringMap(o.data, 'data');
      break;
    case 'EndpointSlice':
      checkEndpointSlice(c, o);
      break;
    case 'HTTPRoute':
    case 'GRPCRoute':
      checkRouteSpec(c, o, kind);
      checkRetryAnnotations(c, o, kind);
      break;
    case 'ReferenceGrant':
      checkReferenceGrant(c, o);
      break;
    case 'BackendLBPolicy':
      checkBackendLBPolicy(c, o);
      break;
    case 'BackendTLSPolicy':
      checkBackendTLSPolicy(c, o);
      break;
    case 'XBackendTrafficPolicy':
      checkXBackendTrafficPolicy(c, o, checkSessionPersistence);
      break;
    case 'Workload':
      checkWorkload(c, o);
      break;
    case 'AuthorizationPolicy':
      checkAuthorizationPolicy(c, o);
      break;
  }
  if (c.errors.length > 0) {
    // A BackendTLSPolicy whose only faults are T1/T2 is still handed to compile,
    // which makes its backend fail closed (issue 8): dropping it would let
    // traffic to that backend go out in plaintext.
    if (kind === 'BackendTLSPolicy' && c.errors.every((e) => e.field === 'spec.validation' && TLS_CA_RULES.includes(e.message))) {
      return { errors: c.errors, failClosed: o as unknown as AnyResource };
    }
    return { errors: c.errors };
  }
  return { resource: o as unknown as AnyResource, errors: [] };
}

/** T1 and T2 of the v1alpha3 BackendTLSPolicy CRD, in its words. */
const TLS_CA_RULES = [
  'must not contain both CACertificateRefs and WellKnownCACertificates',
  'must specify either CACertificateRefs or WellKnownCACertificates',
];

function checkService(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  c.str(spec.type, 'spec.type', { enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] });
  c.str(spec.clusterIP, 'spec.clusterIP');
  c.stringMap(spec.selector, 'spec.selector');
  c.str(spec.externalName, 'spec.externalName');
  const ports = c.arr(spec.ports, 'spec.ports');
  if (!ports) return;
  ports.forEach((it, i) => {
    const f = `spec.ports[${i}]`;
    const p = c.obj(it, f, true);
    if (!p) return;
    if (p.protocol === undefined) p.protocol = 'TCP';
    c.str(p.protocol, `${f}.protocol`, { enum: ['TCP', 'UDP', 'SCTP'] });
    c.int(p.port, `${f}.port`, { required: true, min: 1, max: 65535 });
    c.str(p.appProtocol, `${f}.appProtocol`);
    const name = c.str(p.name, `${f}.name`);
    if (name !== undefined && name !== '' && (name.length > 63 || !DNS1123_LABEL.test(name))) {
      c.err(`${f}.name`, `Invalid value: ${JSON.stringify(name)}: ${MSG_DNS1123_LABEL}`);
    }
    if (ports.length > 1 && (name === undefined || name === '')) c.required(`${f}.name`);
    const tp = p.targetPort;
    if (typeof tp === 'number') c.int(tp, `${f}.targetPort`, { min: 1, max: 65535 });
    else if (typeof tp === 'string') {
      if (/^[0-9]+$/.test(tp)) p.targetPort = Number(tp);
      else if (tp.length > 15 || !IANA_SVC_NAME.test(tp) || !/[a-z]/.test(tp)) {
        c.err(`${f}.targetPort`, `Invalid value: ${JSON.stringify(tp)}: must be no more than 15 characters, contain only lowercase alphanumerics and '-', and contain at least one letter`);
      }
    } else if (tp !== undefined) c.err(`${f}.targetPort`, 'Invalid value: must be an integer or a port name');
  });
  c.uniqueKeys(ports, 'spec.ports', 'name');
  const seen = new Set<string>();
  ports.forEach((it, i) => {
    if (!isObj(it) || typeof it.port !== 'number') return;
    const k = `${it.port}/${String(it.protocol ?? 'TCP')}`;
    if (seen.has(k)) c.err(`spec.ports[${i}]`, `Duplicate value: ${JSON.stringify({ port: it.port, protocol: it.protocol ?? 'TCP' })}`);
    seen.add(k);
  });
}

function checkEndpointSlice(c: Checker, o: Obj): void {
  c.str(o.addressType, 'addressType', { required: true, enum: ['IPv4', 'IPv6', 'FQDN'] });
  // The API serves an empty slice as `endpoints: null` (a nil Go slice).
  if (o.endpoints === null) o.endpoints = [];
  const eps = c.arr(o.endpoints, 'endpoints', { required: true, max: 1000 });
  eps?.forEach((it, i) => {
    const f = `endpoints[${i}]`;
    const e = c.obj(it, f, true);
    if (!e) return;
    const addrs = c.arr(e.addresses, `${f}.addresses`, { required: true, min: 1, max: 100 });
    addrs?.forEach((a, j) => c.str(a, `${f}.addresses[${j}]`, { required: true, min: 1 }));
    const cond = c.obj(e.conditions, `${f}.conditions`);
    if (cond) for (const k of ['ready', 'serving', 'terminating']) c.bool(cond[k], `${f}.conditions.${k}`);
    c.str(e.hostname, `${f}.hostname`);
    c.str(e.nodeName, `${f}.nodeName`);
    c.str(e.zone, `${f}.zone`);
    c.obj(e.targetRef, `${f}.targetRef`);
  });
  const ports = c.arr(o.ports, 'ports', { max: 20000 });
  ports?.forEach((it, i) => {
    const p = c.obj(it, `ports[${i}]`, true);
    if (!p) return;
    c.str(p.name, `ports[${i}].name`);
    c.int(p.port, `ports[${i}].port`, { min: 1, max: 65535 });
    c.str(p.protocol, `ports[${i}].protocol`, { enum: ['TCP', 'UDP', 'SCTP'] });
    c.str(p.appProtocol, `ports[${i}].appProtocol`);
  });
}

function checkReferenceGrant(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const from = c.arr(spec.from, 'spec.from', { required: true, min: 1, max: 16 });
  from?.forEach((it, i) => {
    const f = c.obj(it, `spec.from[${i}]`, true);
    if (!f) return;
    c.str(f.group, `spec.from[${i}].group`, { required: true, max: 253, pattern: GROUP });
    c.str(f.kind, `spec.from[${i}].kind`, { required: true, min: 1, max: 63, pattern: KIND });
    c.str(f.namespace, `spec.from[${i}].namespace`, { required: true, min: 1, max: 63, pattern: NAMESPACE });
  });
  const to = c.arr(spec.to, 'spec.to', { required: true, min: 1, max: 16 });
  to?.forEach((it, i) => {
    const t = c.obj(it, `spec.to[${i}]`, true);
    if (!t) return;
    c.str(t.group, `spec.to[${i}].group`, { required: true, max: 253, pattern: GROUP });
    c.str(t.kind, `spec.to[${i}].kind`, { required: true, min: 1, max: 63, pattern: KIND });
    c.str(t.name, `spec.to[${i}].name`, { min: 1, max: 253 });
  });
}

function checkTargetRefs(c: Checker, spec: Obj, withSection: boolean): void {
  const refs = c.arr(spec.targetRefs, 'spec.targetRefs', { required: true, min: 1, max: 16 });
  if (!refs) return;
  refs.forEach((it, i) => {
    const f = `spec.targetRefs[${i}]`;
    const r = c.obj(it, f, true);
    if (!r) return;
    c.str(r.group, `${f}.group`, { required: true, max: 253, pattern: GROUP });
    c.str(r.kind, `${f}.kind`, { required: true, min: 1, max: 63, pattern: KIND });
    c.str(r.name, `${f}.name`, { required: true, min: 1, max: 253 });
    if (withSection) c.str(r.sectionName, `${f}.sectionName`, { min: 1, max: 253, pattern: SECTION_NAME });
  });
  // list-map keyed by group+kind+name (+sectionName for BackendTLSPolicy)
  const seen = new Set<string>();
  refs.forEach((it, i) => {
    if (!isObj(it)) return;
    const k = JSON.stringify([it.group, it.kind, it.name, withSection ? (it.sectionName ?? '') : '']);
    if (seen.has(k)) c.err(`spec.targetRefs[${i}]`, `Duplicate value: ${JSON.stringify({ group: it.group, kind: it.kind, name: it.name })}`);
    seen.add(k);
  });
}

function checkBackendLBPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  checkTargetRefs(c, spec, false);
  checkSessionPersistence(c, spec.sessionPersistence, 'spec.sessionPersistence');
}

function checkBackendTLSPolicy(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  checkTargetRefs(c, spec, true);
  const v = c.obj(spec.validation, 'spec.validation', true);
  if (!v) return;
  c.str(v.hostname, 'spec.validation.hostname', { required: true, min: 1, max: 253, pattern: PRECISE_HOSTNAME });
  c.str(v.wellKnownCACertificates, 'spec.validation.wellKnownCACertificates', { enum: ['System'] });
  const refs = c.arr(v.caCertificateRefs, 'spec.validation.caCertificateRefs', { max: 8 });
  refs?.forEach((it, i) => {
    const f = `spec.validation.caCertificateRefs[${i}]`;
    const r = c.obj(it, f, true);
    if (!r) return;
    c.str(r.group, `${f}.group`, { required: true, max: 253, pattern: GROUP });
    c.str(r.kind, `${f}.kind`, { required: true, min: 1, max: 63, pattern: KIND });
    c.str(r.name, `${f}.name`, { required: true, min: 1, max: 253 });
  });
  // T1/T2 are reported here, with the schema's errors, so that every error of
  // the policy shows at load; validateResource still hands a policy failing
  // only these to compile (failClosed), which fails its backend closed (issue 8).
  const hasRefs = Array.isArray(v.caCertificateRefs) && v.caCertificateRefs.length > 0;
  const hasWK = typeof v.wellKnownCACertificates === 'string' && v.wellKnownCACertificates !== '';
  if (hasRefs && hasWK) c.err('spec.validation', TLS_CA_RULES[0]!);
  if (!hasRefs && !hasWK) c.err('spec.validation', TLS_CA_RULES[1]!);
}

function checkWorkload(c: Checker, o: Obj): void {
  const spec = c.obj(o.spec, 'spec', true);
  if (!spec) return;
  const cmd = c.arr(spec.command, 'spec.command', { required: true, min: 1 });
  cmd?.forEach((a, i) => c.str(a, `spec.command[${i}]`, { required: true }));
  const env = c.obj(spec.env, 'spec.env');
  if (env) {
    for (const [k, val] of Object.entries(env)) {
      // YAML turns unquoted numbers and booleans into non-strings; env values are strings.
      if (typeof val === 'number' || typeof val === 'boolean') env[k] = String(val);
      else c.str(val, `spec.env.${k}`);
    }
  }
  if (spec.serviceAccount === undefined) spec.serviceAccount = 'default';
  const sa = c.str(spec.serviceAccount, 'spec.serviceAccount', { min: 1 });
  if (sa && (sa.length > 253 || !DNS1123_SUBDOMAIN.test(sa))) {
    c.err('spec.serviceAccount', `Invalid value: ${JSON.stringify(sa)}: ${MSG_DNS1123_SUBDOMAIN}`);
  }
  c.stringMap(spec.labels, 'spec.labels');
  if (spec.replicas === undefined) spec.replicas = 1;
  c.int(spec.replicas, 'spec.replicas', { min: 0, max: 1000 });
  const ports = c.arr(spec.ports, 'spec.ports');
  ports?.forEach((p, i) => c.int(p, `spec.ports[${i}]`, { required: true, min: 1, max: 65535 }));
  const calls = c.arr(spec.calls, 'spec.calls');
  calls?.forEach((p, i) => c.str(p, `spec.calls[${i}]`, { required: true, min: 1 }));
  c.bool(spec.strict, 'spec.strict');
  checkWorkloadAuthz(c, spec);
}

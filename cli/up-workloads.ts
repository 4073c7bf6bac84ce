// `weft up` reads the Workload documents (local.weft.io/v1alpha1) of a
// config directory and plans one pod per replica. Pure apart from reading
// the files: validation errors name the file, the resource and the field,
// like control's.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { RESILIENCE_ANNOTATIONS } from '../api/index.js';
import { decodeDocuments, decodeText, sizeError } from '../control/source-decode.js';

export const WORKLOAD_API_VERSION = 'local.weft.io/v1alpha1';

export interface LocalWorkload {
  namespace: string;
  name: string;
  command: string[];
  env: Record<string, string>;
  serviceAccount: string;
  labels: Record<string, string>;
  replicas: number;
  ports: number[];
  /** Services to subscribe to ahead of the first call, as "ns/name". */
  calls: string[];
  strict: boolean;
  /** Sidecar flags from the Workload's annotations (config.weft.io/failure-accrual, config.weft.io/max-in-flight). */
  sidecarFlags?: string[];
  /** Sidecar flags from the observe annotations (weft.io/access-log, weft.io/trace-collector, weft.io/trace-sampling). */
  observeArgs?: string[];
  /** File it came from, relative to the config directory. */
  source: string;
}

export interface LocalPod {
  workload: LocalWorkload;
  /** `<workload>-<replica>`: names start with the workload name, as in Kubernetes. */
  name: string;
  replica: number;
  ip: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const YAML_FILE = /\.ya?ml$/i;

/** Every .yaml/.yml under dir, recursively, hidden entries skipped (as control reads them). */
export function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const ent of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (ent.name.startsWith('.') || ent.name === 'node_modules') continue;
      const p = join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else if (ent.isFile() && YAML_FILE.test(ent.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One Workload document → a LocalWorkload, or the errors that name its fields. */
export function parseWorkload(doc: Obj, source: string): { workload?: LocalWorkload; errors: string[] } {
  const meta = isObj(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  const resource = `Workload ${namespace}/${name || '?'}`;
  const errors: string[] = [];
  const err = (field: string, msg: string) => errors.push(`${source}: ${resource}: ${field}: ${msg}`);
  if (doc.apiVersion !== WORKLOAD_API_VERSION) err('apiVersion', `must be ${WORKLOAD_API_VERSION}`);
  if (!DNS_LABEL.test(name)) err('metadata.name', 'must be a DNS label (lower-case letters, digits, "-")');
  if (!DNS_LABEL.test(namespace)) err('metadata.namespace', 'must be a DNS label');
  const spec = isObj(doc.spec) ? doc.spec : undefined;
  if (!spec) {
    err('spec', 'is required');
    return { errors };
  }
  const command = spec.command;
  if (!Array.isArray(command) || command.length === 0 || !command.every((c) => typeof c === 'string' && c !== '')) {
    err('spec.command', 'must be a non-empty list of strings');
  }
  const env: Record<string, string> = {};
  if (spec.env !== undefined) {
    if (!isObj(spec.env)) err('spec.env', 'must be a map of names to values');
    else
      for (const [k, v] of Object.entries(spec.env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) err(`spec.env.${k}`, 'is not a valid variable name');
        else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') env[k] = String(v);
        else err(`spec.env.${k}`, 'must be a string');
      }
  }
  const labels: Record<string, string> = {};
  if (spec.labels !== undefined) {
    if (!isObj(spec.labels)) err('spec.labels', 'must be a map of label names to values');
    else
      for (const [k, v] of Object.entries(spec.labels)) {
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') labels[k] = String(v);
        else err(`spec.labels.${k}`, 'must be a string');
        if (k.includes(',') || k.includes('=') || String(v).includes(',')) err(`spec.labels.${k}`, 'must not contain "," or "="');
      }
  }
  const serviceAccount = spec.serviceAccount === undefined ? 'default' : spec.serviceAccount;
  if (typeof serviceAccount !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(serviceAccount)) {
    err('spec.serviceAccount', 'must be a DNS subdomain');
  }
  const replicas = spec.replicas === undefined ? 1 : spec.replicas;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > 250) {
    err('spec.replicas', 'must be an integer from 0 to 250');
  }
  const ports = spec.ports === undefined ? [] : spec.ports;
  if (!Array.isArray(ports) || !ports.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
    err('spec.ports', 'must be a list of port numbers (1-65535)');
  } else {
    const reserved = ports.filter((p) => p === 7001 || p === 7002 || p === 7090);
    if (reserved.length) err('spec.ports', `${reserved.join(', ')} belong to the sidecar`);
  }
  const calls = spec.calls === undefined ? [] : spec.calls;
  if (!Array.isArray(calls) || !calls.every((c) => typeof c === 'string' && /^([a-z0-9-]+\/)?[a-z0-9-]+$/.test(c))) {
    err('spec.calls', 'must be a list of Service names ("name" or "namespace/name")');
  }
  if (spec.strict !== undefined && typeof spec.strict !== 'boolean') err('spec.strict', 'must be true or false');
  // Per-workload resilience settings, as pod annotations set them in a cluster.
  const sidecarFlags: string[] = [];
  const ann = isObj(meta.annotations) ? meta.annotations : {};
  for (const [key, flag, max] of [[RESILIENCE_ANNOTATIONS.failureAccrual, '--failure-accrual', 1000], [RESILIENCE_ANNOTATIONS.maxInFlight, '--max-in-flight', 999_999_999]] as const) {
    const v = ann[key];
    if (v === undefined) continue;
    const text = String(v).trim();
    if (!/^[0-9]{1,9}$/.test(text) || Number(text) > max) err(`metadata.annotations["${key}"]`, `must be a whole number from 0 to ${max}`);
    else sidecarFlags.push(flag, text);
  }
  const observeArgs = observeAnnotations(isObj(meta.annotations) ? meta.annotations : {}, err);
  if (errors.length) return { errors };
  return {
    workload: {
      namespace,
      name,
      command: command as string[],
      env,
      serviceAccount: serviceAccount as string,
      labels,
      replicas: replicas as number,
      ports: ports as number[],
      calls: (calls as string[]).map((c) => (c.includes('/') ? c : `${namespace}/${c}`)),
      strict: spec.strict === true,
      ...(sidecarFlags.length ? { sidecarFlags } : {}),
      ...(observeArgs.length ? { observeArgs } : {}),
      source,
    },
    errors,
  };
}

/** The pod annotations that turn on a sidecar's access log and tracing, as in Kubernetes. */
export const OBSERVE_ANNOTATIONS = {
  accessLog: 'weft.io/access-log',
  traceCollector: 'weft.io/trace-collector',
  traceSampling: 'weft.io/trace-sampling',
} as const;

/** Sidecar flags from a Workload's observe annotations; bad values are errors naming the annotation. */
export function observeAnnotations(ann: Record<string, unknown>, err: (field: string, msg: string) => void): string[] {
  const out: string[] = [];
  const field = (k: string) => `metadata.annotations.${k}`;
  const al = ann[OBSERVE_ANNOTATIONS.accessLog];
  if (al !== undefined) {
    if (al === 'json') out.push('--access-log', 'json');
    else if (al !== 'off') err(field(OBSERVE_ANNOTATIONS.accessLog), 'must be json or off');
  }
  const tc = ann[OBSERVE_ANNOTATIONS.traceCollector];
  if (tc !== undefined) {
    if (typeof tc !== 'string' || !/^https?:\/\/[^\s/]+(\/\S*)?$/.test(tc)) err(field(OBSERVE_ANNOTATIONS.traceCollector), 'must be an http(s) URL like http://127.0.0.1:4318/v1/traces');
    else out.push('--trace-collector', tc);
  }
  const ts = ann[OBSERVE_ANNOTATIONS.traceSampling];
  if (ts !== undefined) {
    const n = Number(ts);
    if (!(typeof ts === 'string' || typeof ts === 'number') || String(ts).trim() === '' || !(n >= 0 && n <= 1)) err(field(OBSERVE_ANNOTATIONS.traceSampling), 'must be a number from 0 to 1');
    else out.push('--trace-sampling', String(n));
  }
  return out;
}

/**
 * The Workloads of a config directory. Other kinds are control's business;
 * a file whose YAML does not parse is reported (control reports it too).
 */
export function loadWorkloads(dir: string): { workloads: LocalWorkload[]; errors: string[] } {
  const workloads: LocalWorkload[] = [];
  const errors: string[] = [];
  for (const file of yamlFiles(dir)) {
    const source = relative(dir, file) || file;
    // Control's decode stage, with its limits: a bad file is an error here, never a throw.
    let values: unknown[];
    try {
      const tooBig = sizeError(statSync(file).size);
      if (tooBig) throw new Error(tooBig);
      const text = decodeText(readFileSync(file));
      if (!text.ok) throw new Error(text.message);
      const docs = decodeDocuments(text.text);
      if (!docs.ok) throw new Error(docs.errors.map((e) => e.message).join('; '));
      values = docs.docs.map((d) => d.value);
    } catch (e) {
      errors.push(`${source}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    for (const v of values) {
      if (!isObj(v) || v.kind !== 'Workload') continue;
      const r = parseWorkload(v, source);
      errors.push(...r.errors);
      if (r.workload) workloads.push(r.workload);
    }
  }
  const seen = new Set<string>();
  for (const w of workloads) {
    const k = `${w.namespace}/${w.name}`;
    if (seen.has(k)) errors.push(`${w.source}: Workload ${k}: metadata.name: declared twice`);
    seen.add(k);
  }
  return { workloads, errors };
}

export function workloadKey(w: { namespace: string; name: string }): string {
  return `${w.namespace}/${w.name}`;
}

/**
 * Each workload's index, the third octet of its pods' IPs. Workloads already
 * in `existing` keep theirs (a running pod never changes address); new ones
 * take the smallest free index from 1, in namespace/name order, so a fresh
 * start gives the same addresses whatever the file layout.
 */
export function assignIndexes(workloads: readonly LocalWorkload[], existing: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const out = new Map(existing);
  const used = new Set(out.values());
  const sorted = [...workloads].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  let next = 1;
  for (const w of sorted) {
    const k = workloadKey(w);
    if (out.has(k)) continue;
    while (used.has(next)) next++;
    if (next > 254) throw new Error(`too many workloads; at most 254 fit one pod IP prefix`);
    out.set(k, next);
    used.add(next);
  }
  return out;
}

/** The pods of one workload: `<name>-<r>` at `<prefix>.<index>.<r+1>`. */
export function podsOf(w: LocalWorkload, index: number, prefix: string): LocalPod[] {
  return Array.from({ length: w.replicas }, (_, r) => ({ workload: w, name: `${w.name}-${r}`, replica: r, ip: `${prefix}.${index}.${r + 1}` }));
}

/**
 * One pod per replica, each with its own loopback IP `<prefix>.<i+1>.<r+1>`:
 * workloads sorted by namespace and name, so an address is stable across
 * runs whatever the file layout. `<prefix>.0.x` stays free for control.
 */
export function planPods(workloads: readonly LocalWorkload[], prefix = '127.0'): LocalPod[] {
  const idx = assignIndexes(workloads);
  return [...workloads]
    .sort((a, b) => idx.get(workloadKey(a))! - idx.get(workloadKey(b))!)
    .flatMap((w) => podsOf(w, idx.get(workloadKey(w))!, prefix));
}

/** Same pods, same processes: everything but the replica count. */
export function sameSpec(a: LocalWorkload, b: LocalWorkload): boolean {
  const strip = (w: LocalWorkload) => JSON.stringify({ ...w, replicas: 0, source: '' });
  return strip(a) === strip(b);
}

export function isPodIpPrefix(s: string): boolean {
  const m = /^127\.(\d{1,3})$/.exec(s);
  return m !== null && Number(m[1]) <= 255;
}

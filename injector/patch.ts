// The patch builder: pure, from a pod (or pod template) to RFC 6902 add operations.
import { INJECTED_ANNOTATION } from '../api/index.js';
import { decide } from './decide.js';
import { readProxyConfig } from './config.js';
import { APP_PROBES_ANNOTATION, APP_PROBES_ENV, rewriteProbes } from './probes.js';
import type { AddOp, PodLike } from './pod.js';
import {
  declaredPorts, identityVolume, initContainer, proxyContainer, resolveOptions, terminationGraceFor, IDENTITY_VOLUME, INIT_CONTAINER_NAME,
  PROXY_CONTAINER_NAME, TERMINATION_MARGIN_S, type InjectOptions,
} from './proxy-spec.js';

export type PatchResult =
  | { inject: true; ops: AddOp[]; warnings: string[] }
  | { inject: false; reason: string; warnings: string[] };

/** RFC 6901 escaping of one path segment. */
export function pointerSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

/**
 * Decides and builds the patch. `namespaceLabels` are the labels of the pod's
 * namespace as far as the caller knows them. The ops only add, paths rooted at the pod.
 */
export function buildPatch(pod: PodLike, namespaceLabels: Record<string, string>, opts: InjectOptions = {}): PatchResult {
  const spec = pod.spec;
  if (!spec || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    return { inject: false, reason: 'pod has no spec.containers', warnings: [] };
  }
  const d = decide(pod, namespaceLabels);
  if (!d.inject) return { inject: false, reason: d.reason, warnings: [] };

  const taken = new Set([...(spec.initContainers ?? []), ...spec.containers].map((c) => c.name));
  for (const name of [INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME]) {
    if (taken.has(name)) return { inject: false, reason: `pod already has a container named ${name}`, warnings: [] };
  }
  if ((spec.volumes ?? []).some((v) => v.name === IDENTITY_VOLUME)) {
    return { inject: false, reason: `pod already has a volume named ${IDENTITY_VOLUME}`, warnings: [] };
  }

  const o = resolveOptions(opts);
  const annotations = pod.metadata?.annotations ?? {};
  const { config, warnings } = readProxyConfig(annotations);
  const init = initContainer(config, o);
  const proxy = proxyContainer(config, o, declaredPorts([...(spec.initContainers ?? []), ...spec.containers]));
  const ops: AddOp[] = [];

  // The app's probes go through the sidecar's admin port (strict mTLS never refuses the kubelet).
  // Their ops come first: in legacy mode the proxy is inserted before the app containers.
  const probes = config.rewriteProbes ? rewriteProbes(spec.containers) : undefined;
  if (probes && Object.keys(probes.table).length > 0) {
    (proxy.env ??= []).push({ name: APP_PROBES_ENV, value: JSON.stringify(probes.table) });
    for (const p of probes.containers) ops.push({ op: 'add', path: `/spec/containers/${p.index}/${p.field}`, value: p.probe });
  }
  if (probes) warnings.push(...probes.warnings);

  if (o.nativeSidecar) {
    // weft-init, then the proxy, then the pod's own init containers (which can use the mesh).
    if (!spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [init, proxy] });
    else ops.push({ op: 'add', path: '/spec/initContainers/0', value: proxy }, { op: 'add', path: '/spec/initContainers/0', value: init });
  } else {
    // Without native sidecars the proxy is not running during init: weft-init goes last so
    // the pod's own init containers run before interception starts and keep their network.
    if (!spec.initContainers) ops.push({ op: 'add', path: '/spec/initContainers', value: [init] });
    else ops.push({ op: 'add', path: '/spec/initContainers/-', value: init });
    ops.push({ op: 'add', path: '/spec/containers/0', value: proxy });
    if (pod.kind === 'Job' || pod.metadata?.labels?.['job-name'] !== undefined) {
      warnings.push('legacy (non-native) sidecar in a Job pod: the proxy keeps running after the job\'s container exits');
    }
  }

  // The kubelet must give the sidecar its drain: SIGKILL comes after terminationGracePeriodSeconds.
  const current = typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : undefined;
  const grace = terminationGraceFor(current, config.drainTimeoutMs);
  if (grace !== undefined) {
    ops.push({ op: 'add', path: '/spec/terminationGracePeriodSeconds', value: grace });
    if (current !== undefined) warnings.push(`spec.terminationGracePeriodSeconds: ${current} s is shorter than the sidecar's drain (${config.drainTimeoutMs} ms) plus ${TERMINATION_MARGIN_S} s; raised to ${grace}`);
  }

  if (!spec.volumes) ops.push({ op: 'add', path: '/spec/volumes', value: [identityVolume(o)] });
  else ops.push({ op: 'add', path: '/spec/volumes/-', value: identityVolume(o) });

  const newAnnotations: Record<string, string> = { [INJECTED_ANNOTATION]: o.version };
  if (probes && Object.keys(probes.original).length > 0) newAnnotations[APP_PROBES_ANNOTATION] = JSON.stringify(probes.original);
  if (annotations[DEFAULT_CONTAINER_ANNOTATION] === undefined && spec.containers[0]) {
    // kubectl logs/exec should land in the app, not the proxy.
    newAnnotations[DEFAULT_CONTAINER_ANNOTATION] = spec.containers[0].name;
  }
  if (!pod.metadata) ops.unshift({ op: 'add', path: '/metadata', value: { annotations: newAnnotations } });
  else if (!pod.metadata.annotations) ops.unshift({ op: 'add', path: '/metadata/annotations', value: newAnnotations });
  else {
    const annOps = Object.entries(newAnnotations).map(([k, v]): AddOp => ({ op: 'add', path: `/metadata/annotations/${pointerSegment(k)}`, value: v }));
    ops.unshift(...annOps);
  }
  return { inject: true, ops, warnings };
}

/** Applies add operations (the only kind buildPatch emits) to a deep copy of `doc`. */
export function applyAddOps<T>(doc: T, ops: AddOp[]): T {
  const root = structuredClone(doc) as unknown;
  for (const op of ops) {
    const segs = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = segs.pop();
    if (last === undefined) throw new Error(`patch: empty path in ${op.path}`);
    let cur: unknown = root;
    for (const s of segs) {
      cur = Array.isArray(cur) ? cur[Number(s)] : (cur as Record<string, unknown>)[s];
      if (typeof cur !== 'object' || cur === null) throw new Error(`patch: ${op.path}: no parent at "${s}"`);
    }
    const value = structuredClone(op.value);
    if (Array.isArray(cur)) {
      if (last === '-') cur.push(value);
      else cur.splice(Number(last), 0, value);
    } else {
      (cur as Record<string, unknown>)[last] = value;
    }
  }
  return root as T;
}

// Route and policy status: condition types and reasons of Gateway API v1.1
// (apis/v1/shared_types.go, apis/v1alpha2/policy_types.go), and how condition
// timestamps stay deterministic.
//
// compile is pure, so it cannot read a clock: every condition it builds
// carries lastTransitionTime = the resource's creationTimestamp (or the Unix
// epoch when absent). The edge that writes status (Kubernetes source, or
// `weft get` display) calls carryTransitionTimes(previous, next, now) so a
// condition whose status/reason did not change keeps its old time and a
// changed one gets `now` — the metav1.Condition contract.
import type { Condition, ParentReference, PolicyStatus, RouteParentStatus, RouteStatus } from '../api/index.js';
import { CONTROLLER_NAME } from '../api/index.js';

export const EPOCH = '1970-01-01T00:00:00Z';
const MAX_MESSAGE = 32768;

export const RouteReason = {
  Accepted: 'Accepted',
  NoMatchingParent: 'NoMatchingParent',
  UnsupportedValue: 'UnsupportedValue',
  IncompatibleFilters: 'IncompatibleFilters',
  // GEP-1426 §Route types names this reason; apis/v1 has no constant for it in v1.1.
  Conflicted: 'Conflicted',
  ResolvedRefs: 'ResolvedRefs',
  RefNotPermitted: 'RefNotPermitted',
  InvalidKind: 'InvalidKind',
  BackendNotFound: 'BackendNotFound',
  UnsupportedProtocol: 'UnsupportedProtocol',
} as const;

export const PolicyReason = {
  Accepted: 'Accepted',
  Conflicted: 'Conflicted',
  Invalid: 'Invalid',
  TargetNotFound: 'TargetNotFound',
} as const;

export function condition(
  type: string,
  ok: boolean,
  reason: string,
  message: string,
  generation: number | undefined,
  time: string,
): Condition {
  // metav1.Condition.message is at most 32768 bytes.
  const msg = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 20)} ... (truncated)` : message;
  const c: Condition = { type, status: ok ? 'True' : 'False', reason, message: msg, lastTransitionTime: time };
  if (generation !== undefined) c.observedGeneration = generation;
  return c;
}

export function routeParentStatus(parentRef: ParentReference, conditions: Condition[]): RouteParentStatus {
  return { parentRef, controllerName: CONTROLLER_NAME, conditions };
}

/**
 * Keep lastTransitionTime from `previous` for every condition whose type,
 * status and reason are unchanged; stamp `now` on the others.
 */
export function carryTransitionTimes(previous: Condition[] | undefined, next: Condition[], now: string): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    if (old && old.status === c.status && old.reason === c.reason) return { ...c, lastTransitionTime: old.lastTransitionTime };
    return { ...c, lastTransitionTime: now };
  });
}

function sameRef(a: ParentReference, b: ParentReference): boolean {
  return (
    (a.group ?? '') === (b.group ?? '') &&
    (a.kind ?? '') === (b.kind ?? '') &&
    (a.namespace ?? '') === (b.namespace ?? '') &&
    a.name === b.name &&
    (a.sectionName ?? '') === (b.sectionName ?? '') &&
    (a.port ?? 0) === (b.port ?? 0)
  );
}

/** Apply carryTransitionTimes across a whole RouteStatus (entries matched by parentRef). */
export function carryRouteStatusTimes(previous: RouteStatus | undefined, next: RouteStatus, now: string): RouteStatus {
  return {
    parents: next.parents.map((p) => {
      const old = previous?.parents.find((q) => q.controllerName === p.controllerName && sameRef(q.parentRef, p.parentRef));
      return { ...p, conditions: carryTransitionTimes(old?.conditions, p.conditions, now) };
    }),
  };
}

/** Apply carryTransitionTimes across a whole PolicyStatus (entries matched by ancestorRef). */
export function carryPolicyStatusTimes(previous: PolicyStatus | undefined, next: PolicyStatus, now: string): PolicyStatus {
  return {
    ancestors: next.ancestors.map((a) => {
      const old = previous?.ancestors.find((q) => q.controllerName === a.controllerName && sameRef(q.ancestorRef, a.ancestorRef));
      return { ...a, conditions: carryTransitionTimes(old?.conditions, a.conditions, now) };
    }),
  };
}

/**
 * Merge weft's entries into a status that other controllers may share: keep
 * entries of other controllers, replace ours (Gateway API: controllers own
 * only the entries carrying their controllerName).
 */
export function mergeRouteStatus(existing: RouteStatus | undefined, ours: RouteStatus): RouteStatus {
  const others = (existing?.parents ?? []).filter((p) => p.controllerName !== CONTROLLER_NAME);
  return { parents: [...others, ...ours.parents].slice(0, 32) };
}

export function mergePolicyStatus(existing: PolicyStatus | undefined, ours: PolicyStatus): PolicyStatus {
  const others = (existing?.ancestors ?? []).filter((p) => p.controllerName !== CONTROLLER_NAME);
  return { ancestors: [...others, ...ours.ancestors].slice(0, 16) };
}

// XBackendTrafficPolicy (GEP-3388): the retry budget of a Service's backends.
// One policy per Service takes effect, the oldest (then by name), as with the
// other direct policies; later ones are Conflicted. A Service without one
// still gets the CRD's default budget in the sidecar (DEFAULT_RETRY_BUDGET).
import type { Condition, PolicyAncestorStatus, RetryBudget, Service, XBackendTrafficPolicy } from '../api/index.js';
import { CONTROLLER_NAME, DEFAULT_RETRY_BUDGET } from '../api/index.js';
import { formatDuration, parseDuration } from './duration.js';
import { createdMs } from './precedence.js';
import { EPOCH, PolicyReason, condition } from './status.js';
import type { ResourceStatus } from './types.js';

export interface TrafficPolicyIndex {
  /** The retry budget for a Service ("ns/name") from its XBackendTrafficPolicy, or undefined. */
  retryBudget(svcKey: string): RetryBudget | undefined;
  statuses: ResourceStatus[];
}

/** The compiled budget of a validated (defaulted) policy. */
export function retryBudgetOf(p: XBackendTrafficPolicy): RetryBudget {
  const rc = p.spec.retryConstraint;
  const ms = (v: string | undefined, d: number) => (v === undefined ? d : parseDuration(v) ?? d);
  return {
    percent: rc?.budget?.percent ?? DEFAULT_RETRY_BUDGET.percent,
    intervalMs: ms(rc?.budget?.interval, DEFAULT_RETRY_BUDGET.intervalMs),
    minRetryCount: rc?.minRetryRate?.count ?? DEFAULT_RETRY_BUDGET.minRetryCount,
    minRetryIntervalMs: ms(rc?.minRetryRate?.interval, DEFAULT_RETRY_BUDGET.minRetryIntervalMs),
    policy: `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`,
  };
}

/** "20% of requests over 10s, plus 10 per 1s" (status, describe). */
export function describeRetryBudget(b: RetryBudget): string {
  return `retries at most ${b.percent}% of requests over ${formatDuration(b.intervalMs)}, plus ${b.minRetryCount} per ${formatDuration(b.minRetryIntervalMs)}`;
}

interface Ref {
  p: XBackendTrafficPolicy;
  ns: string;
  name: string;
  created: number;
}

function older(a: Ref, b: Ref): boolean {
  if (a.created !== b.created) return a.created < b.created;
  return `${a.ns}/${a.name}` < `${b.ns}/${b.name}`;
}

export function compileTrafficPolicies(policies: XBackendTrafficPolicy[], services: Map<string, Service>): TrafficPolicyIndex {
  const refs: Ref[] = policies.map((p) => ({ p, ns: p.metadata.namespace ?? 'default', name: p.metadata.name, created: createdMs(p.metadata.creationTimestamp) }));
  const isService = (t: { group: string; kind: string }) => (t.group === '' || t.group === 'core') && t.kind === 'Service';
  // Winner per Service among policies that target it and set a retryConstraint.
  const winner = new Map<string, Ref>();
  for (const r of refs) {
    if (!r.p.spec.retryConstraint) continue;
    for (const t of r.p.spec.targetRefs) {
      const svcKey = `${r.ns}/${t.name}`;
      if (!isService(t) || !services.has(svcKey)) continue;
      const cur = winner.get(svcKey);
      if (!cur || older(r, cur)) winner.set(svcKey, r);
    }
  }
  const budgets = new Map<string, RetryBudget>();
  for (const [svcKey, r] of winner) budgets.set(svcKey, retryBudgetOf(r.p));

  const statuses: ResourceStatus[] = refs.map((r) => {
    const bySvc = new Map<string, { ok: boolean; reason: string; message: string }>();
    for (const t of r.p.spec.targetRefs) {
      const svcKey = `${r.ns}/${t.name}`;
      let o: { ok: boolean; reason: string; message: string };
      if (!isService(t)) {
        o = { ok: false, reason: PolicyReason.Invalid, message: `targetRef ${t.group || 'core'}/${t.kind} ${t.name}: only Services (group "", kind Service) are supported` };
      } else if (!services.has(svcKey)) {
        o = { ok: false, reason: PolicyReason.TargetNotFound, message: `Service ${svcKey} not found` };
      } else if (!r.p.spec.retryConstraint) {
        o = { ok: true, reason: PolicyReason.Accepted, message: `accepted (no retryConstraint set: Service ${svcKey} keeps the default budget, ${describeRetryBudget(DEFAULT_RETRY_BUDGET)})` };
      } else if (winner.get(svcKey) === r) {
        const extra = r.p.spec.sessionPersistence ? '; sessionPersistence here is not applied (weft reads it from BackendLBPolicy or the route rule)' : '';
        o = { ok: true, reason: PolicyReason.Accepted, message: `${describeRetryBudget(budgets.get(svcKey)!)} to Service ${svcKey}${extra}` };
      } else {
        const w = winner.get(svcKey)!;
        o = { ok: false, reason: PolicyReason.Conflicted, message: `XBackendTrafficPolicy ${w.ns}/${w.name} is older and already sets the retry budget of Service ${svcKey}` };
      }
      const prev = bySvc.get(svcKey);
      if (!prev || (prev.ok && !o.ok)) bySvc.set(svcKey, o);
    }
    const gen = r.p.metadata.generation;
    const time = r.p.metadata.creationTimestamp ?? EPOCH;
    const ancestors: PolicyAncestorStatus[] = [...bySvc.entries()].slice(0, 16).map(([svcKey, o]) => {
      const [ns, name] = svcKey.split('/') as [string, string];
      const conds: Condition[] = [condition('Accepted', o.ok, o.reason, o.message, gen, time)];
      return { ancestorRef: { group: '', kind: 'Service', namespace: ns, name }, controllerName: CONTROLLER_NAME, conditions: conds };
    });
    return { kind: 'XBackendTrafficPolicy', namespace: r.ns, name: r.name, generation: gen, status: { ancestors } };
  });

  return {
    retryBudget: (svcKey) => budgets.get(svcKey),
    statuses,
  };
}

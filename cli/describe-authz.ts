// `weft describe workload|pod NAME` and `weft describe policy NAME` for an
// AuthorizationPolicy: the "inherited policies" view GEP-3779 asks for,
// because label selectors hide which policies reach a pod. Pure text from an
// inventory and its compile result.
import type { AuthorizationPolicy, Condition, LabelSelector, PolicyStatus, Workload } from '../api/index.js';
import type { CompiledAuthzPolicy, PodRef, CompileResult, ConfigError, RegisteredWorkload, ResourceStatus } from '../control/index.js';
import { formatConfigError } from '../control/index.js';

interface Inv {
  resources: Array<{ kind: string; metadata: { name: string; namespace?: string } }>;
  statuses: ResourceStatus[];
  errors: ConfigError[];
  registered: RegisteredWorkload[];
}

export function formatSelector(sel: LabelSelector | undefined): string {
  if (!sel) return '(none)';
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
  }
  return parts.length ? parts.join(',') : '{} (every pod of the namespace)';
}

/** "Pod{app=cart}" for tables. */
export function formatAuthzTarget(t: AuthorizationPolicy['spec']['targetRefs'][number]): string {
  return t.kind === 'Pod' ? `Pod{${t.selector ? formatSelector(t.selector).replace(/ \(every pod of the namespace\)$/, '') : ''}}` : `${t.kind}/${t.name ?? ''}`;
}

function acceptedOf(st: ResourceStatus | undefined): Condition | undefined {
  return (st?.status as PolicyStatus | undefined)?.ancestors?.[0]?.conditions.find((c) => c.type === 'Accepted');
}

function policyLines(c: CompileResult, p: CompiledAuthzPolicy, indent: string): string[] {
  const st = c.statuses.find((s) => s.kind === 'AuthorizationPolicy' && s.namespace === p.namespace && s.name === p.name);
  const acc = acceptedOf(st);
  const out = [`${indent}${p.namespace}/${p.name}   selector ${p.selectors.map(formatSelector).join(' | ')}   Accepted ${acc?.status ?? '-'}`];
  p.summary.forEach((s, i) => out.push(`${indent}  ${p.config.rules.length === 0 ? 'allows' : `rule ${i + 1} allows`} ${s}`));
  return out;
}

/** The text of `weft describe workload NAME` / `pod NAME`; undefined when there is no such thing. */
export function describeWorkloadAuthz(inv: Inv, c: CompileResult, kind: 'workload' | 'pod', namespace: string, name: string): string | undefined {
  const wl = inv.resources.find((r) => r.kind === 'Workload' && (r.metadata.namespace ?? 'default') === namespace && r.metadata.name === name) as Workload | undefined;
  const pods = inv.registered.filter((r) => r.namespace === namespace && (kind === 'pod' ? r.podName === name : r.workload === name));
  if (!wl && pods.length === 0) return undefined;
  const labels = pods[0]?.labels ?? wl?.spec.labels ?? {};
  const ref: PodRef = { namespace, name: pods[0]?.podName ?? '', workload: pods[0]?.workload ?? wl?.metadata.name ?? name, labels, podIP: pods[0]?.podIP ?? '' };
  const view = c.inbound(ref);
  const policies = c.authz.policiesFor({ ...ref, labels });
  const out: string[] = [
    `${kind === 'pod' ? 'Pod' : 'Workload'}:     ${namespace}/${name}`,
    `Service account: ${pods[0]?.serviceAccount ?? wl?.spec.serviceAccount ?? 'default'}`,
    `Labels:       ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') || '(none)'}`,
  ];
  if (pods.length) out.push('Pods:', ...pods.map((p) => `  ${p.podName || p.workload}   ${p.podIP}`));
  out.push(`Default inbound policy: ${view.defaultPolicy} (from ${view.defaultFrom === 'mesh' ? 'the mesh default' : view.defaultFrom === 'namespace' ? `namespace ${namespace}` : view.defaultFrom === 'workload' ? 'the Workload spec' : 'the pod annotation weft.io/default-inbound-policy'})`);
  out.push(`Probe paths (always allowed): ${view.probes.length ? view.probes.map((p) => (p.port ? `${p.path} on port ${p.port}` : p.path)).join(', ') : '(none)'}`);
  if (policies.length === 0) {
    out.push(`Authorization policies: none select it; the default inbound policy ${view.defaultPolicy} decides:`);
    out.push(`  ${defaultMeaning(view.defaultPolicy)}`);
  } else {
    out.push(`Authorization policies (${policies.length}; a request is allowed only if a rule of one of them matches${view.defaultPolicy === 'audit' ? ' — audit: what none allows is let through and counted' : ''}):`);
    for (const p of policies) out.push(...policyLines(c, p, '  '));
  }
  return out.join('\n') + '\n';
}

function defaultMeaning(p: string): string {
  switch (p) {
    case 'all-unauthenticated':
      return 'every caller is allowed, meshed or not';
    case 'all-authenticated':
      return 'every meshed caller (mTLS identity) is allowed; plaintext callers are refused';
    case 'deny':
      return 'every caller is refused, except on the probe paths';
    default:
      return 'every caller is allowed, and counted as weft_authz_decisions_total{decision="audit"}';
  }
}

/** `weft describe policy NAME` for an AuthorizationPolicy. */
export function describeAuthorizationPolicy(inv: Inv, c: CompileResult, p: AuthorizationPolicy, head: string[]): string {
  const ns = p.metadata.namespace ?? 'default';
  const out = [...head, `Action:       ${p.spec.action}`, 'Targets:'];
  for (const t of p.spec.targetRefs) out.push(`  ${formatAuthzTarget(t)}`);
  const cp = c.authz.policies.find((x) => x.namespace === ns && x.name === p.metadata.name);
  out.push('Allows:');
  for (const s of cp?.summary ?? ['nothing (no supported target)']) out.push(`  ${s}`);
  const pods = inv.registered.filter((r) => r.namespace === ns && cp?.selectors.some(() => c.authz.policiesFor({ namespace: ns, name: r.podName, workload: r.workload, labels: r.labels, podIP: r.podIP }).includes(cp)));
  out.push(`Selected pods: ${pods.length ? pods.map((r) => r.podName || r.workload).join(', ') : '(none now)'}`);
  const st = c.statuses.find((s) => s.kind === 'AuthorizationPolicy' && s.namespace === ns && s.name === p.metadata.name);
  out.push('Status:');
  for (const a of (st?.status as PolicyStatus | undefined)?.ancestors ?? []) {
    for (const cond of a.conditions) out.push(`  ${cond.type}  ${cond.status}  ${cond.reason}: ${cond.message}`);
  }
  const errs = [...inv.errors, ...c.errors].filter((e) => e.resource === `AuthorizationPolicy ${ns}/${p.metadata.name}`);
  if (errs.length) out.push('Errors:', ...[...new Set(errs.map((e) => `  ${formatConfigError(e)}`))]);
  return out.join('\n') + '\n';
}

// AuthorizationPolicy (GEP-3779) → the per-pod inbound view a sidecar enforces.
//
// Semantics (GEP-3779, "ALLOW" action):
// - a policy targets only pods of its own namespace, by label selector;
// - a pod that no policy targets accepts whatever its default inbound policy
//   accepts (Linkerd's model: mesh flag < namespace annotation < Workload spec
//   < pod annotation `weft.io/default-inbound-policy`);
// - once one or more ALLOW policies target a pod, a request is allowed only if
//   it matches at least one rule of one of them; a rule matches when its
//   sources (omitted = any, `[]` = none) and its ports (omitted = any) match;
//   a policy without rules allows nothing;
// - ServiceAccount sources: namespace omitted = the policy's, name "*" = every
//   service account of that namespace; SPIFFE sources match exactly.
// Pure: no clock, no I/O.
import type {
  AuthorizationPolicy,
  AuthzPolicyConfig,
  AuthzRuleConfig,
  Condition,
  DefaultInboundPolicy,
  InboundAuthzConfig,
  LabelSelector,
  Namespace,
  Workload,
} from '../api/index.js';
import { CONTROLLER_NAME, DEFAULT_INBOUND_POLICIES, DEFAULT_INBOUND_POLICY_ANNOTATION } from '../api/index.js';
import { EPOCH, PolicyReason, condition } from './status.js';
import type { ConfigError, RegisteredWorkload, ResourceStatus } from './types.js';

export interface AuthzOptions {
  trustDomain: string;
  /** The mesh-wide default (`weft control --default-inbound-policy`). */
  defaultInboundPolicy: DefaultInboundPolicy;
}

/** The pod a sidecar runs in, as its Hello (and the registry) tell it. */
export interface PodRef {
  namespace: string;
  /** Pod name (Kubernetes) or replica name (local mode); '' when unknown. */
  name: string;
  workload: string;
  labels: Record<string, string>;
  podIP: string;
}

/** One policy as compile keeps it. */
export interface CompiledAuthzPolicy {
  namespace: string;
  name: string;
  selectors: LabelSelector[];
  config: AuthzPolicyConfig;
  /** What each rule allows, in words (describe, get). */
  summary: string[];
}

export interface AuthzIndex {
  policies: CompiledAuthzPolicy[];
  statuses: ResourceStatus[];
  errors: ConfigError[];
  /** The policies that select `pod` (name order). */
  policiesFor(pod: PodRef): CompiledAuthzPolicy[];
  /** The inbound view of one pod. */
  forPod(pod: PodRef): InboundAuthzConfig;
}

export function isDefaultInboundPolicy(v: unknown): v is DefaultInboundPolicy {
  return typeof v === 'string' && (DEFAULT_INBOUND_POLICIES as readonly string[]).includes(v);
}

/** metav1.LabelSelector semantics; `{}` matches every pod. */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(val!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(val!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

function compileRule(policyNs: string, rule: NonNullable<AuthorizationPolicy['spec']['rules']>[number], td: string): { cfg: AuthzRuleConfig; text: string } {
  const cfg: AuthzRuleConfig = {};
  const who: string[] = [];
  if (rule.sources !== undefined) {
    const identities = new Set<string>();
    const prefixes = new Set<string>();
    for (const s of rule.sources) {
      if (s.type === 'SPIFFE' && s.spiffe) {
        identities.add(s.spiffe);
        who.push(s.spiffe);
      } else if (s.type === 'ServiceAccount' && s.serviceAccount) {
        const ns = s.serviceAccount.namespace || policyNs;
        if (s.serviceAccount.name === '*') {
          prefixes.add(`spiffe://${td}/ns/${ns}/sa/`);
          who.push(`every service account of namespace ${ns}`);
        } else {
          identities.add(`spiffe://${td}/ns/${ns}/sa/${s.serviceAccount.name}`);
          who.push(`service account ${ns}/${s.serviceAccount.name}`);
        }
      }
    }
    cfg.sources = { identities: [...identities].sort(), prefixes: [...prefixes].sort() };
  }
  const ports = rule.networkAttributes?.ports;
  if (ports !== undefined) cfg.ports = [...new Set(ports)].sort((a, b) => a - b);
  const from = rule.sources === undefined ? 'any caller' : who.length === 0 ? 'nobody' : who.join(', ');
  const on = cfg.ports === undefined ? 'on every port' : cfg.ports.length === 0 ? 'on no port' : `on port${cfg.ports.length > 1 ? 's' : ''} ${cfg.ports.join(', ')}`;
  return { cfg, text: `${from} ${on}` };
}

function defaultFromAnnotation(
  ann: Record<string, string> | undefined,
  resource: string,
  errors: ConfigError[],
): DefaultInboundPolicy | undefined {
  const v = ann?.[DEFAULT_INBOUND_POLICY_ANNOTATION];
  if (v === undefined) return undefined;
  if (isDefaultInboundPolicy(v)) return v;
  errors.push({
    source: 'compile',
    resource,
    field: `metadata.annotations.${DEFAULT_INBOUND_POLICY_ANNOTATION}`,
    message: `Unsupported value: ${JSON.stringify(v)}: supported values: ${DEFAULT_INBOUND_POLICIES.map((p) => `"${p}"`).join(', ')} (ignored)`,
  });
  return undefined;
}

export function compileAuthz(
  input: {
    authorizationPolicies: AuthorizationPolicy[];
    namespaces: Namespace[];
    workloads: Workload[];
    registered: RegisteredWorkload[];
  },
  opts: AuthzOptions,
): AuthzIndex {
  const errors: ConfigError[] = [];
  const statuses: ResourceStatus[] = [];
  const policies: CompiledAuthzPolicy[] = [];
  const td = opts.trustDomain;

  const nsDefault = new Map<string, DefaultInboundPolicy>();
  for (const n of input.namespaces) {
    const d = defaultFromAnnotation(n.metadata.annotations, `Namespace ${n.metadata.name}`, errors);
    if (d) nsDefault.set(n.metadata.name, d);
  }
  const workloads = new Map<string, Workload>();
  for (const w of input.workloads) workloads.set(`${w.metadata.namespace ?? 'default'}/${w.metadata.name}`, w);
  const byIP = new Map<string, RegisteredWorkload>();
  for (const r of input.registered) if (r.podIP) byIP.set(r.podIP, r);
  for (const r of input.registered) {
    if (r.defaultInboundPolicy !== undefined && !isDefaultInboundPolicy(r.defaultInboundPolicy)) {
      errors.push({
        source: 'compile',
        resource: `Pod ${r.namespace}/${r.podName || r.workload}`,
        field: `metadata.annotations.${DEFAULT_INBOUND_POLICY_ANNOTATION}`,
        message: `Unsupported value: ${JSON.stringify(r.defaultInboundPolicy)}: supported values: ${DEFAULT_INBOUND_POLICIES.map((p) => `"${p}"`).join(', ')} (ignored)`,
      });
    }
  }

  const sorted = [...input.authorizationPolicies].sort((a, b) => {
    const ka = `${a.metadata.namespace ?? 'default'}/${a.metadata.name}`;
    const kb = `${b.metadata.namespace ?? 'default'}/${b.metadata.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
  for (const p of sorted) {
    const ns = p.metadata.namespace ?? 'default';
    const name = p.metadata.name;
    const time = p.metadata.creationTimestamp ?? EPOCH;
    const selectors: LabelSelector[] = [];
    const ignored: string[] = [];
    for (const ref of p.spec.targetRefs ?? []) {
      if (ref.kind === 'Pod' && (ref.group ?? '') === '' && ref.selector) selectors.push(ref.selector);
      else ignored.push(`${ref.kind}${ref.name ? ` ${ref.name}` : ''}`);
    }
    const rules = (p.spec.rules ?? []).map((r) => compileRule(ns, r, td));
    const cp: CompiledAuthzPolicy = {
      namespace: ns,
      name,
      selectors,
      config: { name: `${ns}/${name}`, rules: rules.map((r) => r.cfg) },
      summary: rules.length === 0 ? ['nothing (the policy has no rules)'] : rules.map((r) => r.text),
    };
    let cond: Condition;
    if (selectors.length === 0) {
      cond = condition(
        'Accepted',
        false,
        'TargetNotSupported',
        `no targetRef weft enforces (supported: group "", kind Pod with a selector); ignored: ${ignored.join(', ')}`,
        p.metadata.generation,
        time,
      );
      errors.push({ source: 'compile', resource: `AuthorizationPolicy ${ns}/${name}`, field: 'spec.targetRefs', message: cond.message });
    } else {
      policies.push(cp);
      const pods = input.registered.filter((r) => r.namespace === ns && selectors.some((s) => selectorMatches(s, r.labels))).length;
      const extra = ignored.length ? `; targetRefs ignored (only kind Pod is supported): ${ignored.join(', ')}` : '';
      cond = condition('Accepted', true, PolicyReason.Accepted, `selects ${pods} pod(s) of namespace ${ns} now; allows ${cp.summary.join('; ')}${extra}`, p.metadata.generation, time);
    }
    statuses.push({
      kind: 'AuthorizationPolicy',
      namespace: ns,
      name,
      ...(p.metadata.generation !== undefined ? { generation: p.metadata.generation } : {}),
      status: { ancestors: [{ ancestorRef: { group: '', kind: 'Namespace', name: ns }, controllerName: CONTROLLER_NAME, conditions: [cond] }] },
    });
  }

  const byNs = new Map<string, CompiledAuthzPolicy[]>();
  for (const p of policies) {
    const l = byNs.get(p.namespace) ?? [];
    l.push(p);
    byNs.set(p.namespace, l);
  }

  const policiesFor = (pod: PodRef): CompiledAuthzPolicy[] =>
    (byNs.get(pod.namespace) ?? []).filter((p) => p.selectors.some((s) => selectorMatches(s, pod.labels)));

  return {
    policies,
    statuses,
    errors,
    policiesFor,
    forPod(pod: PodRef): InboundAuthzConfig {
      const reg = pod.podIP ? byIP.get(pod.podIP) : undefined;
      // The API server's labels when control knows the pod (Kubernetes: the Pod watch), else the Hello's.
      const target: PodRef = reg && reg.namespace === pod.namespace ? { ...pod, labels: reg.labels } : pod;
      const wl = workloads.get(`${pod.namespace}/${pod.workload || reg?.workload || ''}`);
      let defaultPolicy = opts.defaultInboundPolicy;
      let defaultFrom: InboundAuthzConfig['defaultFrom'] = 'mesh';
      const nsd = nsDefault.get(pod.namespace);
      if (nsd) [defaultPolicy, defaultFrom] = [nsd, 'namespace'];
      if (isDefaultInboundPolicy(wl?.spec.defaultInboundPolicy)) [defaultPolicy, defaultFrom] = [wl!.spec.defaultInboundPolicy as DefaultInboundPolicy, 'workload'];
      if (isDefaultInboundPolicy(reg?.defaultInboundPolicy)) [defaultPolicy, defaultFrom] = [reg!.defaultInboundPolicy as DefaultInboundPolicy, 'pod'];
      const probes = new Map<string, { port: number; path: string }>();
      for (const path of wl?.spec.probePaths ?? []) probes.set(`0 ${path}`, { port: 0, path });
      for (const pr of reg?.probes ?? []) probes.set(`${pr.port} ${pr.path}`, pr);
      return {
        pod: `${pod.namespace}/${pod.name || pod.workload || pod.podIP}`,
        defaultPolicy,
        defaultFrom,
        probes: [...probes.values()].sort((a, b) => a.port - b.port || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
        policies: policiesFor(target).map((p) => p.config),
      };
    },
  };
}

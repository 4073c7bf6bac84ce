// BackendLBPolicy (session persistence for a Service's backends) and
// BackendTLSPolicy (TLS origination to a Service outside the mesh): which
// policy applies to which Service port, the compiled setting, and policy status.
import { X509Certificate, createHash } from 'node:crypto';
import type {
  BackendLBPolicy,
  BackendTLS,
  BackendTLSPolicy,
  Condition,
  PolicyAncestorStatus,
  Service,
  SessionConfig,
  SessionPersistence,
} from '../api/index.js';
import { CONTROLLER_NAME } from '../api/index.js';
import { parseDuration } from './duration.js';
import { createdMs } from './precedence.js';
import { EPOCH, PolicyReason, condition } from './status.js';
import type { ConfigError, ResourceStatus } from './types.js';

/** A cookie/header name unique to `scope` (GEP-1619: "a unique cookie name should be generated"). */
export function generatedSessionName(scope: string): string {
  return `weft-session-${createHash('sha256').update(scope).digest('hex').slice(0, 12)}`;
}

export function sessionConfig(
  sp: SessionPersistence,
  scope: string,
  source: SessionConfig['source'],
  path?: string,
): SessionConfig {
  const s: SessionConfig = {
    type: sp.type ?? 'Cookie',
    name: sp.sessionName || generatedSessionName(scope),
    permanent: sp.cookieConfig?.lifetimeType === 'Permanent',
    scope,
    source,
  };
  const abs = sp.absoluteTimeout ? parseDuration(sp.absoluteTimeout) : null;
  const idle = sp.idleTimeout ? parseDuration(sp.idleTimeout) : null;
  if (abs !== null && abs > 0) s.absoluteTimeoutMs = abs;
  if (idle !== null && idle > 0) s.idleTimeoutMs = idle;
  if (path !== undefined && s.type === 'Cookie') s.path = path;
  return s;
}

interface PolicyRef {
  kind: string;
  namespace: string;
  name: string;
  created: number;
  generation?: number;
  time: string;
}

function older(a: PolicyRef, b: PolicyRef): boolean {
  if (a.created !== b.created) return a.created < b.created;
  return `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}`;
}

interface TargetOutcome {
  svc: string; // "ns/name"
  ok: boolean;
  reason: string;
  message: string;
}

export interface PolicyIndex {
  /** Session persistence for a Service ("ns/name") from its BackendLBPolicy. */
  lbSession(svcKey: string): { policy: SessionPersistence; name: string } | undefined;
  /** TLS origination for a Service port, or undefined. */
  tls(svcKey: string, port: number): BackendTLS | undefined;
  statuses: ResourceStatus[];
  errors: ConfigError[];
}

export function compilePolicies(
  lbPolicies: BackendLBPolicy[],
  tlsPolicies: BackendTLSPolicy[],
  services: Map<string, Service>,
  configMaps: Map<string, Record<string, string>>,
  isMeshed: (svcKey: string) => boolean,
): PolicyIndex {
  const errors: ConfigError[] = [];
  const statuses: ResourceStatus[] = [];
  const outcomes = new Map<string, TargetOutcome[]>(); // policy "kind ns/name" → per target
  const ref = (p: BackendLBPolicy | BackendTLSPolicy): PolicyRef => ({
    kind: p.kind,
    namespace: p.metadata.namespace ?? 'default',
    name: p.metadata.name,
    created: createdMs(p.metadata.creationTimestamp),
    generation: p.metadata.generation,
    time: p.metadata.creationTimestamp ?? EPOCH,
  });
  const outcome = (r: PolicyRef, o: TargetOutcome) => {
    const k = `${r.kind} ${r.namespace}/${r.name}`;
    const list = outcomes.get(k) ?? [];
    list.push(o);
    outcomes.set(k, list);
  };

  // ---- BackendLBPolicy: one per Service; the oldest wins, later ones are Conflicted.
  const lbWinner = new Map<string, { r: PolicyRef; p: BackendLBPolicy }>();
  for (const p of lbPolicies) {
    const r = ref(p);
    for (const t of p.spec.targetRefs) {
      const svcKey = `${r.namespace}/${t.name}`;
      if (!((t.group === '' || t.group === 'core') && t.kind === 'Service')) {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.Invalid, message: `targetRef ${t.group}/${t.kind} ${t.name}: only Services (group "", kind Service) are supported` });
        continue;
      }
      if (!services.has(svcKey)) {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.TargetNotFound, message: `Service ${svcKey} not found` });
        continue;
      }
      if (!p.spec.sessionPersistence) {
        outcome(r, { svc: svcKey, ok: true, reason: PolicyReason.Accepted, message: 'accepted (no sessionPersistence set: nothing to apply)' });
        continue;
      }
      const cur = lbWinner.get(svcKey);
      if (!cur || older(r, cur.r)) lbWinner.set(svcKey, { r, p });
    }
  }
  for (const p of lbPolicies) {
    const r = ref(p);
    for (const t of p.spec.targetRefs) {
      const svcKey = `${r.namespace}/${t.name}`;
      const w = lbWinner.get(svcKey);
      if (!w || !p.spec.sessionPersistence) continue;
      if (w.p === p) {
        outcome(r, { svc: svcKey, ok: true, reason: PolicyReason.Accepted, message: `session persistence (${p.spec.sessionPersistence.type ?? 'Cookie'}) applies to Service ${svcKey}; a route rule's own sessionPersistence overrides it` });
      } else {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.Conflicted, message: `BackendLBPolicy ${w.r.namespace}/${w.r.name} is older and already targets Service ${svcKey}` });
      }
    }
  }

  // ---- BackendTLSPolicy: per Service port; a policy naming the port (sectionName)
  // beats one for the whole Service; among equals the oldest wins.
  interface TlsCand { r: PolicyRef; p: BackendTLSPolicy; section: string; tls: BackendTLS }
  const tlsCands = new Map<string, TlsCand[]>(); // svcKey → candidates
  for (const p of tlsPolicies) {
    const r = ref(p);
    const v = p.spec.validation;
    const problems: string[] = [];
    // T1/T2 (validated here rather than at load so the backend fails closed).
    const hasRefs = (v.caCertificateRefs?.length ?? 0) > 0;
    const hasWK = !!v.wellKnownCACertificates;
    if (hasRefs && hasWK) problems.push('must not contain both CACertificateRefs and WellKnownCACertificates');
    if (!hasRefs && !hasWK) problems.push('must specify either CACertificateRefs or WellKnownCACertificates');
    for (const m of problems) {
      errors.push({ source: 'compile', resource: `BackendTLSPolicy ${r.namespace}/${r.name}`, field: 'spec.validation', message: m });
    }
    let caPem: string | undefined;
    if (hasRefs && !hasWK) {
      const pems: string[] = [];
      v.caCertificateRefs!.forEach((cr, i) => {
        if (!(cr.group === '' || cr.group === 'core') || cr.kind !== 'ConfigMap') {
          problems.push(`validation.caCertificateRefs[${i}]: ${cr.group || 'core'}/${cr.kind} is not supported (ConfigMap only)`);
          return;
        }
        const data = configMaps.get(`${r.namespace}/${cr.name}`);
        if (!data) {
          problems.push(`validation.caCertificateRefs[${i}]: ConfigMap ${r.namespace}/${cr.name} not found`);
          return;
        }
        const pem = data['ca.crt'];
        if (!pem) {
          problems.push(`validation.caCertificateRefs[${i}]: ConfigMap ${r.namespace}/${cr.name} has no key ca.crt`);
          return;
        }
        const bad = checkPemBundle(pem);
        if (bad) {
          problems.push(`validation.caCertificateRefs[${i}]: ConfigMap ${r.namespace}/${cr.name} ca.crt: ${bad}`);
          return;
        }
        pems.push(pem.trim());
      });
      if (pems.length > 0) caPem = pems.join('\n') + '\n';
    }
    const tls: BackendTLS = { hostname: v.hostname, policy: `${r.namespace}/${r.name}` };
    if (problems.length > 0) tls.invalid = `BackendTLSPolicy ${r.namespace}/${r.name} is invalid: ${problems.join('; ')}`;
    else if (hasWK) tls.system = true;
    else tls.caPem = caPem;

    for (const t of p.spec.targetRefs) {
      const svcKey = `${r.namespace}/${t.name}`;
      if (!((t.group === '' || t.group === 'core') && t.kind === 'Service')) {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.Invalid, message: `targetRef ${t.group}/${t.kind} ${t.name}: only Services are supported` });
        continue;
      }
      const svc = services.get(svcKey);
      if (!svc) {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.TargetNotFound, message: `Service ${svcKey} not found` });
        continue;
      }
      if (t.sectionName && !(svc.spec.ports ?? []).some((sp) => sp.name === t.sectionName)) {
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.TargetNotFound, message: `Service ${svcKey} has no port named ${t.sectionName}` });
        continue;
      }
      if (isMeshed(svcKey)) {
        // GEP-1897: service-to-service traffic is the mesh's own mTLS.
        outcome(r, { svc: svcKey, ok: false, reason: PolicyReason.Invalid, message: `not applicable: Service ${svcKey} is in the mesh, its traffic already uses mesh mTLS (GEP-1897); the policy changes nothing` });
        continue;
      }
      const list = tlsCands.get(svcKey) ?? [];
      list.push({ r, p, section: t.sectionName ?? '', tls });
      tlsCands.set(svcKey, list);
    }
  }
  // Resolve winners per port, record outcomes.
  const tlsByPort = new Map<string, BackendTLS>();
  const tlsWins = new Map<TlsCand, string[]>();
  const tlsLoses = new Map<TlsCand, string[]>();
  for (const [svcKey, cands] of tlsCands) {
    const svc = services.get(svcKey)!;
    for (const sp of svc.spec.ports ?? []) {
      const applicable = cands.filter((c) => c.section === '' || c.section === sp.name);
      if (applicable.length === 0) continue;
      applicable.sort((a, b) => (a.section !== b.section ? (a.section ? -1 : 1) : older(a.r, b.r) ? -1 : older(b.r, a.r) ? 1 : 0));
      const win = applicable[0]!;
      tlsByPort.set(`${svcKey}:${sp.port}`, win.tls);
      tlsWins.set(win, [...(tlsWins.get(win) ?? []), String(sp.port)]);
      for (const l of applicable.slice(1)) {
        tlsLoses.set(l, [...(tlsLoses.get(l) ?? []), `${sp.port} (BackendTLSPolicy ${win.r.namespace}/${win.r.name} wins)`]);
      }
    }
  }
  for (const [svcKey, cands] of tlsCands) {
    for (const c of cands) {
      const won = tlsWins.get(c);
      const lost = tlsLoses.get(c);
      if (won) {
        if (c.tls.invalid) {
          outcome(c.r, { svc: svcKey, ok: false, reason: PolicyReason.Invalid, message: `${c.tls.invalid}; requests to Service ${svcKey} port(s) ${won.join(', ')} fail closed (503)` });
        } else {
          outcome(c.r, { svc: svcKey, ok: true, reason: PolicyReason.Accepted, message: `TLS to Service ${svcKey} port(s) ${won.join(', ')} with SNI ${c.tls.hostname}, verified against ${c.tls.system ? 'the system roots' : 'the referenced CA'}` });
        }
      } else {
        outcome(c.r, { svc: svcKey, ok: false, reason: PolicyReason.Conflicted, message: `another policy applies to Service ${svcKey} port(s) ${(lost ?? []).join(', ')}` });
      }
    }
  }

  // ---- status per policy: one ancestor per target Service.
  for (const p of [...lbPolicies, ...tlsPolicies]) {
    const r = ref(p);
    const list = outcomes.get(`${r.kind} ${r.namespace}/${r.name}`) ?? [];
    const bySvc = new Map<string, TargetOutcome>();
    for (const o of list) {
      const prev = bySvc.get(o.svc);
      // Keep the worst outcome per Service ancestor.
      if (!prev || (prev.ok && !o.ok)) bySvc.set(o.svc, o);
    }
    const ancestors: PolicyAncestorStatus[] = [...bySvc.values()].slice(0, 16).map((o) => {
      const [ns, name] = o.svc.split('/') as [string, string];
      const conds: Condition[] = [condition('Accepted', o.ok, o.reason, o.message, r.generation, r.time)];
      return { ancestorRef: { group: '', kind: 'Service', namespace: ns, name }, controllerName: CONTROLLER_NAME, conditions: conds };
    });
    statuses.push({ kind: r.kind, namespace: r.namespace, name: r.name, generation: r.generation, status: { ancestors } });
  }

  return {
    lbSession(svcKey) {
      const w = lbWinner.get(svcKey);
      return w ? { policy: w.p.spec.sessionPersistence!, name: `${w.r.namespace}/${w.r.name}` } : undefined;
    },
    tls(svcKey, port) {
      return tlsByPort.get(`${svcKey}:${port}`);
    },
    statuses,
    errors,
  };
}

/** '' when `pem` holds one or more parsable certificates, else why not. */
export function checkPemBundle(pem: string): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks || blocks.length === 0) return 'no PEM certificate found';
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (e) {
      return `certificate ${i + 1} does not parse (${(e as Error).message})`;
    }
  }
  return '';
}

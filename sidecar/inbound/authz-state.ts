// The inbound authorization in force: control's InboundUpdate validated,
// built into an Authorizer once (authorize.ts) and swapped whole, so every
// request — also on keep-alive and HTTP/2 connections opened earlier — is
// checked against the config current when it arrives. Counts every decision
// in weft_authz_decisions_total{policy, source_identity, decision} and logs
// each denied or audited (port, caller) once per config.
import { FEATURE_INBOUND_AUTHZ, type InboundAuthzConfig, type InboundUpdateMsg } from '../../api/index.js';
import { ALLOW_ALL_CONFIG, buildAuthorizer, validateInboundAuthz, type AuthzDecision, type Authorizer } from './authorize.js';
import type { SidecarMetrics } from '../admin/metrics.js';

export { FEATURE_INBOUND_AUTHZ };

/** Distinct caller identities given their own label value; the rest count as "other" (bounded series). */
const MAX_SOURCE_IDENTITIES = 200;

export class InboundAuthz {
  private authorizer: Authorizer = buildAuthorizer(ALLOW_ALL_CONFIG);
  private readonly identities = new Set<string>();
  version = '';
  /** Last NACK, for /config. */
  lastError: string | undefined;

  constructor(
    private readonly metrics: SidecarMetrics | undefined,
    private readonly log: (line: string) => void,
  ) {}

  get config(): InboundAuthzConfig {
    return this.authorizer.config;
  }

  /** Applies one InboundUpdate; returns the NACK message, or undefined. The previous config stays on error. */
  apply(msg: InboundUpdateMsg): string | undefined {
    let raw: unknown;
    try {
      raw = JSON.parse(Buffer.from(msg.config_json ?? []).toString('utf8'));
    } catch (e) {
      return this.nack(`inbound version ${msg.version}: config_json is not JSON: ${(e as Error).message}`);
    }
    const v = validateInboundAuthz(raw);
    if (!v.ok) return this.nack(`inbound version ${msg.version}: ${v.field}: ${v.message}`);
    try {
      this.authorizer = buildAuthorizer(v.config);
    } catch (e) {
      return this.nack(`inbound version ${msg.version}: ${(e as Error).message}`);
    }
    this.version = msg.version;
    this.lastError = undefined;
    this.metrics?.setConfigVersion('inbound', msg.version);
    this.metrics?.applied.inc({ resource_type: 'inbound' });
    const c = v.config;
    this.log(
      `inbound authorization ${msg.version}: default ${c.defaultPolicy} (from ${c.defaultFrom}), ` +
        (c.policies.length ? `policies ${c.policies.map((p) => p.name).join(', ')}` : 'no AuthorizationPolicy'),
    );
    return undefined;
  }

  private nack(err: string): string {
    this.lastError = err;
    this.metrics?.nacked.inc({ resource_type: 'inbound' });
    return err;
  }

  /** Checks one request (path given) or connection, counts it, and logs a first deny/audit. */
  check(port: number, peer: string, path?: string): AuthzDecision {
    const d = this.authorizer.check(port, peer, path);
    let cell = d.counted as { value: number } | undefined;
    if (!cell) {
      cell = this.cellFor(d);
      d.counted = cell;
      if (d.decision !== 'allow') this.log(`inbound authorization: ${d.decision} ${peer || '(unauthenticated)'} on port ${port}: ${d.reason}`);
    }
    cell.value++;
    return d;
  }

  private cellFor(d: AuthzDecision): { value: number } {
    let id = d.peer;
    if (id && !this.identities.has(id)) {
      if (this.identities.size < MAX_SOURCE_IDENTITIES) this.identities.add(id);
      else id = 'other';
    }
    if (!this.metrics) return { value: 0 };
    return this.metrics.authzDecisions.cell({ policy: d.policy, source_identity: id, decision: d.decision });
  }
}

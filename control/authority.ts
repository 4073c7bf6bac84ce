// The issuer and trust bundle control signs and verifies with, replaced while
// it runs (rotation without a restart). Sources offer what they read — STATE's
// files (authority-files.ts), or the ConfigMap and Secret of a cluster
// (authority-kubernetes.ts); a candidate is checked before it is used (the
// issuer's key matches its certificate, the issuer chains to an anchor of the
// bundle, nothing expired), so a half-written rotation or a bad edit keeps the
// last good pair in service, with an error naming the field.
import { EventEmitter } from 'node:events';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { certSha256, splitPemBundle, type Pem } from '../certs/index.js';

export interface AuthorityPair {
  issuer: Pem;
  trustBundlePem: string;
}

export interface AuthorityChange {
  issuerChanged: boolean;
  bundleChanged: boolean;
  from: string;
}

/** What is wrong with a pair, naming the field; undefined when it can be used. */
export function authorityProblem(p: AuthorityPair, now = new Date()): string | undefined {
  const anchors: X509Certificate[] = [];
  const blocks = splitPemBundle(p.trustBundlePem);
  if (blocks.length === 0) return 'trust bundle: holds no CERTIFICATE block';
  for (const [i, b] of blocks.entries()) {
    try {
      anchors.push(new X509Certificate(b));
    } catch (e) {
      return `trust bundle: anchor #${i + 1}: ${(e as Error).message}`;
    }
  }
  let issuer: X509Certificate;
  try {
    issuer = new X509Certificate(p.issuer.certPem);
  } catch (e) {
    return `issuer certificate: ${(e as Error).message}`;
  }
  try {
    if (!issuer.checkPrivateKey(createPrivateKey(p.issuer.keyPem))) return 'issuer key: does not match the issuer certificate';
  } catch (e) {
    return `issuer key: ${(e as Error).message}`;
  }
  if (new Date(issuer.validTo) <= now) return `issuer certificate: expired ${new Date(issuer.validTo).toISOString()}`;
  if (!issuer.ca) return 'issuer certificate: not a CA';
  if (!anchors.some((a) => issuer.checkIssued(a) && issuer.verify(a.publicKey))) {
    return 'issuer certificate: not signed by any anchor of the trust bundle (its leaves would be refused)';
  }
  return undefined;
}

/** Holds the pair in service; emits 'changed' (AuthorityChange) after a good candidate replaced it. */
export class LiveAuthority extends EventEmitter {
  private lastError = new Map<string, string>();
  private issuerFp: string;

  constructor(
    private readonly target: AuthorityPair,
    private readonly log: (line: string) => void,
  ) {
    super();
    this.issuerFp = certSha256(target.issuer.certPem);
  }

  get issuer(): Pem {
    return this.target.issuer;
  }

  get trustBundlePem(): string {
    return this.target.trustBundlePem;
  }

  /** Lowercase hex SHA-256 of the issuer certificate's DER; sidecars compare their leaf's issuer with it. */
  get issuerSha256(): string {
    return this.issuerFp;
  }

  /**
   * A source read a new issuer and/or bundle. Returns undefined when it is in
   * service (or nothing changed), else the reason it is not.
   */
  offer(c: Partial<AuthorityPair>, from: string): string | undefined {
    const next: AuthorityPair = {
      issuer: c.issuer ?? this.target.issuer,
      trustBundlePem: c.trustBundlePem ?? this.target.trustBundlePem,
    };
    const issuerChanged = next.issuer.certPem !== this.target.issuer.certPem || next.issuer.keyPem !== this.target.issuer.keyPem;
    const bundleChanged = next.trustBundlePem !== this.target.trustBundlePem;
    if (!issuerChanged && !bundleChanged) {
      this.lastError.delete(from);
      return undefined;
    }
    const problem = authorityProblem(next);
    if (problem) {
      // A rotation writes key then certificate: the first look may catch them apart. Say it once.
      if (this.lastError.get(from) !== problem) this.log(`control: ${from}: not using the new issuer/trust bundle, keeping the current one: ${problem}`);
      this.lastError.set(from, problem);
      return problem;
    }
    this.lastError.delete(from);
    this.target.issuer = next.issuer;
    this.target.trustBundlePem = next.trustBundlePem;
    if (issuerChanged) this.issuerFp = certSha256(next.issuer.certPem);
    const n = splitPemBundle(next.trustBundlePem).length;
    this.log(`control: ${from}: ${[issuerChanged ? `issuer ${this.issuerFp.slice(0, 16)}` : '', bundleChanged ? `trust bundle of ${n} anchor(s)` : ''].filter(Boolean).join(' and ')} now in service`);
    this.emit('changed', { issuerChanged, bundleChanged, from } satisfies AuthorityChange);
    return undefined;
  }
}

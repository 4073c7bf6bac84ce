// Chain verification against a trust bundle that may hold several anchors
// (during anchor rotation the bundle carries old and new roots).
import { X509Certificate } from 'node:crypto';
import { basicConstraintsOf, certExtensions, keyUsageBit, uriSansOf, type Ext } from './der.js';
import { splitPemBundle } from './pem.js';

interface Parsed {
  x: X509Certificate;
  exts: Map<string, Ext>;
  label: string;
}

function parse(pem: string, label: string): Parsed {
  try {
    const x = new X509Certificate(pem);
    return { x, exts: certExtensions(x.raw), label };
  } catch (e) {
    throw new Error(`${label}: not a PEM X.509 certificate (${(e as Error).message})`);
  }
}

function basicConstraints(c: Parsed): { cA: boolean; pathLen?: number } {
  return basicConstraintsOf(c.exts);
}

function canSignCerts(c: Parsed): string | undefined {
  if (!basicConstraints(c).cA) return `${c.label} (${c.x.subject.replace(/\n/g, ', ')}) is not a CA (basicConstraints cA false)`;
  const KEY_CERT_SIGN = 5;
  if (keyUsageBit(c.exts, KEY_CERT_SIGN) === false) return `${c.label} lacks keyUsage keyCertSign`;
  return undefined;
}

function inWindow(c: Parsed, now: Date): string | undefined {
  const nb = new Date(c.x.validFrom);
  const na = new Date(c.x.validTo);
  if (now < nb) return `${c.label} is not valid before ${nb.toISOString()}`;
  if (now > na) return `${c.label} expired at ${na.toISOString()}`;
  return undefined;
}

function signedBy(child: Parsed, parent: Parsed): boolean {
  return child.x.checkIssued(parent.x) && child.x.verify(parent.x.publicKey);
}

export interface VerifyOptions {
  /** Require the leaf to carry exactly one SPIFFE URI SAN (default true). */
  requireSpiffeId?: boolean;
}

/**
 * Verifies leaf → chain... → one root of bundlePem at `now`: signatures, issuer
 * names, CA flags and keyCertSign, pathLen, validity windows of every link, and
 * that the leaf carries exactly one SPIFFE URI SAN.
 */
export function verifyChain(
  leafPem: string,
  chainPems: string[],
  bundlePem: string,
  now: Date = new Date(),
  opts: VerifyOptions = {},
): { ok: true; spiffeId?: string } | { ok: false; error: string } {
  try {
    const leaf = parse(leafPem, 'leaf');
    const roots = splitPemBundle(bundlePem).map((p, i) => parse(p, `trust anchor #${i + 1}`));
    if (roots.length === 0) return { ok: false, error: 'trust bundle holds no certificates' };
    const rootFps = new Set(roots.map((r) => r.x.fingerprint256));
    // A presented chain may repeat the anchor; the anchor always comes from the bundle.
    const pool = chainPems
      .flatMap((p) => splitPemBundle(p))
      .map((p, i) => parse(p, `chain certificate #${i + 1}`))
      .filter((c) => !rootFps.has(c.x.fingerprint256));

    if (basicConstraints(leaf).cA) return { ok: false, error: 'leaf is a CA certificate' };
    const ids = uriSansOf(leaf.exts).filter((u) => u.startsWith('spiffe://'));
    if (ids.length > 1) return { ok: false, error: `leaf has ${ids.length} SPIFFE URI SANs; exactly one is allowed` };
    if (ids.length === 0 && opts.requireSpiffeId !== false) return { ok: false, error: 'leaf has no SPIFFE URI SAN' };
    const w = inWindow(leaf, now);
    if (w) return { ok: false, error: w };

    let cur = leaf;
    let intermediatesBelow = 0; // CA certs between cur and the leaf
    const used = new Set<Parsed>();
    for (let depth = 0; depth < 8; depth++) {
      const root = roots.find((r) => signedBy(cur, r));
      if (root) {
        const e = canSignCerts(root) ?? inWindow(root, now) ?? pathLenOk(root, intermediatesBelow);
        if (e) return { ok: false, error: e };
        return ids.length === 1 ? { ok: true, spiffeId: ids[0] as string } : { ok: true };
      }
      const next = pool.find((c) => !used.has(c) && signedBy(cur, c));
      if (!next) {
        return { ok: false, error: `${cur.label} (issuer ${cur.x.issuer.replace(/\n/g, ', ')}) does not chain to any trust anchor in the bundle` };
      }
      const e = canSignCerts(next) ?? inWindow(next, now) ?? pathLenOk(next, intermediatesBelow);
      if (e) return { ok: false, error: e };
      used.add(next);
      cur = next;
      intermediatesBelow++;
    }
    return { ok: false, error: 'chain longer than 8 certificates' };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

function pathLenOk(ca: Parsed, intermediatesBelow: number): string | undefined {
  const { pathLen } = basicConstraints(ca);
  if (pathLen !== undefined && intermediatesBelow > pathLen) {
    return `${ca.label} allows ${pathLen} intermediate CA(s) below it, chain has ${intermediatesBelow}`;
  }
  return undefined;
}

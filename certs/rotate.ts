// Trust-anchor and issuer rotation in three steps, none of which breaks a
// handshake (Linkerd #4287, #3676 lost traffic doing it in one):
//   anchor  — a new anchor joins the bundle (old + new); the issuer stays,
//             so every leaf keeps verifying everywhere;
//   issuer  — a new issuer signed by the newest anchor; sidecars renew from
//             it, and old and new leaves both verify against old + new;
//   finish  — the newest anchor alone in the bundle, once no leaf of the old
//             issuer is left.
// The steps are pure (files in, files out); reading and writing the files of
// STATE/ca or of `weft certs --out DIR` is at the bottom.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createIssuer, createTrustAnchor, type Pem } from './sign.js';
import { certValidity, splitPemBundle } from './pem.js';
import { writePublicFile as writePublic, writeSecretFile } from './authority.js';

/** What a rotation step reads and writes. */
export interface AuthorityFiles {
  /** The newest trust anchor, with its key when this machine holds it. */
  anchor: { certPem: string; keyPem?: string };
  issuer: Pem;
  /** Every anchor sidecars trust (one, or several during a rotation). */
  trustBundlePem: string;
}

export type RotateStep = 'anchor' | 'issuer' | 'finish';
export const ROTATE_STEPS: readonly RotateStep[] = ['anchor', 'issuer', 'finish'];

export interface RotateOptions {
  now?: Date;
  anchorValidityMs?: number;
  issuerValidityMs?: number;
}

export type RotateResult = { files: AuthorityFiles; summary: string } | { error: string };

/** Lowercase hex SHA-256 of a certificate's DER (openssl x509 -fingerprint -sha256, without colons). */
export function certSha256(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
}

function firstBlock(pem: string): string {
  return splitPemBundle(pem)[0] ?? pem;
}

function signedBy(childPem: string, parentPem: string): boolean {
  try {
    const c = new X509Certificate(childPem);
    const p = new X509Certificate(parentPem);
    return c.checkIssued(p) && c.verify(p.publicKey);
  } catch {
    return false;
  }
}

function short(pem: string): string {
  return certSha256(pem).slice(0, 16);
}

/** Step 1: a new anchor; the bundle keeps every still-valid anchor and adds the new one; the issuer is untouched. */
export function rotateAnchor(a: AuthorityFiles, o: RotateOptions = {}): RotateResult {
  const now = o.now ?? new Date();
  const anchor = createTrustAnchor({ now, ...(o.anchorValidityMs !== undefined ? { validityMs: o.anchorValidityMs } : {}) });
  const kept = splitPemBundle(a.trustBundlePem).filter((b) => certValidity(b).notAfter > now);
  const bundle = [...kept, firstBlock(anchor.certPem)];
  return {
    files: { anchor, issuer: a.issuer, trustBundlePem: bundle.join('') },
    summary: `new trust anchor ${short(anchor.certPem)}; the bundle holds ${bundle.length} anchors; the issuer is unchanged`,
  };
}

/** Step 2: a new issuer signed by the newest anchor (its key must be here). */
export function rotateIssuer(a: AuthorityFiles, o: RotateOptions = {}): RotateResult {
  if (!a.anchor.keyPem) return { error: 'anchor key: missing (the newest anchor must sign the new issuer)' };
  const anchorBlock = firstBlock(a.anchor.certPem);
  if (!splitPemBundle(a.trustBundlePem).includes(anchorBlock)) {
    return { error: 'trust bundle: does not hold the newest anchor; leaves of its issuer would be refused (run `weft certs rotate anchor` first)' };
  }
  const now = o.now ?? new Date();
  const issuer = createIssuer({ certPem: a.anchor.certPem, keyPem: a.anchor.keyPem }, { now, ...(o.issuerValidityMs !== undefined ? { validityMs: o.issuerValidityMs } : {}) });
  return {
    files: { anchor: a.anchor, issuer, trustBundlePem: a.trustBundlePem },
    summary: `new issuer ${short(issuer.certPem)} signed by anchor ${short(a.anchor.certPem)}; sidecars renew their leaves from it within a minute`,
  };
}

/** Step 3: only the newest anchor stays in the bundle; refused while the issuer is not signed by it. */
export function finishRotation(a: AuthorityFiles): RotateResult {
  const anchorBlock = firstBlock(a.anchor.certPem);
  if (!signedBy(a.issuer.certPem, anchorBlock)) {
    return { error: 'issuer: not signed by the newest anchor; finishing now would make every leaf fail (run `weft certs rotate issuer` first)' };
  }
  const dropped = splitPemBundle(a.trustBundlePem).filter((b) => b !== anchorBlock).length;
  return {
    files: { anchor: a.anchor, issuer: a.issuer, trustBundlePem: anchorBlock },
    summary: `the bundle holds anchor ${short(anchorBlock)} alone (${dropped} older anchor(s) removed)`,
  };
}

export function rotate(step: RotateStep, a: AuthorityFiles, o: RotateOptions = {}): RotateResult {
  if (step === 'anchor') return rotateAnchor(a, o);
  if (step === 'issuer') return rotateIssuer(a, o);
  return finishRotation(a);
}

export type RotationPhase = 'steady' | 'anchor-added' | 'issuer-rotated' | 'broken';

export interface RotationStatus {
  phase: RotationPhase;
  anchors: number;
  /** The step to run next, if any. */
  next?: RotateStep;
  message: string;
}

/**
 * Which step of a rotation a bundle and issuer are in. The newest anchor is
 * `anchorPem` when known (STATE/ca/anchor.pem, DIR/anchor.pem), else the
 * bundle's anchor with the latest notBefore (the last one on a tie: rotate
 * anchor appends).
 */
export function rotationStatus(bundlePem: string, issuerPem: string, anchorPem?: string): RotationStatus {
  let blocks: string[];
  try {
    blocks = splitPemBundle(bundlePem);
    blocks.forEach((b) => new X509Certificate(b));
  } catch (e) {
    return { phase: 'broken', anchors: 0, message: `trust bundle: ${(e as Error).message}` };
  }
  const n = blocks.length;
  if (n === 0) return { phase: 'broken', anchors: 0, message: 'trust bundle: holds no certificate' };
  let newest: string | undefined = anchorPem ? firstBlock(anchorPem) : undefined;
  if (newest && !blocks.includes(newest)) {
    return { phase: 'broken', anchors: n, next: 'anchor', message: 'trust bundle: does not hold the newest anchor (anchor.pem)' };
  }
  if (!newest) {
    let best = -Infinity;
    for (const b of blocks) {
      const t = certValidity(b).notBefore.getTime();
      if (t >= best) [best, newest] = [t, b];
    }
  }
  const signer = blocks.find((b) => signedBy(issuerPem, b));
  const anchors = `bundle has ${n} anchor${n === 1 ? '' : 's'}`;
  if (!signer) return { phase: 'broken', anchors: n, message: `${anchors}; the issuer is signed by none of them: leaves it signs are refused` };
  if (n === 1) return { phase: 'steady', anchors: n, message: `no rotation in progress (${anchors}; the issuer is signed by it)` };
  if (signer !== newest) {
    return { phase: 'anchor-added', anchors: n, next: 'issuer', message: `rotation: ${anchors}; issuer signed by the old anchor → run \`weft certs rotate issuer\`` };
  }
  return {
    phase: 'issuer-rotated',
    anchors: n,
    next: 'finish',
    message: `rotation: ${anchors}; issuer signed by the new anchor → once every sidecar has renewed its leaf (within a minute), run \`weft certs rotate finish\``,
  };
}

// ---- files --------------------------------------------------------------

/** Where the anchor, issuer and bundle live: STATE_FILES (local mode) or ISSUER_DIR_FILES (`weft certs --out DIR`). */
export interface AuthorityLayout {
  anchorCert: string;
  anchorKey: string;
  issuerCert: string;
  issuerKey: string;
  trustBundle: string;
}

/** Reads the files of a layout; the error names the missing or broken file. */
export function readAuthorityFiles(dir: string, layout: AuthorityLayout): AuthorityFiles | { error: string } {
  const path = (f: string) => join(dir, f);
  const need = [layout.anchorCert, layout.issuerCert, layout.issuerKey];
  for (const f of need) if (!existsSync(path(f))) return { error: `${path(f)}: missing` };
  const anchorCert = readFileSync(path(layout.anchorCert), 'utf8');
  const anchorKey = existsSync(path(layout.anchorKey)) ? readFileSync(path(layout.anchorKey), 'utf8') : undefined;
  const issuer = { certPem: readFileSync(path(layout.issuerCert), 'utf8'), keyPem: readFileSync(path(layout.issuerKey), 'utf8') };
  const trustBundlePem = existsSync(path(layout.trustBundle)) ? readFileSync(path(layout.trustBundle), 'utf8') : firstBlock(anchorCert);
  for (const [f, pem] of [[layout.anchorCert, anchorCert], [layout.issuerCert, issuer.certPem], [layout.trustBundle, trustBundlePem]] as const) {
    const blocks = splitPemBundle(pem);
    if (blocks.length === 0) return { error: `${path(f)}: holds no CERTIFICATE block` };
    try {
      blocks.forEach((b) => new X509Certificate(b));
    } catch (e) {
      return { error: `${path(f)}: ${(e as Error).message}` };
    }
  }
  try {
    if (!new X509Certificate(issuer.certPem).checkPrivateKey(createPrivateKey(issuer.keyPem))) return { error: `${path(layout.issuerKey)}: does not match ${layout.issuerCert}` };
  } catch (e) {
    return { error: `${path(layout.issuerKey)}: ${(e as Error).message}` };
  }
  return { anchor: { certPem: anchorCert, ...(anchorKey ? { keyPem: anchorKey } : {}) }, issuer, trustBundlePem };
}

/**
 * Writes what changed, in the order a running control can follow: the anchor
 * (control does not read it), the bundle, then the issuer key and certificate
 * (control checks that they match before it signs with them).
 */
export function writeAuthorityFiles(dir: string, layout: AuthorityLayout, before: AuthorityFiles, after: AuthorityFiles): string[] {
  const path = (f: string) => join(dir, f);
  const written: string[] = [];
  if (after.anchor.certPem !== before.anchor.certPem) {
    if (after.anchor.keyPem) {
      writeSecretFile(path(layout.anchorKey), after.anchor.keyPem);
      written.push(layout.anchorKey);
    }
    writePublic(path(layout.anchorCert), after.anchor.certPem);
    written.push(layout.anchorCert);
  }
  if (after.trustBundlePem !== before.trustBundlePem || !existsSync(path(layout.trustBundle))) {
    writePublic(path(layout.trustBundle), after.trustBundlePem);
    written.push(layout.trustBundle);
  }
  if (after.issuer.certPem !== before.issuer.certPem) {
    writeSecretFile(path(layout.issuerKey), after.issuer.keyPem);
    writePublic(path(layout.issuerCert), after.issuer.certPem);
    written.push(layout.issuerKey, layout.issuerCert);
  }
  return written;
}

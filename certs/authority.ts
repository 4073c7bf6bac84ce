// Local mode's certificate authority: STATE/ca/{anchor,issuer}.{pem,key},
// created on first run and reused afterwards; STATE/trust-bundle.pem for sidecars.
import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, openSync, closeSync, fsyncSync, chmodSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DEFAULT_TRUST_DOMAIN, STATE_FILES } from '../api/index.js';
import { createIssuer, createTrustAnchor, type Pem } from './sign.js';
import { certValidity, renewAt, splitPemBundle } from './pem.js';

/** Atomic write (temp file + rename) with mode 0600: private keys, tokens. */
export function writeSecretFile(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, 0o600); // the umask never widens it, but be explicit
  renameSync(tmp, path);
}

/** Atomic write (temp file + rename) with mode 0644: certificates, bundles. */
export function writePublicFile(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

function readPem(stateDir: string, cert: string, key: string): Pem | undefined {
  const c = join(stateDir, cert);
  const k = join(stateDir, key);
  if (!existsSync(c) || !existsSync(k)) return undefined;
  return { certPem: readFileSync(c, 'utf8'), keyPem: readFileSync(k, 'utf8') };
}

/** Still usable: not expired and not past 70% of its life (so leaves signed now get most of their lifetime). */
function fresh(pem: Pem, now: Date): boolean {
  const v = certValidity(pem.certPem);
  return now >= v.notBefore && now < renewAt(v.notBefore, v.notAfter);
}

export function loadOrCreateAuthority(
  stateDir: string,
  opts: { trustDomain?: string; now?: Date } = {},
): { anchor: Pem; issuer: Pem; trustBundlePem: string; trustDomain: string } {
  const now = opts.now ?? new Date();
  let anchor = readPem(stateDir, STATE_FILES.anchorCert, STATE_FILES.anchorKey);
  let issuer = readPem(stateDir, STATE_FILES.issuerCert, STATE_FILES.issuerKey);
  if (!anchor || certValidity(anchor.certPem).notAfter <= now) {
    anchor = createTrustAnchor({ now });
    writeSecretFile(join(stateDir, STATE_FILES.anchorKey), anchor.keyPem);
    writePublicFile(join(stateDir, STATE_FILES.anchorCert), anchor.certPem);
    issuer = undefined; // a new anchor needs a new issuer
  }
  if (!issuer || !fresh(issuer, now)) {
    issuer = createIssuer(anchor, { now });
    writeSecretFile(join(stateDir, STATE_FILES.issuerKey), issuer.keyPem);
    writePublicFile(join(stateDir, STATE_FILES.issuerCert), issuer.certPem);
  }
  // Keep still-valid anchors already in the bundle (rotation: old leaves keep verifying).
  const bundlePath = join(stateDir, STATE_FILES.trustBundle);
  const anchorBlock = splitPemBundle(anchor.certPem)[0] ?? anchor.certPem;
  const kept = existsSync(bundlePath)
    ? splitPemBundle(readFileSync(bundlePath, 'utf8')).filter((b) => b !== anchorBlock && certValidity(b).notAfter > now)
    : [];
  const trustBundlePem = [anchorBlock, ...kept].join('');
  if (!existsSync(bundlePath) || readFileSync(bundlePath, 'utf8') !== trustBundlePem) writePublicFile(bundlePath, trustBundlePem);
  return { anchor, issuer, trustBundlePem, trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN };
}

/** The files of an issuer directory, as `weft certs --out DIR` writes them and the cluster mounts them. */
export const ISSUER_DIR_FILES = {
  anchorCert: 'anchor.pem',
  anchorKey: 'anchor.key', // only on the operator's machine, never in the cluster
  issuerCert: 'issuer.pem',
  issuerKey: 'issuer.key',
  trustBundle: 'trust-bundle.pem',
} as const;

/**
 * Loads an issuer directory without creating anything (Kubernetes mode: the
 * issuer Secret and trust anchor ConfigMap mounted read-only). Throws an error
 * naming the missing or broken file.
 */
export function loadIssuerDir(dir: string): { issuer: Pem; trustBundlePem: string; anchor?: Pem } {
  const path = (f: string) => join(dir, f);
  const read = (f: string) => {
    if (!existsSync(path(f))) throw new Error(`issuer directory ${dir}: ${f} is missing`);
    return readFileSync(path(f), 'utf8');
  };
  const issuer = { certPem: read(ISSUER_DIR_FILES.issuerCert), keyPem: read(ISSUER_DIR_FILES.issuerKey) };
  const anchorCert = existsSync(path(ISSUER_DIR_FILES.anchorCert)) ? read(ISSUER_DIR_FILES.anchorCert) : undefined;
  const trustBundlePem = existsSync(path(ISSUER_DIR_FILES.trustBundle)) ? read(ISSUER_DIR_FILES.trustBundle) : anchorCert;
  if (!trustBundlePem || splitPemBundle(trustBundlePem).length === 0) {
    throw new Error(`issuer directory ${dir}: ${ISSUER_DIR_FILES.trustBundle} (or ${ISSUER_DIR_FILES.anchorCert}) holds no certificate`);
  }
  if (splitPemBundle(issuer.certPem).length === 0) throw new Error(`issuer directory ${dir}: ${ISSUER_DIR_FILES.issuerCert} holds no certificate`);
  const anchor = anchorCert && existsSync(path(ISSUER_DIR_FILES.anchorKey)) ? { certPem: anchorCert, keyPem: read(ISSUER_DIR_FILES.anchorKey) } : undefined;
  return { issuer, trustBundlePem, ...(anchor ? { anchor } : {}) };
}

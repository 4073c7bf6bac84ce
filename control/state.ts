// Local mode's STATE directory, as control sees it: the certificate authority
// (certs/), the bootstrap token local sidecars present to Identity/Certify, the
// mesh-wide session key, control's own serving certificate, and the address
// sidecars dial. Layout: api/names.ts STATE_FILES.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createHmac, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { DEFAULT_TRUST_DOMAIN, LEAF_LIFETIME_MS, STATE_FILES } from '../api/index.js';
import { issueCert, loadIssuerDir, loadOrCreateAuthority, renewAt, spiffeId, writeSecretFile, type Pem } from '../certs/index.js';

/** DNS name on control's serving certificate; sidecars override the target name to it. */
export const CONTROL_SERVER_NAME = 'weft-control.weft-system.svc';
export const CONTROL_NAMESPACE = 'weft-system';
export const CONTROL_SERVICE_ACCOUNT = 'weft-control';
export const REGISTRY_FILE = 'registry.json';

export interface ControlState {
  stateDir: string;
  trustDomain: string;
  /** Local mode: the anchor we created. Kubernetes: absent (its key lives elsewhere). */
  anchor?: Pem;
  issuer: Pem;
  trustBundlePem: string;
  bootstrapToken: string;
  /** base64, 32 random bytes. */
  sessionKey: string;
}

export interface ServingCert extends Pem {
  notAfter: Date;
}

/** Reads a secret file, or creates it with `make()` (mode 0600) on first run. */
function loadOrCreateSecret(path: string, make: () => string): string {
  if (existsSync(path)) {
    const v = readFileSync(path, 'utf8').trim();
    if (v) return v;
  }
  const v = make();
  writeSecretFile(path, `${v}\n`);
  return v;
}

export interface StateOptions {
  trustDomain?: string;
  /** Kubernetes: a mounted issuer (Secret + anchor ConfigMap) instead of STATE/ca. */
  issuerDir?: string;
  /** Kubernetes: the mesh's session key from a Secret, shared by every replica. */
  sessionKey?: string;
}

export function loadOrCreateState(stateDir: string, opts: StateOptions = {}): ControlState {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const auth = opts.issuerDir
    ? { ...loadIssuerDir(opts.issuerDir), trustDomain: opts.trustDomain ?? DEFAULT_TRUST_DOMAIN }
    : loadOrCreateAuthority(stateDir, opts.trustDomain !== undefined ? { trustDomain: opts.trustDomain } : {});
  if (opts.issuerDir) writeFileSync(join(stateDir, STATE_FILES.trustBundle), auth.trustBundlePem, { mode: 0o644 });
  const bootstrapToken = loadOrCreateSecret(join(stateDir, STATE_FILES.bootstrapToken), () =>
    randomBytes(32).toString('base64url'),
  );
  // Every replica must sign session tokens alike. With a mounted issuer (the
  // one secret all replicas share) and no explicit key, derive it from the
  // issuer key; locally, STATE/session-key.
  const sessionKey =
    opts.sessionKey ??
    (opts.issuerDir
      ? createHmac('sha256', auth.issuer.keyPem).update('weft session key v1').digest('base64')
      : loadOrCreateSecret(join(stateDir, STATE_FILES.sessionKey), () => randomBytes(32).toString('base64')));
  return {
    stateDir,
    trustDomain: auth.trustDomain,
    ...(auth.anchor ? { anchor: auth.anchor } : {}),
    issuer: auth.issuer,
    trustBundlePem: auth.trustBundlePem,
    bootstrapToken,
    sessionKey,
  };
}

/**
 * Control's gRPC serving certificate: DNS weft-control.weft-system.svc and
 * localhost, IP 127.0.0.1 and the listen IP, SPIFFE ID of weft-control.
 */
export function issueServingCert(state: ControlState, listenHost: string): ServingCert {
  const ips = new Set<string>(['127.0.0.1']);
  if (isIP(listenHost) && listenHost !== '0.0.0.0' && listenHost !== '::') ips.add(listenHost);
  const dns = [CONTROL_SERVER_NAME, 'localhost'];
  if (!isIP(listenHost) && listenHost && !dns.includes(listenHost)) dns.push(listenHost);
  const c = issueCert(state.issuer, {
    spiffeId: spiffeId(CONTROL_NAMESPACE, CONTROL_SERVICE_ACCOUNT, state.trustDomain),
    dnsNames: dns,
    ipAddresses: [...ips],
    lifetimeMs: LEAF_LIFETIME_MS,
    commonName: CONTROL_SERVER_NAME,
  });
  return { certPem: c.certPem, keyPem: c.keyPem, notAfter: c.notAfter };
}

/** Control's own serving certificate and key, kept across restarts (a restart reuses it until it is due for renewal). */
export const SERVING_CERT_FILE = 'control-serving.pem';
export const SERVING_KEY_FILE = 'control-serving.key'; // mode 0600

/**
 * The serving certificate from STATE when it is still good for this start
 * (signed by the current issuer, before its renewal time, naming the listen
 * IP), else a new one, saved for the next start.
 */
export function loadOrIssueServingCert(state: ControlState, listenHost: string, now = new Date()): ServingCert {
  const certPath = join(state.stateDir, SERVING_CERT_FILE);
  const keyPath = join(state.stateDir, SERVING_KEY_FILE);
  if (existsSync(certPath) && existsSync(keyPath)) {
    try {
      const certPem = readFileSync(certPath, 'utf8');
      const keyPem = readFileSync(keyPath, 'utf8');
      const x = new X509Certificate(certPem);
      const issuer = new X509Certificate(state.issuer.certPem);
      const notBefore = new Date(x.validFrom);
      const notAfter = new Date(x.validTo);
      const ipOk = !isIP(listenHost) || listenHost === '0.0.0.0' || listenHost === '::' || x.checkIP(listenHost) !== undefined;
      if (
        x.checkIssued(issuer) &&
        x.verify(issuer.publicKey) &&
        now >= notBefore &&
        now < renewAt(notBefore, notAfter) &&
        ipOk &&
        x.checkPrivateKey(createPrivateKey(keyPem))
      ) {
        return { certPem, keyPem, notAfter };
      }
    } catch {
      // unreadable or mismatched: issue a new one below
    }
  }
  const c = issueServingCert(state, listenHost);
  try {
    writeSecretFile(keyPath, c.keyPem);
    writeFileSync(certPath, c.certPem, { mode: 0o644 });
  } catch {
    // STATE read-only: serve the fresh certificate anyway
  }
  return c;
}

/** STATE/control-address: where local sidecars dial ("127.0.0.1:7443"). */
export function writeControlAddress(stateDir: string, address: string): void {
  const path = join(stateDir, STATE_FILES.controlAddress);
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${address}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

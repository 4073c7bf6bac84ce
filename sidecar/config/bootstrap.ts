// The sidecar's identity: a key made here (it never leaves the process), a
// leaf certified by control's Identity service, renewed at 70% of its
// lifetime. TLS contexts are rebuilt on renewal and on a new trust bundle;
// connections already open keep the context they were made with, new ones
// take the new one, so nothing is dropped.
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { STATE_FILES, weftV1, type CertifyRequestMsg, type CertifyResponseMsg } from '../../api/index.js';
import { generateKeyAndCsr, renewAt, spiffeId as makeSpiffeId, certValidity, certSha256, splitPemBundle } from '../../certs/index.js';
import { controlAt } from './control-address.js';

export const CONTROL_SERVER_NAME = 'weft-control.weft-system.svc';

export interface IdentityOptions {
  control: string;
  stateDir: string;
  namespace: string;
  serviceAccount: string;
  trustDomain: string;
  /** Kubernetes: projected service-account token; default STATE/bootstrap-token. */
  tokenFile?: string;
  /** Default STATE/trust-bundle.pem. */
  trustBundleFile?: string;
  log: (line: string) => void;
}

export interface Identity {
  spiffe: string;
  keyPem: string;
  /** Leaf then issuer chain. */
  certChainPem: string;
  bundlePem: string;
  notBefore: Date;
  notAfter: Date;
  /** Hex SHA-256 of the leaf's DER. */
  leafSha256: string;
  /** Hex SHA-256 of the DER of the issuer certificate that signed the leaf (the first of the chain control sent). */
  issuerSha256: string;
  /** Used for both ends of the hop (client and server); verifies against the bundle. */
  context: SecureContext;
}

/**
 * After control announces a new issuer, each sidecar renews at a random moment
 * within this window: thousands of sidecars do not all send their CSR in the
 * same second, and every one has a leaf of the new issuer within a minute.
 */
export const ISSUER_RENEW_SPREAD_MS = 30_000;

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10_000;

export function nextBackoff(ms: number): number {
  const n = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, ms * 2));
  return n / 2 + Math.random() * (n / 2);
}

/** Holds the current identity; emits 'changed' after a renewal or a trust bundle change. */
export class IdentityHolder extends EventEmitter {
  current: Identity | undefined;
  readonly spiffe: string;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private certifyAttempts = 0;
  private readyResolve!: () => void;
  readonly ready: Promise<void>;
  private bundleOverride: string | undefined;
  /** The issuer control last announced (Directory.issuer_sha256). */
  private announcedIssuer: string | undefined;
  private issuerRenewal: NodeJS.Timeout | undefined;
  private obtaining = false;

  constructor(private readonly opts: IdentityOptions) {
    super();
    this.spiffe = makeSpiffeId(opts.namespace, opts.serviceAccount, opts.trustDomain);
    this.ready = new Promise((r) => (this.readyResolve = r));
  }

  start(): void {
    void this.obtainLoop(0);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.issuerRenewal) clearTimeout(this.issuerRenewal);
    this.readyResolve();
  }

  /** The trust bundle as control last announced it (anchor rotation); an error (the bundle is not used) when TLS cannot take it. */
  setBundle(pem: string): string | undefined {
    const cur = this.current;
    if (cur?.bundlePem === pem) {
      this.bundleOverride = pem;
      return undefined;
    }
    try {
      const blocks = splitPemBundle(pem);
      if (blocks.length === 0) throw new Error('no CERTIFICATE block');
      blocks.forEach((b, i) => {
        try {
          new X509Certificate(b);
        } catch (e) {
          throw new Error(`anchor #${i + 1}: ${(e as Error).message}`);
        }
      });
      if (cur) this.install({ ...cur, bundlePem: pem });
      else createSecureContext({ ca: pem });
    } catch (e) {
      return `trust_bundle: ${(e as Error).message}`;
    }
    this.bundleOverride = pem;
    return undefined;
  }

  /**
   * Control signs with the issuer of this fingerprint now (issuer rotation):
   * a leaf from another issuer is renewed at a random moment within
   * ISSUER_RENEW_SPREAD_MS. The old leaf keeps serving until then (the bundle
   * still trusts its anchor).
   */
  noteIssuer(sha256: string, spreadMs = ISSUER_RENEW_SPREAD_MS): void {
    this.announcedIssuer = sha256;
    const cur = this.current;
    if (!cur || !sha256 || cur.issuerSha256 === sha256 || this.issuerRenewal || this.closed) return;
    const wait = Math.random() * spreadMs;
    this.opts.log(`control signs with a new issuer (${sha256.slice(0, 16)}); renewing the certificate in ${Math.round(wait)} ms`);
    this.issuerRenewal = setTimeout(() => {
      this.issuerRenewal = undefined;
      // A certify under way re-checks the announcement when it completes.
      if (this.closed || this.obtaining || this.current?.issuerSha256 === this.announcedIssuer) return;
      void this.obtainLoop(0);
    }, wait);
    this.issuerRenewal.unref();
  }

  async readBundle(): Promise<string> {
    if (this.bundleOverride) return this.bundleOverride;
    return readFile(this.opts.trustBundleFile ?? join(this.opts.stateDir, STATE_FILES.trustBundle), 'utf8');
  }

  private async readToken(): Promise<string> {
    return (await readFile(this.opts.tokenFile ?? join(this.opts.stateDir, STATE_FILES.bootstrapToken), 'utf8')).trim();
  }

  private install(id: Omit<Identity, 'context'> & { context?: SecureContext }): void {
    const context = createSecureContext({ key: id.keyPem, cert: id.certChainPem, ca: id.bundlePem });
    this.current = { ...id, context };
    this.emit('changed', this.current);
  }

  private async obtainLoop(backoff: number): Promise<void> {
    if (this.closed || this.obtaining) return;
    // One certify at a time: the renewal timer and an issuer announcement may both fire.
    this.obtaining = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      const id = await this.certify();
      this.obtaining = false;
      if (this.closed) return;
      this.install(id);
      this.opts.log(`certificate for ${this.spiffe} valid until ${id.notAfter.toISOString()} (issuer ${id.issuerSha256.slice(0, 16)})`);
      this.readyResolve();
      // Announced while this renewal was under way, or the replica we asked still had the old issuer: go again, spread out.
      if (this.announcedIssuer && id.issuerSha256 !== this.announcedIssuer) queueMicrotask(() => this.noteIssuer(this.announcedIssuer ?? ''));
      // notBefore is backdated for clock skew; count the lifetime from now so a
      // short-lived leaf is not renewed the moment it arrives.
      const at = renewAt(new Date(Math.max(id.notBefore.getTime(), Date.now())), id.notAfter).getTime();
      this.timer = setTimeout(() => void this.obtainLoop(0), Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1)));
      this.timer.unref();
    } catch (e) {
      this.obtaining = false;
      if (this.closed) return;
      const wait = nextBackoff(backoff);
      this.opts.log(`certify failed (retry in ${Math.round(wait)} ms): ${(e as Error).message}`);
      this.timer = setTimeout(() => void this.obtainLoop(wait), wait);
      // Before the first certificate the process must stay up to retry.
      if (this.current) this.timer.unref();
    }
  }

  private async certify(): Promise<Omit<Identity, 'context'>> {
    const bundle = await this.readBundle();
    const token = await this.readToken();
    const { keyPem, csrPem } = generateKeyAndCsr(this.spiffe);
    const { Identity } = weftV1();
    // Several --control replicas: each attempt asks the next one.
    const client = new Identity(controlAt(this.opts.control, this.certifyAttempts++), grpc.credentials.createSsl(Buffer.from(bundle)), {
      'grpc.ssl_target_name_override': CONTROL_SERVER_NAME,
      'grpc.default_authority': CONTROL_SERVER_NAME,
    });
    try {
      const req: CertifyRequestMsg = { csr: csrPem, token, namespace: this.opts.namespace, service_account: this.opts.serviceAccount };
      const resp = await new Promise<CertifyResponseMsg>((resolve, reject) => {
        (client as unknown as { Certify: (r: CertifyRequestMsg, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: CertifyResponseMsg) => void) => void }).Certify(
          req,
          new grpc.Metadata(),
          { deadline: Date.now() + 10_000 },
          (err, r) => (err ? reject(err) : r ? resolve(r) : reject(new Error('empty CertifyResponse'))),
        );
      });
      const v = certValidity(resp.leaf);
      const certChainPem = [resp.leaf, ...(resp.chain ?? [])].map((p) => (p.endsWith('\n') ? p : p + '\n')).join('');
      // The bundle the directory announced last wins over the one in this answer (it may be older, from another replica).
      const bundlePem = this.bundleOverride ?? (resp.trust_bundle || bundle);
      const issuerPem = splitPemBundle(resp.chain?.[0] ?? '')[0];
      return {
        spiffe: this.spiffe, keyPem, certChainPem, bundlePem, notBefore: v.notBefore, notAfter: v.notAfter,
        leafSha256: certSha256(resp.leaf),
        issuerSha256: issuerPem ? certSha256(issuerPem) : '',
      };
    } finally {
      client.close();
    }
  }
}

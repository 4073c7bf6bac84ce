// weft.v1.Identity/Certify: a sidecar sends a CSR (its key never leaves it)
// and a credential; control decides the identity from the credential, never
// from the CSR, and signs a leaf for spiffe://<td>/ns/<ns>/sa/<sa>.
// How the credential is checked is pluggable: local mode compares the
// bootstrap token from STATE; Kubernetes mode plugs in a TokenReview.
import { timingSafeEqual, createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { LEAF_LIFETIME_MS, type CertifyRequestMsg, type CertifyResponseMsg } from '../api/index.js';
import { signCsr, spiffeId, type Pem } from '../certs/index.js';
import type { ControlMetrics } from './metrics.js';

export interface Authenticated {
  namespace: string;
  serviceAccount: string;
}

export type AuthResult = Authenticated | { error: string; code?: grpc.status };

/** Decides who is asking; the identity it returns is the one the leaf will carry. */
export type Authenticator = (req: CertifyRequestMsg) => AuthResult | Promise<AuthResult>;

// Kubernetes names: DNS-1123 labels for namespaces, subdomains for service accounts.
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Local mode: whoever holds STATE/bootstrap-token may claim any namespace and service account. */
export function bootstrapTokenAuthenticator(token: string): Authenticator {
  const want = digest(token);
  return (req) => {
    if (!req.token || !timingSafeEqual(digest(req.token), want)) {
      return { error: 'invalid bootstrap token', code: grpc.status.UNAUTHENTICATED };
    }
    if (!NAMESPACE.test(req.namespace)) return { error: `namespace: invalid value ${JSON.stringify(req.namespace)}`, code: grpc.status.INVALID_ARGUMENT };
    if (!SERVICE_ACCOUNT.test(req.service_account)) {
      return { error: `service_account: invalid value ${JSON.stringify(req.service_account)}`, code: grpc.status.INVALID_ARGUMENT };
    }
    return { namespace: req.namespace, serviceAccount: req.service_account };
  };
}

export interface IdentityServerOptions {
  issuer: () => Pem;
  trustBundle: () => string;
  trustDomain: string;
  authenticate: Authenticator;
  metrics: ControlMetrics;
  log: (line: string) => void;
  leafLifetimeMs?: number;
}

export function identityHandlers(opts: IdentityServerOptions): grpc.UntypedServiceImplementation {
  const certify = (
    call: grpc.ServerUnaryCall<CertifyRequestMsg, CertifyResponseMsg>,
    callback: grpc.sendUnaryData<CertifyResponseMsg>,
  ): void => {
    const req = call.request;
    void (async () => {
      let who: AuthResult;
      try {
        who = await opts.authenticate(req);
      } catch (e) {
        who = { error: `authentication failed: ${(e as Error).message}`, code: grpc.status.UNAVAILABLE };
      }
      if ('error' in who) {
        opts.log(`certify refused for ${req.namespace}/${req.service_account} from ${call.getPeer()}: ${who.error}`);
        callback({ code: who.code ?? grpc.status.UNAUTHENTICATED, details: who.error });
        return;
      }
      const id = spiffeId(who.namespace, who.serviceAccount, opts.trustDomain);
      const issuer = opts.issuer();
      let leaf: { certPem: string; notAfter: Date };
      try {
        leaf = signCsr(issuer, req.csr, { spiffeId: id, lifetimeMs: opts.leafLifetimeMs ?? LEAF_LIFETIME_MS });
      } catch (e) {
        callback({ code: grpc.status.INVALID_ARGUMENT, details: `csr: ${(e as Error).message}` });
        return;
      }
      opts.metrics.certsSigned.inc();
      callback(null, {
        leaf: leaf.certPem,
        chain: [issuer.certPem],
        trust_bundle: opts.trustBundle(),
        not_after: leaf.notAfter.getTime(),
      });
    })();
  };
  return { Certify: certify as grpc.handleUnaryCall<unknown, unknown> };
}

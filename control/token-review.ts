// Identity in a cluster: a sidecar presents its projected service-account token
// (audience "weft"); a TokenReview tells us whose it is, and the leaf is signed
// for that service account only, whatever the sidecar claims.
import * as grpc from '@grpc/grpc-js';
import type { Authenticator } from './identity-server.js';
import { KubeApiError, type KubeClient } from './kubernetes-client.js';

export const TOKEN_AUDIENCE = 'weft';
const SA_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

export interface ReviewedToken {
  namespace: string;
  serviceAccount: string;
  /** From a pod-bound token: the pod it was issued to. */
  podName?: string;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; extra?: Record<string, string[]> };
}

export async function reviewToken(client: KubeClient, token: string, audience = TOKEN_AUDIENCE): Promise<ReviewedToken | { error: string; retryable: boolean }> {
  if (!token) return { error: 'no token presented', retryable: false };
  let res: { status?: TokenReviewStatus };
  try {
    res = await client.request('/apis/authentication.k8s.io/v1/tokenreviews', {
      method: 'POST',
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
    });
  } catch (e) {
    // The API server being unavailable is not the sidecar's fault: let it retry.
    const code = e instanceof KubeApiError ? e.code : 0;
    return { error: `TokenReview failed: ${(e as Error).message}`, retryable: code === 0 || code >= 500 || code === 429 };
  }
  const st = res?.status ?? {};
  if (!st.authenticated) return { error: `token not authenticated${st.error ? `: ${st.error}` : ''}`, retryable: false };
  // An API server that cannot check audiences returns none; an empty list is not ours.
  if (!st.audiences?.includes(audience)) return { error: `token audiences ${JSON.stringify(st.audiences ?? [])} do not include "${audience}"`, retryable: false };
  const m = SA_USER.exec(st.user?.username ?? '');
  if (!m) return { error: `token belongs to ${JSON.stringify(st.user?.username ?? '')}, not a service account`, retryable: false };
  const podName = st.user?.extra?.['authentication.kubernetes.io/pod-name']?.[0];
  return { namespace: m[1] as string, serviceAccount: m[3] as string, ...(podName ? { podName } : {}) };
}

/**
 * The Identity service's authenticator in Kubernetes mode. The sidecar also
 * says which namespace and service account it believes it runs as; a mismatch
 * with the token is refused (a misconfigured pod should fail loudly).
 */
export function tokenReviewAuthenticator(client: KubeClient, audience = TOKEN_AUDIENCE): Authenticator {
  return async (req) => {
    const r = await reviewToken(client, req.token, audience);
    if ('error' in r) return { error: r.error, code: r.retryable ? grpc.status.UNAVAILABLE : grpc.status.UNAUTHENTICATED };
    if ((req.namespace && req.namespace !== r.namespace) || (req.service_account && req.service_account !== r.serviceAccount)) {
      return {
        error: `token is for ${r.namespace}/${r.serviceAccount}, but the sidecar claims ${req.namespace}/${req.service_account}`,
        code: grpc.status.PERMISSION_DENIED,
      };
    }
    return { namespace: r.namespace, serviceAccount: r.serviceAccount };
  };
}

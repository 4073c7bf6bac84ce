// SPIFFE IDs of workloads: spiffe://<trust domain>/ns/<namespace>/sa/<service account>.
import { DEFAULT_TRUST_DOMAIN } from '../api/index.js';

// Trust domain charset per the SPIFFE ID spec: lowercase letters, digits, '.', '-', '_'.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
// Path segments: letters, digits, '.', '-', '_' (SPIFFE spec); '.' and '..' alone are forbidden.
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function spiffeId(namespace: string, serviceAccount: string, trustDomain: string = DEFAULT_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export function parseSpiffeId(id: string): { trustDomain: string; namespace: string; serviceAccount: string } | undefined {
  if (!id.startsWith('spiffe://')) return undefined;
  const rest = id.slice('spiffe://'.length);
  const parts = rest.split('/');
  if (parts.length !== 5) return undefined;
  const [td, ns, namespace, sa, serviceAccount] = parts as [string, string, string, string, string];
  if (!TRUST_DOMAIN.test(td) || ns !== 'ns' || sa !== 'sa') return undefined;
  for (const seg of [namespace, serviceAccount]) {
    if (!SEGMENT.test(seg) || seg === '.' || seg === '..') return undefined;
  }
  return { trustDomain: td, namespace, serviceAccount };
}

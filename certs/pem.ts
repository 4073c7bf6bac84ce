// PEM plumbing and certificate facts, read with node's X509Certificate and
// der.ts (forge's pki cannot parse the EC P-256 leaves).
import { X509Certificate } from 'node:crypto';
import { certExtensions, uriSansOf } from './der.js';
import type { PeerCertificate } from 'node:tls';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM bundle, each normalised to end in a newline. */
export function splitPemBundle(pem: string): string[] {
  return (pem.match(PEM_BLOCK) ?? []).map((b) => b.replace(/\r\n/g, '\n') + '\n');
}

/** URI SANs of a certificate, in order. */
export function uriSans(cert: X509Certificate): string[] {
  return uriSansOf(certExtensions(cert.raw));
}

/** The one SPIFFE URI SAN of a certificate; undefined if it has none. */
export function spiffeIdOfCert(cert: string | PeerCertificate): string | undefined {
  if (typeof cert === 'string') {
    const ids = uriSans(new X509Certificate(cert)).filter((u) => u.startsWith('spiffe://'));
    return ids.length === 1 ? ids[0] : undefined;
  }
  return spiffeIdOfSubjectAltName(cert.subjectaltname);
}

/**
 * Reads node's `subjectaltname` string ("URI:spiffe://a/b, DNS:x"). Node quotes
 * entries holding separators ("URI:\"...\""), which a valid SPIFFE ID never does.
 */
export function spiffeIdOfSubjectAltName(san: string | undefined): string | undefined {
  if (!san) return undefined;
  const ids: string[] = [];
  for (const part of san.split(', ')) {
    if (part.startsWith('URI:spiffe://')) ids.push(part.slice(4));
  }
  return ids.length === 1 ? ids[0] : undefined;
}

export function certValidity(pem: string): { notBefore: Date; notAfter: Date; subject: string; spiffeId?: string } {
  const x = new X509Certificate(pem);
  const ids = uriSans(x).filter((u) => u.startsWith('spiffe://'));
  const id = ids.length === 1 ? ids[0] : undefined;
  return {
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    subject: x.subject.replace(/\n/g, ', '),
    ...(id !== undefined ? { spiffeId: id } : {}),
  };
}

/** When to renew a certificate: `fraction` (0.7) of the way through its life. */
export function renewAt(notBefore: Date, notAfter: Date, fraction = 0.7): Date {
  const f = Math.min(1, Math.max(0, fraction));
  return new Date(notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) * f);
}

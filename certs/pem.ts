// PEM plumbing and certificate facts read with node-forge.
import forge from 'node-forge';
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The CERTIFICATE blocks of a PEM bundle, each normalised to end in a newline. */
export function splitPemBundle(pem: string): string[] {
  return (pem.match(PEM_BLOCK) ?? []).map((b) => b.replace(/\r\n/g, '\n') + '\n');
}

const URI_ALT_NAME = 6;

/** URI SANs of a forge certificate, in order. */
export function uriSans(cert: forge.pki.Certificate): string[] {
  const ext = cert.getExtension('subjectAltName') as { altNames?: { type: number; value?: string }[] } | undefined;
  return (ext?.altNames ?? []).filter((n) => n.type === URI_ALT_NAME && typeof n.value === 'string').map((n) => n.value as string);
}

/** The one SPIFFE URI SAN of a certificate; undefined if it has none. */
export function spiffeIdOfCert(cert: string | PeerCertificate): string | undefined {
  if (typeof cert === 'string') {
    const ids = uriSans(forge.pki.certificateFromPem(cert)).filter((u) => u.startsWith('spiffe://'));
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
  const id = spiffeIdOfCert(pem);
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

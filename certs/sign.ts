// Building and signing certificates: forge lays out the ASN.1, node's native
// RSA does the private-key work (forge's JS RSA is slow for keygen and signing).
import forge from 'node-forge';
import { generateKeyPairSync, randomBytes, sign as nodeSign } from 'node:crypto';
import { isIP } from 'node:net';
import { LEAF_LIFETIME_MS } from '../api/index.js';

export interface Pem { certPem: string; keyPem: string }

const pki = forge.pki;
const asn1 = forge.asn1;
const SHA256_RSA = pki.oids['sha256WithRSAEncryption'] as string;
/** notBefore is backdated so a peer whose clock is a little behind still accepts a fresh cert. */
const CLOCK_SKEW_MS = 60_000;
const ANCHOR_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
const ISSUER_VALIDITY_MS = 365 * 24 * 3600 * 1000;

// forge's runtime has these; @types/node-forge omits them.
interface ForgeInternals {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
}
const internals = pki as unknown as ForgeInternals;

export function generateKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return privateKey;
}

function publicKeyOf(keyPem: string): forge.pki.rsa.PublicKey {
  const priv = pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return pki.setRsaPublicKey(priv.n, priv.e);
}

/** Random positive 128-bit serial (RFC 5280 4.1.2.2: positive, at most 20 octets). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f | 0x01;
  return b.toString('hex');
}

/** Signs the certificate's TBS with node's crypto (sha256WithRSAEncryption). */
function signCert(cert: forge.pki.Certificate, signerKeyPem: string): string {
  const c = cert as forge.pki.Certificate & { signatureOid: string; siginfo: { algorithmOid: string }; tbsCertificate: forge.asn1.Asn1 };
  c.signatureOid = SHA256_RSA;
  c.siginfo.algorithmOid = SHA256_RSA;
  c.tbsCertificate = internals.getTBSCertificate(cert);
  const der = Buffer.from(asn1.toDer(c.tbsCertificate).getBytes(), 'binary');
  c.signature = nodeSign('sha256', der, signerKeyPem).toString('binary');
  return pki.certificateToPem(cert).replace(/\r\n/g, '\n');
}

function ski(cert: forge.pki.Certificate): string {
  return cert.generateSubjectKeyIdentifier().getBytes();
}

interface BuildOpts {
  subjectCn: string;
  issuer?: { cert: forge.pki.Certificate; keyPem: string };
  publicKey: forge.pki.PublicKey;
  selfKeyPem: string | undefined;
  notBefore: Date;
  notAfter: Date;
  extensions: object[];
}

function build(o: BuildOpts): { certPem: string; cert: forge.pki.Certificate } {
  const cert = pki.createCertificate();
  cert.publicKey = o.publicKey;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = o.notBefore;
  cert.validity.notAfter = o.notAfter;
  cert.setSubject([{ name: 'commonName', value: o.subjectCn }, { name: 'organizationName', value: 'weft' }]);
  cert.setIssuer(o.issuer ? o.issuer.cert.subject.attributes : cert.subject.attributes);
  const exts: object[] = [...o.extensions, { name: 'subjectKeyIdentifier' }];
  if (o.issuer) exts.push({ name: 'authorityKeyIdentifier', keyIdentifier: ski(o.issuer.cert) });
  cert.setExtensions(exts);
  const signer = o.issuer ? o.issuer.keyPem : o.selfKeyPem;
  if (!signer) throw new Error('certs: no signing key');
  const certPem = signCert(cert, signer);
  return { certPem, cert };
}

/** Self-signed root of trust (10 years by default). */
export function createTrustAnchor(opts: { commonName?: string; validityMs?: number; now?: Date } = {}): Pem {
  const now = opts.now ?? new Date();
  const keyPem = generateKeyPem();
  const { certPem } = build({
    subjectCn: opts.commonName ?? 'weft trust anchor',
    publicKey: publicKeyOf(keyPem),
    selfKeyPem: keyPem,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + (opts.validityMs ?? ANCHOR_VALIDITY_MS)),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem, keyPem };
}

/** Intermediate that signs workload leaves (pathLen 0: it signs no further CAs); 1 year by default, never past the anchor. */
export function createIssuer(anchor: Pem, opts: { commonName?: string; validityMs?: number; now?: Date } = {}): Pem {
  const now = opts.now ?? new Date();
  const anchorCert = pki.certificateFromPem(anchor.certPem);
  const keyPem = generateKeyPem();
  const wanted = now.getTime() + (opts.validityMs ?? ISSUER_VALIDITY_MS);
  const { certPem } = build({
    subjectCn: opts.commonName ?? 'weft issuer',
    issuer: { cert: anchorCert, keyPem: anchor.keyPem },
    publicKey: publicKeyOf(keyPem),
    selfKeyPem: undefined,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(Math.min(wanted, anchorCert.validity.notAfter.getTime())),
    extensions: [
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem, keyPem };
}

/** Sidecar side: a fresh RSA 2048 key and a PKCS#10 CSR naming spiffeId (control decides the identity regardless). */
export function generateKeyAndCsr(spiffeId: string): { keyPem: string; csrPem: string } {
  const keyPem = generateKeyPem();
  const csr = pki.createCertificationRequest();
  csr.publicKey = publicKeyOf(keyPem);
  csr.setSubject([{ name: 'organizationName', value: 'weft' }]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: spiffeId }] }] }]);
  const c = csr as forge.pki.CertificateSigningRequest & { signatureOid: string; siginfo: { algorithmOid: string }; certificationRequestInfo: forge.asn1.Asn1 };
  c.signatureOid = SHA256_RSA;
  c.siginfo.algorithmOid = SHA256_RSA;
  c.certificationRequestInfo = internals.getCertificationRequestInfo(csr);
  const der = Buffer.from(asn1.toDer(c.certificationRequestInfo).getBytes(), 'binary');
  c.signature = nodeSign('sha256', der, keyPem).toString('binary');
  return { keyPem, csrPem: pki.certificationRequestToPem(csr).replace(/\r\n/g, '\n') };
}

export interface LeafOpts {
  spiffeId?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  lifetimeMs?: number;
  now?: Date;
  commonName?: string;
}

function altNames(o: LeafOpts): object[] {
  const names: object[] = [];
  if (o.spiffeId) names.push({ type: 6, value: o.spiffeId });
  for (const d of o.dnsNames ?? []) names.push({ type: 2, value: d });
  for (const ip of o.ipAddresses ?? []) {
    if (isIP(ip) === 0) throw new Error(`certs: ipAddresses: "${ip}" is not an IP address`);
    names.push({ type: 7, ip });
  }
  return names;
}

function signLeaf(issuer: Pem, publicKey: forge.pki.PublicKey, o: LeafOpts): { certPem: string; notBefore: Date; notAfter: Date } {
  const now = o.now ?? new Date();
  const issuerCert = pki.certificateFromPem(issuer.certPem);
  const wanted = now.getTime() + (o.lifetimeMs ?? LEAF_LIFETIME_MS);
  const notBefore = new Date(now.getTime() - CLOCK_SKEW_MS);
  // Never outlive the issuer: a chain is only as valid as its shortest link.
  const notAfter = new Date(Math.min(wanted, issuerCert.validity.notAfter.getTime()));
  const names = altNames(o);
  const exts: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
  ];
  // RFC 5280 4.2.1.6: with an empty subject, the SAN must be critical. We keep a subject, so it need not be.
  if (names.length > 0) exts.push({ name: 'subjectAltName', altNames: names });
  const cn = o.commonName ?? o.dnsNames?.[0] ?? 'weft workload';
  const { certPem } = build({
    subjectCn: cn.slice(0, 64),
    issuer: { cert: issuerCert, keyPem: issuer.keyPem },
    publicKey,
    selfKeyPem: undefined,
    notBefore,
    notAfter,
    extensions: exts,
  });
  return { certPem, notBefore, notAfter };
}

/** Control side: checks the CSR's own signature, then signs a leaf for opts.spiffeId (the CSR's requested names are ignored). */
export function signCsr(
  issuer: Pem,
  csrPem: string,
  opts: { spiffeId: string; dnsNames?: string[]; ipAddresses?: string[]; lifetimeMs?: number; now?: Date },
): { certPem: string; notBefore: Date; notAfter: Date } {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = pki.certificationRequestFromPem(csrPem);
  } catch (e) {
    throw new Error(`certs: CSR: not a PEM PKCS#10 RSA certification request (${(e as Error).message})`);
  }
  let verified = false;
  try {
    verified = csr.verify();
  } catch {
    verified = false; // forge throws on a malformed signature block
  }
  if (!verified) throw new Error('certs: CSR: signature does not verify against its own public key');
  const pub = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!pub || pub.n.bitLength() < 2048) throw new Error('certs: CSR: RSA key shorter than 2048 bits');
  return signLeaf(issuer, pub, opts);
}

/** A fresh key and a leaf in one step (control's own serving cert, test fixtures). */
export function issueCert(issuer: Pem, opts: LeafOpts): Pem & { notAfter: Date } {
  const keyPem = generateKeyPem();
  const { certPem, notAfter } = signLeaf(issuer, publicKeyOf(keyPem), opts);
  return { certPem, keyPem, notAfter };
}

// Building and signing certificates. The trust anchor and issuer are RSA 2048,
// made once with forge's pki (node's native RSA does the private-key work).
// Workload leaves are EC P-256 (keygen ~0.5 ms instead of 100-600 ms for RSA):
// forge's pki cannot handle EC keys, so leaves and CSRs are laid out with
// forge.asn1 (der.ts) and signed and verified with node's crypto.
import { createRequire } from 'node:module';
import type forge from 'node-forge';
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { LEAF_LIFETIME_MS } from '../api/index.js';
import {
  OID, asn1 as derAsn1, bits, certExtensions, ctx, encode, extension, generalNames, isUniversal, kids, name, nul, octets, oid, oidOf, parse, prim, seq, set, smallInt, time, toBuf, uint,
  type Asn1,
} from './der.js';

export interface Pem { certPem: string; keyPem: string }

// All of forge (~100 ms to load) only where anchors and issuers are made, never in a sidecar.
let forgeLib: typeof forge | undefined;
const loadForge = (): typeof forge => (forgeLib ??= createRequire(import.meta.url)('node-forge') as typeof forge);
const SHA256_RSA = OID.sha256WithRSA;
/** notBefore is backdated so a peer whose clock is a little behind still accepts a fresh cert. */
const CLOCK_SKEW_MS = 60_000;
const ANCHOR_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;
const ISSUER_VALIDITY_MS = 365 * 24 * 3600 * 1000;

// forge's runtime has these; @types/node-forge omits them.
interface ForgeInternals {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
}

export function generateKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return privateKey;
}

function publicKeyOf(keyPem: string): forge.pki.rsa.PublicKey {
  const pki = loadForge().pki;
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
  const pki = loadForge().pki;
  c.tbsCertificate = (pki as unknown as ForgeInternals).getTBSCertificate(cert);
  const der = Buffer.from(derAsn1.toDer(c.tbsCertificate).getBytes(), 'binary');
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
  const cert = loadForge().pki.createCertificate();
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
  const anchorCert = loadForge().pki.certificateFromPem(anchor.certPem);
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

const LEAF_CURVE = 'prime256v1';

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function pemBody(pem: string, labels: string[], what: string): Buffer {
  const m = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!m || !labels.includes(m[1] as string)) throw new Error(`${what}: no PEM ${labels[0]} block`);
  const der = Buffer.from((m[2] as string).replace(/\s+/g, ''), 'base64');
  if (der.length === 0) throw new Error(`${what}: empty PEM block`);
  return der;
}

/** A fresh EC P-256 key: PKCS#8 PEM, its SubjectPublicKeyInfo DER and the KeyObject. */
function generateLeafKey(): { keyPem: string; spkiDer: Buffer; key: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: LEAF_CURVE });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
    key: privateKey,
  };
}

/** Signature AlgorithmIdentifier and hash for a signing key (RSA PKCS#1 v1.5 or ECDSA, SHA-256). */
function sigAlgFor(key: KeyObject): Asn1 {
  if (key.asymmetricKeyType === 'rsa') return seq([oid(OID.sha256WithRSA), nul()]);
  if (key.asymmetricKeyType === 'ec') return seq([oid(OID.ecdsaWithSHA256)]);
  throw new Error(`certs: cannot sign with a ${key.asymmetricKeyType ?? 'unknown'} key (RSA or EC only)`);
}

/** Sidecar side: a fresh EC P-256 key (PKCS#8 PEM) and a PKCS#10 CSR naming spiffeId (control decides the identity regardless). */
export function generateKeyAndCsr(spiffeId: string): { keyPem: string; csrPem: string } {
  const { keyPem, spkiDer, key } = generateLeafKey();
  const san = extension(OID.subjectAltName, false, generalNames({ uris: [spiffeId], dns: [], ips: [] }));
  const info = seq([
    smallInt(0),
    name([[OID.organizationName, 'weft']]),
    parse(spkiDer),
    ctx(0, [seq([oid(OID.extensionRequest), set([seq([san])])])]),
  ]);
  const sig = nodeSign('sha256', encode(info), key);
  const csr = seq([info, sigAlgFor(key), bits(0, sig)]);
  return { keyPem, csrPem: toPem('CERTIFICATE REQUEST', encode(csr)) };
}

/** Checks a PKCS#10 CSR's structure, key and self-signature; returns its SubjectPublicKeyInfo verbatim. */
function readCsr(csrPem: string): { spkiDer: Buffer; keyType: 'rsa' | 'ec' } {
  const der = pemBody(csrPem, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'certs: CSR');
  let top: Asn1;
  try {
    top = parse(der);
  } catch (e) {
    throw new Error(`certs: CSR: not a DER PKCS#10 certification request (${(e as Error).message})`);
  }
  // Re-encoding must give the same bytes, so the signed CertificationRequestInfo and the SPKI are verbatim.
  if (!encode(top).equals(der)) throw new Error('certs: CSR: not DER-encoded');
  const [info, alg, sig] = kids(top, 'certs: CSR');
  const infoKids = kids(info, 'certs: CSR: certificationRequestInfo');
  const spki = infoKids[2];
  if (!isUniversal(infoKids[0], derAsn1.Type.INTEGER) || prim(infoKids[0], 'version') !== '\x00') throw new Error('certs: CSR: version is not 0');
  if (!isUniversal(spki, derAsn1.Type.SEQUENCE) || !spki) throw new Error('certs: CSR: subjectPublicKeyInfo missing');
  const algOid = oidOf(kids(alg, 'certs: CSR: signatureAlgorithm')[0], 'certs: CSR: signatureAlgorithm');
  const sigBits = toBuf(prim(sig, 'certs: CSR: signature'));
  if (!isUniversal(sig, derAsn1.Type.BITSTRING) || sigBits[0] !== 0) throw new Error('certs: CSR: signature is not a whole-byte BIT STRING');
  const spkiDer = encode(spki);
  let pub: KeyObject;
  try {
    pub = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch (e) {
    throw new Error(`certs: CSR: unreadable public key (${(e as Error).message})`);
  }
  const kt = pub.asymmetricKeyType;
  const d = pub.asymmetricKeyDetails ?? {};
  let hash: string;
  if (kt === 'rsa') {
    if ((d.modulusLength ?? 0) < 2048) throw new Error('certs: CSR: RSA key shorter than 2048 bits');
    if (algOid !== OID.sha256WithRSA) throw new Error(`certs: CSR: RSA signature algorithm ${algOid} is not sha256WithRSAEncryption`);
    hash = 'sha256';
  } else if (kt === 'ec') {
    if (d.namedCurve !== 'prime256v1' && d.namedCurve !== 'secp384r1') throw new Error(`certs: CSR: EC curve ${d.namedCurve ?? '?'} is not P-256 or P-384`);
    if (algOid === OID.ecdsaWithSHA256) hash = 'sha256';
    else if (algOid === OID.ecdsaWithSHA384) hash = 'sha384';
    else throw new Error(`certs: CSR: EC signature algorithm ${algOid} is not ecdsa-with-SHA256/384`);
  } else {
    throw new Error(`certs: CSR: ${kt ?? 'unknown'} keys are not accepted (RSA or EC)`);
  }
  let ok = false;
  try {
    ok = nodeVerify(hash, encode(info as Asn1), pub, sigBits.subarray(1));
  } catch {
    ok = false; // a malformed signature block
  }
  if (!ok) throw new Error('certs: CSR: signature does not verify against its own public key');
  return { spkiDer, keyType: kt };
}

export interface LeafOpts {
  spiffeId?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  lifetimeMs?: number;
  now?: Date;
  commonName?: string;
}

function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v !== 6) throw new Error(`certs: ipAddresses: "${ip}" is not an IP address`);
  // Expand "::" and an embedded IPv4 tail, then pack eight 16-bit groups.
  let s = ip.split('%')[0] as string;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = (v4[1] as string).split('.').map(Number);
    s = s.slice(0, -(v4[1] as string).length) + `${(((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16)}:${(((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Issuer facts a leaf needs, parsed once per issuer (control signs many CSRs with one issuer). */
interface IssuerInfo { certPem: string; keyPem: string; name: Asn1; keyId: Buffer; notAfter: Date; key: KeyObject; sigAlg: Asn1 }
let issuerCache: IssuerInfo | undefined;

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bytes. */
function keyIdOf(spki: Asn1): Buffer {
  const bitString = kids(spki, 'subjectPublicKeyInfo')[1];
  return createHash('sha1').update(toBuf(prim(bitString, 'subjectPublicKey')).subarray(1)).digest();
}

function issuerInfo(issuer: Pem): IssuerInfo {
  if (issuerCache && issuerCache.certPem === issuer.certPem && issuerCache.keyPem === issuer.keyPem) return issuerCache;
  const x = new X509Certificate(issuer.certPem);
  const tbs = kids(kids(parse(x.raw), 'issuer certificate')[0], 'issuer tbsCertificate');
  const off = tbs[0]?.tagClass === derAsn1.Class.CONTEXT_SPECIFIC ? 1 : 0; // [0] version present
  const subject = tbs[off + 4];
  const spki = tbs[off + 5];
  if (!subject || !spki) throw new Error('certs: issuer certificate: no subject or public key');
  const skiExt = certExtensions(x.raw).get(OID.subjectKeyIdentifier);
  const keyId = skiExt ? toBuf(prim(parse(skiExt.value), 'issuer subjectKeyIdentifier')) : keyIdOf(spki);
  const key = createPrivateKey(issuer.keyPem);
  issuerCache = { certPem: issuer.certPem, keyPem: issuer.keyPem, name: subject, keyId, notAfter: new Date(x.validTo), key, sigAlg: sigAlgFor(key) };
  return issuerCache;
}

function signLeaf(issuer: Pem, spkiDer: Buffer, keyType: 'rsa' | 'ec', o: LeafOpts): { certPem: string; notBefore: Date; notAfter: Date } {
  const now = o.now ?? new Date();
  const iss = issuerInfo(issuer);
  const wanted = now.getTime() + (o.lifetimeMs ?? LEAF_LIFETIME_MS);
  // Whole seconds: that is all X.509 time carries, and certValidity reads it back.
  const notBefore = new Date(Math.floor((now.getTime() - CLOCK_SKEW_MS) / 1000) * 1000);
  // Never outlive the issuer: a chain is only as valid as its shortest link.
  const notAfter = new Date(Math.floor(Math.min(wanted, iss.notAfter.getTime()) / 1000) * 1000);
  const ips = (o.ipAddresses ?? []).map(ipBytes);
  const uris = o.spiffeId ? [o.spiffeId] : [];
  const dns = o.dnsNames ?? [];
  const spki = parse(spkiDer);
  const exts: Asn1[] = [
    extension(OID.basicConstraints, true, seq([])), // cA FALSE is the DEFAULT, so DER omits it
    // digitalSignature (bit 0); keyEncipherment (bit 2) only means something for RSA keys.
    extension(OID.keyUsage, true, keyType === 'rsa' ? bits(5, Buffer.from([0xa0])) : bits(7, Buffer.from([0x80]))),
    extension(OID.extKeyUsage, false, seq([oid(OID.serverAuth), oid(OID.clientAuth)])),
  ];
  // RFC 5280 4.2.1.6: with an empty subject, the SAN must be critical. We keep a subject, so it need not be.
  if (uris.length + dns.length + ips.length > 0) exts.push(extension(OID.subjectAltName, false, generalNames({ uris, dns, ips })));
  exts.push(extension(OID.subjectKeyIdentifier, false, octets(keyIdOf(spki))));
  exts.push(extension(OID.authorityKeyIdentifier, false, seq([ctx(0, iss.keyId.toString('binary'))])));
  const cn = (o.commonName ?? o.dnsNames?.[0] ?? 'weft workload').slice(0, 64);
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive, 128 bits (RFC 5280 4.1.2.2)
  const tbs = seq([
    ctx(0, [smallInt(2)]),
    uint(serial),
    iss.sigAlg,
    iss.name,
    seq([time(notBefore), time(notAfter)]),
    name([[OID.commonName, cn], [OID.organizationName, 'weft']]),
    spki,
    ctx(3, [seq(exts)]),
  ]);
  const signature = nodeSign('sha256', encode(tbs), iss.key);
  const certPem = toPem('CERTIFICATE', encode(seq([tbs, iss.sigAlg, bits(0, signature)])));
  return { certPem, notBefore, notAfter };
}

/** Control side: checks the CSR's own signature (RSA or EC key), then signs a leaf for opts.spiffeId (the CSR's requested names are ignored). */
export function signCsr(
  issuer: Pem,
  csrPem: string,
  opts: { spiffeId: string; dnsNames?: string[]; ipAddresses?: string[]; lifetimeMs?: number; now?: Date },
): { certPem: string; notBefore: Date; notAfter: Date } {
  const { spkiDer, keyType } = readCsr(csrPem);
  return signLeaf(issuer, spkiDer, keyType, opts);
}

/** A fresh EC P-256 key and a leaf in one step (control's own serving cert, test fixtures). */
export function issueCert(issuer: Pem, opts: LeafOpts): Pem & { notAfter: Date } {
  const { keyPem, spkiDer } = generateLeafKey();
  const { certPem, notAfter } = signLeaf(issuer, spkiDer, 'ec', opts);
  return { certPem, keyPem, notAfter };
}

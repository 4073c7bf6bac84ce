// DER building and reading with forge.asn1, for what forge's pki cannot do:
// EC P-256 keys in CSRs and certificates. Strings here are forge's binary
// strings (one char per byte); Buffers at the edges.
// Only forge's asn1 module is loaded (~10 ms), not all of forge (~100 ms):
// the sidecar loads this at start-up, and start-up time counts.
import { createRequire } from 'node:module';
import type forge from 'node-forge';

export const asn1 = createRequire(import.meta.url)('node-forge/lib/asn1.js') as typeof forge.asn1;
export type Asn1 = forge.asn1.Asn1;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
  extensionRequest: '1.2.840.113549.1.9.14',
  commonName: '2.5.4.3',
  organizationName: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

export const toBin = (b: Buffer): string => b.toString('binary');
export const toBuf = (s: string): Buffer => Buffer.from(s, 'binary');

/** Parses one DER element that must span all of `der`; BIT STRING contents stay raw bytes. */
export function parse(der: Buffer | string): Asn1 {
  const bytes = typeof der === 'string' ? der : toBin(der);
  const fromDer = asn1.fromDer as unknown as (b: string, o: { strict: boolean; parseAllBytes: boolean; decodeBitStrings: boolean }) => Asn1;
  return fromDer(bytes, { strict: true, parseAllBytes: true, decodeBitStrings: false });
}

export function encode(a: Asn1): Buffer {
  return toBuf(asn1.toDer(a).getBytes());
}

export const seq = (items: Asn1[]): Asn1 => asn1.create(U, T.SEQUENCE, true, items);
export const set = (items: Asn1[]): Asn1 => asn1.create(U, T.SET, true, items);
export const oid = (o: string): Asn1 => asn1.create(U, T.OID, false, asn1.oidToDer(o).getBytes());
export const nul = (): Asn1 => asn1.create(U, T.NULL, false, '');
export const bool = (v: boolean): Asn1 => asn1.create(U, T.BOOLEAN, false, v ? '\xff' : '\x00');
export const octets = (b: Buffer): Asn1 => asn1.create(U, T.OCTETSTRING, false, toBin(b));
export const utf8 = (s: string): Asn1 => asn1.create(U, T.UTF8, false, Buffer.from(s, 'utf8').toString('binary'));
/** BIT STRING whose first content byte is the unused-bit count. */
export const bits = (unused: number, b: Buffer): Asn1 => asn1.create(U, T.BITSTRING, false, String.fromCharCode(unused) + toBin(b));
/** Context-specific tag [n], primitive (IMPLICIT over a primitive type) or constructed. */
export const ctx = (n: number, value: string | Asn1[]): Asn1 => asn1.create(asn1.Class.CONTEXT_SPECIFIC, n, typeof value !== 'string', value);

/** INTEGER from unsigned big-endian bytes (adds a 0x00 lead byte if the top bit is set). */
export function uint(b: Buffer): Asn1 {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && ((b[i + 1] ?? 0) & 0x80) === 0) i++;
  const body = b.subarray(i);
  const v = ((body[0] ?? 0) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), body]) : body;
  return asn1.create(U, T.INTEGER, false, toBin(v.length ? v : Buffer.from([0])));
}
export const smallInt = (n: number): Asn1 => asn1.create(U, T.INTEGER, false, asn1.integerToDer(n).getBytes());

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Zulu. */
export function time(d: Date): Asn1 {
  const iso = d.toISOString(); // 2026-11-29T03:28:38.123Z
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z'; // YYYYMMDDHHMMSSZ
  const y = d.getUTCFullYear();
  if (y >= 1950 && y < 2050) return asn1.create(U, T.UTCTIME, false, digits.slice(2));
  return asn1.create(U, T.GENERALIZEDTIME, false, digits);
}

/** Name: one RDN per attribute, UTF8String values. */
export function name(attrs: [string, string][]): Asn1 {
  return seq(attrs.map(([o, v]) => set([seq([oid(o), utf8(v)])])));
}

export function extension(o: string, critical: boolean, value: Asn1): Asn1 {
  return seq([oid(o), ...(critical ? [bool(true)] : []), octets(encode(value))]);
}

/** GeneralNames for a SAN: URI [6], dNSName [2], iPAddress [7] (raw 4 or 16 bytes). */
export function generalNames(n: { uris: string[]; dns: string[]; ips: Buffer[] }): Asn1 {
  return seq([
    ...n.uris.map((u) => ctx(6, u)),
    ...n.dns.map((d) => ctx(2, d)),
    ...n.ips.map((ip) => ctx(7, toBin(ip))),
  ]);
}

/** Children of a constructed element; throws naming `what` otherwise. */
export function kids(a: Asn1 | undefined, what: string): Asn1[] {
  if (!a || !Array.isArray(a.value)) throw new Error(`${what}: expected a constructed ASN.1 element`);
  return a.value;
}

export function prim(a: Asn1 | undefined, what: string): string {
  if (!a || typeof a.value !== 'string') throw new Error(`${what}: expected a primitive ASN.1 element`);
  return a.value;
}

export function oidOf(a: Asn1 | undefined, what: string): string {
  if (!a || a.tagClass !== U || a.type !== T.OID) throw new Error(`${what}: expected an OID`);
  return asn1.derToOid(prim(a, what));
}

export function isUniversal(a: Asn1 | undefined, type: forge.asn1.Type): boolean {
  return !!a && a.tagClass === U && a.type === type;
}

export interface Ext { critical: boolean; value: Buffer }

/** The extensions of a certificate (DER), by OID. */
export function certExtensions(certDer: Buffer): Map<string, Ext> {
  const tbs = kids(kids(parse(certDer), 'certificate')[0], 'tbsCertificate');
  const out = new Map<string, Ext>();
  const wrap = tbs.find((e) => e.tagClass === asn1.Class.CONTEXT_SPECIFIC && e.type === 3);
  if (!wrap) return out;
  for (const e of kids(kids(wrap, 'extensions')[0], 'extensions')) {
    const parts = kids(e, 'extension');
    const id = oidOf(parts[0], 'extension id');
    const critical = parts.length === 3 && prim(parts[1], 'critical') === '\xff';
    out.set(id, { critical, value: toBuf(prim(parts[parts.length - 1], 'extension value')) });
  }
  return out;
}

/** basicConstraints (cA, pathLen) of a certificate's extensions. */
export function basicConstraintsOf(exts: Map<string, Ext>): { cA: boolean; pathLen?: number } {
  const e = exts.get(OID.basicConstraints);
  if (!e) return { cA: false };
  const items = kids(parse(e.value), 'basicConstraints');
  let cA = false;
  let pathLen: number | undefined;
  for (const i of items) {
    if (isUniversal(i, T.BOOLEAN)) cA = prim(i, 'cA') !== '\x00';
    else if (isUniversal(i, T.INTEGER)) pathLen = asn1.derToInteger(prim(i, 'pathLen'));
  }
  return { cA, ...(pathLen !== undefined ? { pathLen } : {}) };
}

/** keyUsage bit n (0 = digitalSignature, 5 = keyCertSign); undefined if the extension is absent. */
export function keyUsageBit(exts: Map<string, Ext>, n: number): boolean | undefined {
  const e = exts.get(OID.keyUsage);
  if (!e) return undefined;
  const b = toBuf(prim(parse(e.value), 'keyUsage'));
  const byte = b[1 + (n >> 3)] ?? 0;
  return (byte & (0x80 >> (n & 7))) !== 0;
}

/** URI SANs of a certificate's extensions, in order. */
export function uriSansOf(exts: Map<string, Ext>): string[] {
  const e = exts.get(OID.subjectAltName);
  if (!e) return [];
  return kids(parse(e.value), 'subjectAltName')
    .filter((g) => g.tagClass === asn1.Class.CONTEXT_SPECIFIC && g.type === 6 && typeof g.value === 'string')
    .map((g) => g.value as string);
}

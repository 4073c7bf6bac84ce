// Byte classes of RFC 9110 §5.6.2 (token), §5.5 (field-value) and RFC 3986
// (the printable range a request-target may use), as lookup tables so the
// parser tests one byte with one array read.

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

const TCHAR_PUNCT = "!#$%&'*+-.^_`|~";

/** tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
export const TOKEN = table(
  (c) =>
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    TCHAR_PUNCT.includes(String.fromCharCode(c)),
);

/** field-vchar / SP / HTAB: VCHAR (0x21–0x7E), obs-text (0x80–0xFF), SP, HTAB. No CTL, no DEL. */
export const FIELD = table((c) => c === 0x09 || c === 0x20 || (c >= 0x21 && c <= 0x7e) || c >= 0x80);

/** The bytes a request-target may hold on the wire: visible ASCII only (no SP, no CTL, no obs-text). */
export const TARGET = table((c) => c >= 0x21 && c <= 0x7e);

/** reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) */
export const REASON = FIELD;

export const HEX = (() => {
  const t = new Int8Array(256).fill(-1);
  for (let c = 0; c < 10; c++) t[0x30 + c] = c;
  for (let c = 0; c < 6; c++) {
    t[0x41 + c] = 10 + c;
    t[0x61 + c] = 10 + c;
  }
  return t;
})();

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;

/** Case-insensitive compare of buf[s..e) with a lower-case ASCII name made of letters, digits and '-'. */
export function eqLower(buf: Uint8Array, s: number, e: number, lower: string): boolean {
  if (e - s !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    if ((buf[s + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

// Buffer#latin1Slice is the fast path under toString('latin1') (no encoding
// lookup); Node has it on every version weft supports, @types/node hides it.
type Latin1 = { latin1Slice(s: number, e: number): string };
/** buf[s..e) as a latin1 string. */
export function latin1(buf: Buffer, s: number, e: number): string {
  return (buf as unknown as Latin1).latin1Slice(s, e);
}

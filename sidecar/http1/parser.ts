// A strict, incremental HTTP/1.1 head parser on Buffers (RFC 9112).
//
// A head is kept as the bytes it arrived in (one Buffer, usually a view into
// the socket's chunk) plus an Int32Array of offsets: four per field line
// (name start, name end, value start, value end). Nothing is allocated per
// header; strings are made only when a caller asks for one.
//
// Where RFC 9112 lets a recipient choose, this parser rejects. Each place it
// is stricter than Node's llhttp (the oracle of the differential fuzz test)
// is listed in STRICTER below, with the reason code it answers with; the fuzz
// test allows exactly these differences.

import { COLON, CR, eqLower, FIELD, HTAB, latin1, LF, REASON, SP, TARGET, TOKEN } from './chars.js';
import { METHODS } from 'node:http';

/** Where this parser rejects a message that llhttp (Node 20–26, default, non-lenient) accepts. */
export const STRICTER = {
  'target-form': "a request-target not in origin-form ('/'), absolute-form (scheme://), authority-form (CONNECT only) or asterisk-form (OPTIONS only), RFC 9112 §3.2",
  'host-missing': 'an HTTP/1.1 request without Host; RFC 9112 §3.2 says MUST answer 400 (node:http does too, llhttp alone does not)',
  'host-repeated': 'more than one Host field line; RFC 9112 §3.2 says MUST answer 400',
  'te-not-chunked': "a request Transfer-Encoding other than exactly 'chunked' (one field line, lower case, no list): a proxy that forwards the head as it came must not let a next hop read the framing differently (TE.TE), RFC 9112 §6.1 allows answering 501/400",
  'te-http10': 'Transfer-Encoding in an HTTP/1.0 request, RFC 9112 §6.1: treat as faulty framing',
  'framing-ows': "HTAB around the value of Content-Length or Transfer-Encoding (only one SP is taken): the TE.TE 'tab' obfuscation",
  'cl-too-big': 'Content-Length beyond 2^53 - 1',
  'chunk-size-too-big': 'a chunk size beyond 2^53 - 1 (llhttp allows up to 2^64 - 1)',
  'chunk-ext': "a chunk extension with whitespace outside a quoted string (RFC 9112 §7.1.1 allows BWS there; llhttp rejects it in most places), one that is not ';' token [ '=' ( token / quoted-string ) ], or longer than the extension limit",
  'bare-cr': 'a CR not followed by LF (llhttp skips stray CR and LF bytes between pipelined messages)',
  'bare-lf': 'a line ended by LF without CR (llhttp takes a bare LF in the request line, after a body and between pipelined messages); RFC 9112 §2.2 lets a recipient accept it, a proxy that forwards bytes must not',
  'header-count': 'more field lines than maxHeaders (431)',
  'head-size': 'a head larger than maxHeadBytes (431)',
  'leading-empty-lines': 'more than 8 empty lines before a request-line (RFC 9112 §2.2 asks to ignore "at least one")',
  'request-line-sp': 'more than one SP between the parts of the request-line (llhttp skips extra SP after the method); RFC 9112 §3 requires one',
  'version': 'an HTTP version other than 1.0 or 1.1, or none (llhttp accepts HTTP/0.9 request-lines and 2.0 heads)',
} as const;
export type StricterCase = keyof typeof STRICTER;

export interface HeadLimits {
  /** Largest head in bytes, request-line and CRLFCRLF included. Default 16 KiB (Node's default). */
  maxHeadBytes: number;
  /** Most field lines in one head. Default 100. */
  maxHeaders: number;
}
export const DEFAULT_LIMITS: HeadLimits = { maxHeadBytes: 16 * 1024, maxHeaders: 100 };

export type Framing = 'none' | 'length' | 'chunked' | 'close' | 'tunnel';

export interface HeadError {
  ok: false;
  /** The HTTP status a server answers with: 400, 431, 505 (or 502 for a response head). */
  status: number;
  /** A short code: the rule that was broken. */
  code: string;
  reason: string;
}

const AUTHORITY = (() => {
  const t = new Uint8Array(256);
  for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%!$&'()*+,;=:@[]") t[ch.charCodeAt(0)] = 1;
  return t;
})();

const HTTP_METHODS = new Set(METHODS.filter((m) => m !== 'PRI'));

// Hop-by-hop field names (RFC 9110 §7.6.1) a proxy removes before forwarding,
// as bits in Head.hop so a head without any is forwarded as its own bytes.
export const HOP_CONNECTION = 1;
export const HOP_KEEP_ALIVE = 2;
export const HOP_PROXY_CONNECTION = 4;
export const HOP_TE = 8;
export const HOP_UPGRADE = 16;
export const HOP_TRAILER = 32;
export const HOP_PROXY_AUTHORIZATION = 64;

/** One parsed head: its bytes and offsets into them. */
export class Head {
  /** The head's own bytes, from the first byte of the start line to the CRLF that ends the head. */
  readonly buf: Buffer;
  readonly isRequest: boolean;
  /** Request: method. Response: ''. */
  method = '';
  /** Request: request-target as sent. Response: ''. */
  target = '';
  /** Response: status code. Request: 0. */
  status = 0;
  /** Offsets of the reason phrase (responses). */
  reasonStart = 0;
  reasonEnd = 0;
  /** Offsets of the request-target in buf (requests). */
  targetStart = 0;
  targetEnd = 0;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor = 1;
  /** Offset where the field lines start (after the start line's CRLF). */
  fieldsStart = 0;
  /** nameStart, nameEnd, valueStart, valueEnd per field line. */
  readonly fields: Int32Array;
  readonly count: number;
  framing: Framing = 'none';
  contentLength = 0;
  keepAlive = true;
  upgrade = false;
  expectContinue = false;
  /** Bit set of HOP_* names present. */
  hop = 0;
  /** Offsets of the Host field value, -1 if absent. */
  hostStart = -1;
  hostEnd = -1;

  constructor(buf: Buffer, isRequest: boolean, fields: Int32Array, count: number) {
    this.buf = buf;
    this.isRequest = isRequest;
    this.fields = fields;
    this.count = count;
  }

  name(i: number): string {
    return latin1(this.buf, this.fields[4 * i]!, this.fields[4 * i + 1]!);
  }
  value(i: number): string {
    return latin1(this.buf, this.fields[4 * i + 2]!, this.fields[4 * i + 3]!);
  }
  /** The index of the first field line named `lower` (a lower-case name), or -1. */
  indexOf(lower: string, from = 0): number {
    const f = this.fields;
    for (let i = from; i < this.count; i++) if (eqLower(this.buf, f[4 * i]!, f[4 * i + 1]!, lower)) return i;
    return -1;
  }
  /** HeaderView: the value of `lower` (a lower-case name); repeated lines are joined with ", " (Cookie with "; "). */
  get(lower: string): string | undefined {
    let i = this.indexOf(lower);
    if (i < 0) return undefined;
    let v = this.value(i);
    const sep = lower === 'cookie' ? '; ' : ', ';
    while ((i = this.indexOf(lower, i + 1)) >= 0) v += sep + this.value(i);
    return v;
  }
  get host(): string | undefined {
    return this.hostStart < 0 ? undefined : latin1(this.buf, this.hostStart, this.hostEnd);
  }
  /** All field lines as [name, value] pairs (for tests and slow paths). */
  entries(): [string, string][] {
    const out: [string, string][] = [];
    for (let i = 0; i < this.count; i++) out.push([this.name(i), this.value(i)]);
    return out;
  }
}

export type HeadResult = Head | HeadError;

function fail(status: number, code: string, reason: string): HeadError {
  return { ok: false, status, code, reason };
}

const MAX_LEADING_EMPTY = 8;

// The field offsets of the head being parsed. parseHead runs to completion
// on one complete head and gives the Head its own copy, so every reader
// shares this one: a connection holds no offsets array (an idle keep-alive
// connection held 1.6 KB of them, 16 MB for 10,000).
let scratch = new Int32Array(4 * DEFAULT_LIMITS.maxHeaders);

/**
 * Accumulates bytes until a head is complete. Bytes of a head that spans
 * several reads are copied into one Buffer; a head that arrives in one read
 * stays a view into that read.
 */
export class HeadReader {
  private acc: Buffer | null = null;
  private scan = 0;
  private lineStart = 0;
  private headStart = 0;
  private lines = 0;
  private empties = 0;
  readonly isRequest: boolean;
  readonly limits: HeadLimits;
  /** Request method of the response being read (HEAD and CONNECT change response framing). */
  requestMethod = 'GET';

  constructor(isRequest: boolean, limits: HeadLimits = DEFAULT_LIMITS) {
    this.isRequest = isRequest;
    this.limits = limits;
  }

  /** True while part of a head has been read but not all of it. */
  get pending(): boolean {
    return this.acc !== null;
  }

  reset(): void {
    this.acc = null;
    this.scan = this.lineStart = this.headStart = this.lines = this.empties = 0;
  }

  /**
   * Feed chunk[off..]. Returns null when more bytes are needed (all of them
   * were taken), or a result with `used`, the bytes of chunk consumed up to the
   * end of the head (the body or the next message follows).
   */
  feed(chunk: Buffer, off: number): { head: HeadResult; used: number } | null {
    let buf: Buffer;
    let base: number; // where chunk[off] sits in buf
    if (this.acc) {
      base = this.acc.length;
      buf = Buffer.concat([this.acc, chunk.subarray(off)]);
    } else {
      base = 0;
      buf = off === 0 ? chunk : chunk.subarray(off);
      this.scan = this.lineStart = this.headStart = 0;
    }
    const max = this.limits.maxHeadBytes;
    let pos = this.scan;
    for (;;) {
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) {
        if (buf.length - this.headStart > max) return this.done(fail(431, 'head-size', `head larger than ${max} bytes`), buf.length - base);
        // Keep a private copy: retaining a view would pin the whole socket read.
        this.acc = this.acc ? buf.subarray(this.headStart) : Buffer.from(buf.subarray(this.headStart));
        this.scan = buf.length - this.headStart;
        this.lineStart -= this.headStart;
        this.headStart = 0;
        return null;
      }
      if (lf === this.lineStart || buf[lf - 1] !== CR) {
        return this.done(fail(400, 'bare-lf', 'a line ends in LF without CR'), lf + 1 - base);
      }
      if (lf - 1 === this.lineStart) {
        // An empty line: before the start line it is ignored (RFC 9112 §2.2); after it, the head is complete.
        if (this.lines === 0) {
          if (!this.isRequest || ++this.empties > MAX_LEADING_EMPTY) {
            return this.done(fail(400, 'leading-empty-lines', 'empty lines before the start line'), lf + 1 - base);
          }
          this.headStart = this.lineStart = pos = lf + 1;
          continue;
        }
        const end = lf + 1;
        if (end - this.headStart > max) return this.done(fail(431, 'head-size', `head larger than ${max} bytes`), end - base);
        const n = this.lines - 1;
        if (4 * n > scratch.length) scratch = new Int32Array(4 * n);
        const head = parseHead(buf.subarray(this.headStart, end), this.isRequest, n, scratch, this.requestMethod);
        return this.done(head, end - base);
      }
      if (++this.lines > this.limits.maxHeaders + 1) {
        return this.done(fail(431, 'header-count', `more than ${this.limits.maxHeaders} header fields`), lf + 1 - base);
      }
      this.lineStart = pos = lf + 1;
      if (pos - this.headStart > max) return this.done(fail(431, 'head-size', `head larger than ${max} bytes`), pos - base);
    }
  }

  private done(head: HeadResult, used: number): { head: HeadResult; used: number } {
    this.reset();
    return { head, used };
  }
}

/** Parse one complete head (start line, `n` field lines, empty line). */
export function parseHead(buf: Buffer, isRequest: boolean, n: number, scratch: Int32Array, requestMethod = 'GET'): HeadResult {
  let p = 0;
  const len = buf.length;
  let method = '';
  let minor = 1;
  let status = 0;
  let tStart = 0;
  let tEnd = 0;
  let rStart = 0;
  let rEnd = 0;
  if (isRequest) {
    if (buf[0] === CR) return fail(400, 'bare-cr', 'a CR not followed by LF before the request-line');
    while (p < len && TOKEN[buf[p]!]) p++;
    if (p === 0 || buf[p] !== SP) return fail(400, 'request-line', 'request-line: method is not a token followed by one SP');
    method = latin1(buf, 0, p);
    if (!HTTP_METHODS.has(method)) return fail(400, 'method', `request-line: unknown method ${JSON.stringify(method)}`);
    tStart = ++p;
    if (buf[p] === SP) return fail(400, 'request-line-sp', 'request-line: more than one SP after the method');
    while (p < len && TARGET[buf[p]!]) p++;
    tEnd = p;
    if (tEnd > tStart && buf[p] === CR) return fail(400, 'version', 'request-line: no HTTP version (an HTTP/0.9 request)');
    if (tEnd === tStart || buf[p] !== SP) return fail(400, 'target-char', 'request-line: request-target is empty or holds a byte outside visible ASCII');
    p++;
    if (buf[p] === SP) return fail(400, 'request-line-sp', 'request-line: more than one SP after the target');
    const v = version(buf, p);
    if (v < 0) return fail(v === -2 ? 505 : 400, 'version', 'request-line: version is not HTTP/1.0 or HTTP/1.1');
    minor = v;
    p += 8;
    if (buf[p] !== CR) return fail(400, 'request-line', 'request-line: bytes after the version');
    if (buf[p + 1] !== LF) return fail(400, 'bare-cr', 'CR not followed by LF');
    p += 2;
    const form = targetForm(buf, tStart, tEnd, method);
    if (form) return fail(400, 'target-form', form);
  } else {
    const v = version(buf, 0);
    if (v < 0) return fail(502, 'version', 'status-line: version is not HTTP/1.0 or HTTP/1.1');
    minor = v;
    p = 8;
    if (buf[p] !== SP) return fail(502, 'status-line', 'status-line: no SP after the version');
    const d0 = buf[p + 1]! - 0x30;
    const d1 = buf[p + 2]! - 0x30;
    const d2 = buf[p + 3]! - 0x30;
    if (!(d0 >= 1 && d0 <= 5 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) return fail(502, 'status-line', 'status-line: status is not three digits 100–599');
    status = d0 * 100 + d1 * 10 + d2;
    p += 4;
    if (buf[p] === SP) {
      rStart = ++p;
      while (buf[p] !== CR) {
        if (!REASON[buf[p]!]) return fail(502, 'status-line', 'status-line: invalid byte in the reason phrase');
        p++;
      }
      rEnd = p;
    } else if (buf[p] !== CR) return fail(502, 'status-line', 'status-line: bytes after the status code');
    else rStart = rEnd = p;
    if (buf[p + 1] !== LF) return fail(502, 'bare-cr', 'CR not followed by LF');
    p += 2;
  }
  const fieldsStart = p;
  const f = n * 4 <= scratch.length ? scratch : new Int32Array(n * 4);
  const bad = isRequest ? 400 : 502;
  let clCount = 0;
  let contentLength = -1;
  let teCount = 0;
  let teChunked = false;
  let conClose = false;
  let conKeepAlive = false;
  let conUpgrade = false;
  let hasUpgrade = false;
  let expect = false;
  let hop = 0;
  let hostStart = -1;
  let hostEnd = -1;
  let hostCount = 0;
  for (let i = 0; i < n; i++) {
    const ns = p;
    const c0 = buf[p]!;
    if (c0 === SP || c0 === HTAB) return fail(bad, 'obs-fold', 'a field line starts with whitespace (obs-fold)');
    while (TOKEN[buf[p]!]) p++;
    const ne = p;
    if (buf[p] !== COLON) {
      const c = buf[p]!;
      if (c === SP || c === HTAB) return fail(bad, 'space-before-colon', `whitespace between field name ${JSON.stringify(latin1(buf, ns, ne))} and colon`);
      return fail(bad, 'field-name', `invalid byte 0x${c.toString(16)} in a field name`);
    }
    if (ne === ns) return fail(bad, 'field-name', 'empty field name');
    p++;
    while (buf[p] === SP || buf[p] === HTAB) p++;
    let vs = p;
    let ve = p;
    for (;;) {
      const c = buf[p]!;
      if (c === CR) break;
      if (!FIELD[c]) return fail(bad, c === LF ? 'bare-lf' : 'field-char', `invalid byte 0x${c.toString(16)} in the value of ${latin1(buf, ns, ne)}`);
      p++;
      if (c !== SP && c !== HTAB) ve = p;
    }
    if (buf[p + 1] !== LF) return fail(bad, 'bare-cr', 'CR not followed by LF');
    p += 2;
    if (ve < vs) ve = vs;
    f[4 * i] = ns;
    f[4 * i + 1] = ne;
    f[4 * i + 2] = vs;
    f[4 * i + 3] = ve;
    const nl = ne - ns;
    // Names that change framing, persistence or routing.
    const c = buf[ns]! | 0x20;
    if (nl === 14 && c === 0x63 && eqLower(buf, ns, ne, 'content-length')) {
      if (++clCount > 1) return fail(bad, 'cl-repeated', 'Content-Length repeated');
      if (vs > ne + 2 || (vs === ne + 2 && buf[ne + 1] !== SP) || ve !== p - 2) return fail(bad, 'framing-ows', 'whitespace other than one SP before Content-Length');
      if (ve - vs > 16 || ve === vs) return fail(bad, 'cl-invalid', 'Content-Length is not 1–16 digits');
      let v = 0;
      for (let j = vs; j < ve; j++) {
        const d = buf[j]! - 0x30;
        if (d < 0 || d > 9) return fail(bad, 'cl-invalid', 'Content-Length is not a decimal number');
        v = v * 10 + d;
      }
      if (v > Number.MAX_SAFE_INTEGER) return fail(bad, 'cl-too-big', 'Content-Length too large');
      contentLength = v;
    } else if (nl === 17 && c === 0x74 && eqLower(buf, ns, ne, 'transfer-encoding')) {
      teCount++;
      if (isRequest) {
        if (teCount > 1) return fail(400, 'te-not-chunked', 'Transfer-Encoding repeated');
        if (vs > ne + 2 || (vs === ne + 2 && buf[ne + 1] !== SP) || ve !== p - 2) return fail(400, 'framing-ows', 'whitespace other than one SP around Transfer-Encoding');
        if (ve - vs !== 7 || latin1(buf, vs, ve) !== 'chunked') return fail(400, 'te-not-chunked', "Transfer-Encoding is not exactly 'chunked'");
        teChunked = true;
      } else {
        // A response: the final coding decides (RFC 9112 §6.3); anything but a final chunked is close-delimited.
        teChunked = lastTokenIs(buf, vs, ve, 'chunked');
      }
      // Transfer-Encoding stays in the forwarded head: the body is relayed in its own framing.
    } else if (nl === 10 && c === 0x63 && eqLower(buf, ns, ne, 'connection')) {
      hop |= HOP_CONNECTION;
      forEachToken(buf, vs, ve, (s, e) => {
        if (eqLower(buf, s, e, 'close')) conClose = true;
        else if (eqLower(buf, s, e, 'keep-alive')) conKeepAlive = true;
        else if (eqLower(buf, s, e, 'upgrade')) conUpgrade = true;
      });
    } else if (nl === 4 && c === 0x68 && eqLower(buf, ns, ne, 'host')) {
      hostCount++;
      hostStart = vs;
      hostEnd = ve;
    } else if (nl === 7 && c === 0x75 && eqLower(buf, ns, ne, 'upgrade')) {
      hop |= HOP_UPGRADE;
      hasUpgrade = true;
    } else if (nl === 6 && c === 0x65 && eqLower(buf, ns, ne, 'expect')) {
      expect = eqLower(buf, vs, ve, '100-continue');
    } else if (nl === 10 && c === 0x6b && eqLower(buf, ns, ne, 'keep-alive')) hop |= HOP_KEEP_ALIVE;
    else if (nl === 16 && c === 0x70 && eqLower(buf, ns, ne, 'proxy-connection')) hop |= HOP_PROXY_CONNECTION;
    else if (nl === 2 && c === 0x74 && eqLower(buf, ns, ne, 'te')) hop |= HOP_TE;
    else if (nl === 7 && c === 0x74 && eqLower(buf, ns, ne, 'trailer')) hop |= HOP_TRAILER;
  }
  if (buf[p] !== CR || buf[p + 1] !== LF || p + 2 !== len) return fail(bad, 'head-end', 'head does not end with an empty line');

  const head = new Head(buf, isRequest, f === scratch ? scratch.slice(0, 4 * n) : f, n);
  head.minor = minor;
  head.fieldsStart = fieldsStart;
  head.hop = hop;
  head.hostStart = hostStart;
  head.hostEnd = hostEnd;
  head.keepAlive = minor === 1 ? !conClose : conKeepAlive && !conClose;
  if (isRequest) {
    head.method = method;
    head.target = latin1(buf, tStart, tEnd);
    head.targetStart = tStart;
    head.targetEnd = tEnd;
    if (hostCount > 1) return fail(400, 'host-repeated', 'Host repeated');
    if (minor === 1 && hostCount === 0) return fail(400, 'host-missing', 'HTTP/1.1 request without Host');
    if (teCount > 0 && clCount > 0) return fail(400, 'cl-and-te', 'both Content-Length and Transfer-Encoding');
    if (teCount > 0 && minor === 0) return fail(400, 'te-http10', 'Transfer-Encoding in an HTTP/1.0 request');
    head.expectContinue = expect && minor === 1;
    if (method === 'CONNECT') {
      head.upgrade = true;
      head.framing = 'tunnel';
    } else {
      head.upgrade = hasUpgrade && conUpgrade;
      head.framing = teChunked ? 'chunked' : contentLength > 0 ? 'length' : 'none';
    }
    head.contentLength = contentLength > 0 ? contentLength : 0;
  } else {
    head.status = status;
    head.reasonStart = rStart;
    head.reasonEnd = rEnd;
    if (teCount > 0 && clCount > 0) return fail(502, 'cl-and-te', 'both Content-Length and Transfer-Encoding');
    if (status < 200 || status === 204 || status === 304 || requestMethod === 'HEAD') {
      head.framing = status === 101 ? 'tunnel' : 'none';
      head.upgrade = status === 101;
    } else if (requestMethod === 'CONNECT' && status < 300) {
      head.framing = 'tunnel';
      head.upgrade = true;
    } else if (teCount > 0) {
      head.framing = teChunked ? 'chunked' : 'close';
    } else if (contentLength >= 0) {
      head.framing = contentLength > 0 ? 'length' : 'none';
      head.contentLength = contentLength;
    } else head.framing = 'close';
    if (head.framing === 'close') head.keepAlive = false;
  }
  return head;
}

/** 1 for "HTTP/1.1", 0 for "HTTP/1.0", -2 for another well-formed version, -1 otherwise. */
function version(buf: Buffer, p: number): number {
  if (
    buf[p] !== 0x48 || buf[p + 1] !== 0x54 || buf[p + 2] !== 0x54 || buf[p + 3] !== 0x50 ||
    buf[p + 4] !== 0x2f || buf[p + 6] !== 0x2e
  ) return -1;
  const maj = buf[p + 5]! - 0x30;
  const min = buf[p + 7]! - 0x30;
  if (!(maj >= 0 && maj <= 9 && min >= 0 && min <= 9)) return -1;
  if (maj === 1 && (min === 0 || min === 1)) return min;
  return -2;
}

function targetForm(buf: Buffer, s: number, e: number, method: string): string | null {
  const c = buf[s]!;
  if (method === 'CONNECT') {
    // authority-form: host ":" port
    if (c === 0x2f || buf.indexOf(0x3a, s) < 0 || buf.indexOf(0x3a, s) >= e) return 'request-line: CONNECT needs an authority-form target (host:port)';
    return null;
  }
  if (c === 0x2f) return null;
  if (c === 0x2a) return e - s === 1 && method === 'OPTIONS' ? null : "request-line: '*' target only with OPTIONS";
  // absolute-form: scheme "://" … (letters only in the scheme, as llhttp; RFC 3986 also allows digits, '+', '-', '.')
  let p = s;
  while (p < e && (buf[p]! | 0x20) >= 0x61 && (buf[p]! | 0x20) <= 0x7a) p++;
  if (p === s) return 'request-line: request-target is not origin-form or absolute-form';
  if (!(buf[p] === 0x3a && buf[p + 1] === 0x2f && buf[p + 2] === 0x2f && p + 3 < e)) return 'request-line: request-target is not origin-form or absolute-form';
  // authority = unreserved / pct-encoded / sub-delims / ":" / "@" / "[" / "]" (RFC 3986 §3.2)
  for (p += 3; p < e && buf[p] !== 0x2f && buf[p] !== 0x3f; p++) {
    if (!AUTHORITY[buf[p]!]) return 'request-line: invalid byte in the authority of an absolute-form target';
  }
  return null;
}

/** Call fn(start, end) for each comma-separated, OWS-trimmed, non-empty member of buf[s..e). */
export function forEachToken(buf: Buffer, s: number, e: number, fn: (s: number, e: number) => void): void {
  let i = s;
  while (i < e) {
    while (i < e && (buf[i] === SP || buf[i] === HTAB || buf[i] === 0x2c)) i++;
    const ts = i;
    while (i < e && buf[i] !== 0x2c) i++;
    let te = i;
    while (te > ts && (buf[te - 1] === SP || buf[te - 1] === HTAB)) te--;
    if (te > ts) fn(ts, te);
  }
}

function lastTokenIs(buf: Buffer, s: number, e: number, lower: string): boolean {
  let last: [number, number] | null = null;
  forEachToken(buf, s, e, (ts, te) => {
    last = [ts, te];
  });
  const l = last as [number, number] | null;
  return l !== null && eqLower(buf, l[0], l[1], lower);
}

export function isHeadError(h: HeadResult): h is HeadError {
  return (h as HeadError).ok === false;
}

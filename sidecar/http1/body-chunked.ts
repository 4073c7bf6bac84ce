// The chunked transfer coding (RFC 9112 §7.1), validated as it streams by so
// a proxy can relay the bytes as they came (no re-chunking) and still know
// exactly where the message ends and whether its framing is sound.
//
//   chunked-body   = *chunk last-chunk trailer-section CRLF
//   chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size     = 1*HEXDIG
//   last-chunk     = 1*("0") [ chunk-ext ] CRLF
//   chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// Stricter than the grammar: no whitespace (BWS) anywhere in the extensions
// outside a quoted string. llhttp rejects most of it too, and a relay must not
// pass on what a next hop may read differently.
//   chunk-ext-val  = token / quoted-string
//   trailer-section = *( field-line CRLF )

import { CR, FIELD, HEX, HTAB, LF, SP, TOKEN } from './chars.js';

const enum S {
  SizeStart,
  Size,
  ExtBws, // after a quoted string: ';' or CR
  ExtNameStart,
  ExtName,
  ExtValStart,
  ExtValToken,
  ExtQuoted,
  ExtQuotedEsc,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  EndLf,
  Done,
  Error,
}

export interface ChunkedLimits {
  /** Most bytes of chunk extensions on one chunk line. */
  maxExtBytes: number;
  /** Most bytes of the trailer section. */
  maxTrailerBytes: number;
  /** Most trailer field lines. */
  maxTrailers: number;
}
export const DEFAULT_CHUNKED_LIMITS: ChunkedLimits = { maxExtBytes: 4096, maxTrailerBytes: 16 * 1024, maxTrailers: 100 };

// 13 hex digits hold at most 2^52 - 1, safely inside a double's integers.
const MAX_SIZE_DIGITS = 13;

// Framing fields in trailers (RFC 9110 §6.5.1: fields that describe message
// framing cannot be processed after the content). llhttp rejects them too.
const BANNED = ['content-length', 'transfer-encoding'];

export type DataSink = (buf: Buffer, start: number, end: number) => void;

export class ChunkedDecoder {
  private s = S.SizeStart;
  private size = 0;
  private digits = 0;
  private ext = 0;
  private trailerBytes = 0;
  private trailers = 0;
  /** Which BANNED name the trailer name being read may still be (-1: none). */
  private match = -1;
  private nameLen = 0;
  private remaining = 0;
  /** Why the framing was rejected, once feed() returned -1. */
  error = '';
  /** The rule broken: chunk-size, chunk-size-too-big, chunk-ext, chunk-data, trailer. */
  code = '';
  readonly limits: ChunkedLimits;

  constructor(limits: ChunkedLimits = DEFAULT_CHUNKED_LIMITS) {
    this.limits = limits;
  }

  get done(): boolean {
    return this.s === S.Done;
  }

  reset(): void {
    this.s = S.SizeStart;
    this.size = this.digits = this.ext = this.trailerBytes = this.trailers = this.remaining = 0;
    this.error = this.code = '';
  }

  /**
   * Scan buf[start..end). Calls onData for the chunk-data spans (if given).
   * Returns the offset just past the body's final CRLF when the body ends in
   * this range (the rest belongs to the next message), `end` when more is
   * needed, or -1 when the framing is invalid (see `error`).
   */
  feed(buf: Buffer, start: number, end: number, onData?: DataSink): number {
    let p = start;
    let s = this.s;
    if (s === S.Done) return start;
    if (s === S.Error) return -1;
    while (p < end) {
      if (s === S.Data) {
        const n = Math.min(this.remaining, end - p);
        if (onData) onData(buf, p, p + n);
        p += n;
        this.remaining -= n;
        if (this.remaining === 0) s = S.DataCr;
        continue;
      }
      const c = buf[p++]!;
      switch (s) {
        case S.SizeStart: {
          const h = HEX[c]!;
          if (h < 0) return this.fail(c === 0x2d ? 'negative chunk size' : 'chunk size is not hexadecimal');
          this.size = h;
          this.digits = h > 0 ? 1 : 0;
          s = S.Size;
          break;
        }
        case S.Size: {
          const h = HEX[c]!;
          if (h >= 0) {
            // Leading zeros do not count toward overflow.
            if ((this.size > 0 || h > 0) && ++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size overflows');
            this.size = this.size * 16 + h;
          } else if (c === CR) s = S.SizeLf;
          else if (c === 0x3b) {
            this.ext = 1;
            s = S.ExtNameStart;
          } else if (c === SP || c === HTAB) return this.fail('whitespace in chunk extension');
          else return this.fail('chunk size is not hexadecimal');
          break;
        }
        case S.ExtBws:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (c === 0x3b) s = S.ExtNameStart;
          else if (c === CR) s = S.SizeLf;
          else return this.fail('malformed chunk extension');
          break;
        case S.ExtNameStart:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (TOKEN[c]) s = S.ExtName;
          else return this.fail('malformed chunk extension: name');
          break;
        case S.ExtName:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (TOKEN[c]) break;
          if (c === 0x3d) s = S.ExtValStart;
          else if (c === 0x3b) s = S.ExtNameStart;
          else if (c === CR) s = S.SizeLf;
          else return this.fail('malformed chunk extension: name');
          break;
        case S.ExtValStart:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (c === 0x22) s = S.ExtQuoted;
          else if (TOKEN[c]) s = S.ExtValToken;
          else return this.fail('malformed chunk extension: value');
          break;
        case S.ExtValToken:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (TOKEN[c]) break;
          if (c === 0x3b) s = S.ExtNameStart;
          else if (c === CR) s = S.SizeLf;
          else return this.fail('malformed chunk extension: value');
          break;
        case S.ExtQuoted:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (c === 0x22) s = S.ExtBws;
          else if (c === 0x5c) s = S.ExtQuotedEsc;
          else if (!(c === HTAB || c === SP || c === 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80)) return this.fail('malformed chunk extension: quoted value');
          break;
        case S.ExtQuotedEsc:
          if (++this.ext > this.limits.maxExtBytes) return this.fail('chunk extensions too long');
          if (!(c === HTAB || c === SP || (c >= 0x21 && c <= 0x7e) || c >= 0x80)) return this.fail('malformed chunk extension: quoted value');
          s = S.ExtQuoted;
          break;
        case S.SizeLf:
          if (c !== LF) return this.fail('chunk size line does not end in CRLF');
          this.ext = 0;
          if (this.size === 0) s = S.TrailerStart;
          else {
            this.remaining = this.size;
            s = S.Data;
          }
          break;
        case S.DataCr:
          if (c !== CR) return this.fail('chunk data longer than its size');
          s = S.DataLf;
          break;
        case S.DataLf:
          if (c !== LF) return this.fail('chunk data not followed by CRLF');
          s = S.SizeStart;
          break;
        case S.TrailerStart:
          if (c === CR) {
            s = S.EndLf;
            break;
          }
          if (++this.trailers > this.limits.maxTrailers) return this.fail('too many trailer fields');
          if (!TOKEN[c]) return this.fail(c === SP || c === HTAB ? 'obs-fold in trailers' : 'invalid trailer field name');
          if (++this.trailerBytes > this.limits.maxTrailerBytes) return this.fail('trailers too large');
          this.nameLen = 1;
          this.match = (c | 0x20) === 0x63 ? 0 : (c | 0x20) === 0x74 ? 1 : -1;
          s = S.TrailerName;
          break;
        case S.TrailerName:
          if (++this.trailerBytes > this.limits.maxTrailerBytes) return this.fail('trailers too large');
          if (c === 0x3a) {
            if (this.match >= 0 && this.nameLen === BANNED[this.match]!.length) return this.fail(`${BANNED[this.match]} in trailers`);
            s = S.TrailerValue;
          } else if (!TOKEN[c]) return this.fail('invalid trailer field name');
          else if (this.match >= 0 && (c | 0x20) !== BANNED[this.match]!.charCodeAt(this.nameLen++)) this.match = -1;
          break;
        case S.TrailerValue:
          if (++this.trailerBytes > this.limits.maxTrailerBytes) return this.fail('trailers too large');
          if (c === CR) s = S.TrailerLf;
          else if (!FIELD[c]) return this.fail('invalid byte in a trailer value');
          break;
        case S.TrailerLf:
          if (c !== LF) return this.fail('trailer line does not end in CRLF');
          s = S.TrailerStart;
          break;
        case S.EndLf:
          if (c !== LF) return this.fail('chunked body does not end in CRLF');
          this.s = S.Done;
          return p;
        default:
          return -1;
      }
    }
    this.s = s;
    return end;
  }

  private fail(why: string): number {
    this.s = S.Error;
    this.error = why;
    this.code = /overflow/.test(why)
      ? 'chunk-size-too-big'
      : /extension/.test(why)
        ? 'chunk-ext'
        : /trailer/.test(why)
          ? 'trailer'
          : /size/.test(why)
            ? 'chunk-size'
            : 'chunk-data';
    return -1;
  }
}

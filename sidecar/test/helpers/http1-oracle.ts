// The two parsers the differential fuzz test compares, and the comparison.
import fc from 'fast-check';
import { createRequire } from 'node:module';
import { HeadReader, isHeadError, STRICTER } from '../../http1/parser.js';
import { ChunkedDecoder } from '../../http1/body-chunked.js';

export interface Msg {
  method: string;
  url: string;
  headers: [string, string][];
  body: string;
  trailers: [string, string][];
  upgrade: boolean;
}
export interface Outcome {
  msgs: Msg[];
  /** null: every byte was taken and no message is half-read; 'incomplete': input ended mid-message. */
  error: string | null;
  reason?: string;
  /** The parser stopped reading after its last message (Connection: close): what follows was never judged. */
  closed?: boolean;
}

// --- llhttp, the oracle -----------------------------------------------------
type Binding = {
  HTTPParser: {
    new (): LlParser;
    REQUEST: number;
    kOnHeaders: number;
    kOnHeadersComplete: number;
    kOnBody: number;
    kOnMessageComplete: number;
  };
  methods: string[];
};
type LlParser = Record<number, unknown> & {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(b: Buffer): number | (Error & { code: string; reason: string });
  finish(): undefined | (Error & { code: string; reason: string });
  close(): void;
};
// Node's internal HTTPParser (llhttp), the one node:http uses: internal and
// proposed for deprecation (nodejs#58534), so a test oracle only. Node 20
// also has it as process.binding('http_parser'); Node 26 only here.
const binding = createRequire(import.meta.url)('_http_common') as Binding;
const { HTTPParser, methods } = binding;

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

export function llhttp(bytes: Buffer): Outcome {
  const p = new HTTPParser();
  p.initialize(HTTPParser.REQUEST, {}, 0, 0);
  const msgs: Msg[] = [];
  let headers: string[] = [];
  let url = '';
  let cur: Msg | null = null;
  let inBody = false;
  p[HTTPParser.kOnHeaders] = (h: string[], u: string) => {
    if (inBody && cur) cur.trailers.push(...pairs(h));
    else {
      headers = headers.concat(h);
      url += u;
    }
  };
  p[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, h: string[] | undefined, method: number, u: string | undefined, _s: unknown, _m: unknown, upgrade: boolean) => {
    cur = { method: methods[method]!, url: u ?? url, headers: pairs(h ?? headers), body: '', trailers: [], upgrade };
    headers = [];
    url = '';
    inBody = true;
    return 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => {
    if (cur) cur.body += b.toString('latin1');
  };
  p[HTTPParser.kOnMessageComplete] = () => {
    if (cur) msgs.push(cur);
    cur = null;
    inBody = false;
  };
  const r = p.execute(bytes);
  if (typeof r !== 'number') {
    if (r.code === 'HPE_CLOSED_CONNECTION') return { msgs, error: null, closed: true };
    return { msgs, error: r.code, reason: r.reason };
  }
  if (msgs.length && msgs[msgs.length - 1]!.upgrade) return { msgs, error: null };
  if (r !== bytes.length) return { msgs, error: 'short' };
  const f = p.finish();
  if (f) return { msgs, error: f.code === 'HPE_INVALID_EOF_STATE' ? 'incomplete' : f.code, reason: f.reason };
  return { msgs, error: cur || inBody || headers.length ? 'incomplete' : null };
}

// --- weft -------------------------------------------------------------------
export function weft(bytes: Buffer): Outcome {
  const reader = new HeadReader(true);
  const msgs: Msg[] = [];
  let off = 0;
  while (off < bytes.length) {
    const got = reader.feed(bytes, off);
    if (!got) return { msgs, error: 'incomplete' };
    const head = got.head;
    if (isHeadError(head)) return { msgs, error: head.code, reason: head.reason };
    off += got.used;
    const m: Msg = { method: head.method, url: head.target, headers: head.entries(), body: '', trailers: [], upgrade: head.upgrade };
    if (head.upgrade) {
      msgs.push(m);
      return { msgs, error: null };
    }
    if (head.framing === 'length') {
      if (bytes.length - off < head.contentLength) return { msgs, error: 'incomplete' };
      m.body = bytes.toString('latin1', off, off + head.contentLength);
      off += head.contentLength;
    } else if (head.framing === 'chunked') {
      const d = new ChunkedDecoder();
      const end = d.feed(bytes, off, bytes.length, (b, s, e) => {
        m.body += b.toString('latin1', s, e);
      });
      if (end < 0) return { msgs, error: d.code, reason: d.error };
      if (!d.done) return { msgs, error: 'incomplete' };
      m.trailers = trailersOf(bytes, off, end);
      off = end;
    }
    msgs.push(m);
    if (!head.keepAlive) return { msgs, error: null, closed: off < bytes.length }; // the server closes: what follows is never read
  }
  return { msgs, error: null };
}

/** The trailer lines of a validated chunked body at bytes[s..e) (test-side; the engine relays them as bytes). */
function trailersOf(bytes: Buffer, s: number, e: number): [string, string][] {
  const text = bytes.toString('latin1', s, e);
  let p = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', p);
    const size = parseInt(text.slice(p, eol).split(';')[0]!, 16);
    p = eol + 2;
    if (size === 0) break;
    p += size + 2;
  }
  const rest = text.slice(p, -2);
  if (!rest) return [];
  return rest
    .split('\r\n')
    .filter(Boolean)
    .map((l) => {
      const c = l.indexOf(':');
      return [l.slice(0, c), l.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '')] as [string, string];
    });
}

// --- comparison ---------------------------------------------------------------
const ALLOWED = new Set<string>(Object.keys(STRICTER));

/** null when the outcomes agree (or differ only as STRICTER allows), else why not. */
export function compare(bytes: Buffer): string | null {
  let a = weft(bytes);
  let b = llhttp(bytes);
  // A parser that stopped at Connection: close never judged the rest; compare only what both read.
  if (b.closed && a.msgs.length >= b.msgs.length) a = { msgs: a.msgs.slice(0, b.msgs.length), error: null };
  if (a.closed && b.msgs.length >= a.msgs.length) b = { msgs: b.msgs.slice(0, a.msgs.length), error: null };
  const n = Math.min(a.msgs.length, b.msgs.length);
  for (let i = 0; i < n; i++) {
    const x = a.msgs[i]!;
    const y = b.msgs[i]!;
    if (x.method !== y.method || x.url !== y.url) return `message ${i}: start line ${x.method} ${x.url} vs llhttp ${y.method} ${y.url}`;
    if (JSON.stringify(x.headers) !== JSON.stringify(y.headers)) return `message ${i}: headers ${JSON.stringify(x.headers)} vs llhttp ${JSON.stringify(y.headers)}`;
    if (x.body !== y.body) return `message ${i}: body ${JSON.stringify(x.body)} vs llhttp ${JSON.stringify(y.body)}`;
    if (JSON.stringify(x.trailers) !== JSON.stringify(y.trailers)) return `message ${i}: trailers ${JSON.stringify(x.trailers)} vs llhttp ${JSON.stringify(y.trailers)}`;
    if (x.upgrade !== y.upgrade) return `message ${i}: upgrade ${x.upgrade} vs llhttp ${y.upgrade}`;
    if (x.upgrade) return null;
  }
  if (a.msgs.length > b.msgs.length) {
    // weft accepted a message llhttp did not: never allowed (unless llhttp only lacks the end of input).
    return `weft accepted ${a.msgs.length} message(s), llhttp ${b.msgs.length} (${b.error}: ${b.reason ?? ''})`;
  }
  if (a.msgs.length < b.msgs.length) {
    if (a.error && ALLOWED.has(a.error)) return null;
    return `weft stopped after ${a.msgs.length} message(s) with ${a.error} (${a.reason ?? ''}), llhttp accepted ${b.msgs.length}`;
  }
  // Same messages; then the tail: both stop with an error, both need more, or both are clean.
  if (a.error === null && b.error !== null && b.error !== 'incomplete') return `weft accepted the input, llhttp ${b.error} (${b.reason})`;
  if (a.error === 'incomplete' && b.error !== null && b.error !== 'incomplete') return null; // weft waits for the line end before judging; it has accepted nothing
  if (a.error !== null && a.error !== 'incomplete' && (b.error === null || b.error === 'incomplete')) {
    return ALLOWED.has(a.error) ? null : `weft rejected with ${a.error} (${a.reason}), llhttp ${b.error ?? 'accepted'}`;
  }
  return null;
}

// --- generators ---------------------------------------------------------------
const TCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
const PATHCH = "abcxyz0123456789-._~!$&'()*+,;=:@/%?";
const VALCH = 'abc xyz019 \t!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\x80\xe9\xff';
const name = fc.oneof(
  fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 10 }),
  fc.constantFrom('Accept', 'X-Forwarded-For', 'Cookie', 'User-Agent', 'Connection', 'Expect', 'Keep-Alive', 'TE', 'Trailer'),
);
const value = fc.string({ unit: fc.constantFrom(...VALCH), maxLength: 16 });
const sep = fc.constantFrom(': ', ':', ':  ', ':\t', ': \t');
const SMUGGLE = [
  'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked, identity', 'Transfer-Encoding: identity', 'Transfer-Encoding: Chunked',
  'Transfer-Encoding:\tchunked', 'Transfer-Encoding : chunked', 'transfer-encoding: chunked', 'Transfer-Encoding: xchunked',
  'Transfer-Encoding: gzip, chunked', 'Content-Length: 0', 'Content-Length: 3', 'Content-Length: 3, 3', 'Content-Length:  3 ',
  'Content-Length: -1', 'Content-Length: 0x3', 'Host: other', 'Connection: close', 'Connection: keep-alive', 'Expect: 100-continue',
  'Upgrade: websocket',
];
const header = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(name, sep, value).map(([n, s, v]) => `${n}${s}${v}\r\n`) },
  { weight: 1, arbitrary: fc.constantFrom(...SMUGGLE).map((l) => `${l}\r\n`) },
);
const target = fc.oneof(
  fc.string({ unit: fc.constantFrom(...PATHCH), maxLength: 20 }).map((s) => '/' + s),
  fc.constant('*'),
  fc.constant('http://svc.ns:8080/x?y'),
);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'HEAD', 'PURGE', 'GET', 'POST');
const ext = fc.oneof(
  fc.constant(''),
  fc.constantFrom(';a', ';a=b', ';a="q s"', ' ;a=b', ';a = b', ';a="\\""', ';a=b;c'),
  fc.string({ unit: fc.constantFrom(';', '=', 'a', '"', ' ', '\t', '\\', ','), maxLength: 6 }),
);
const chunk = fc.tuple(fc.string({ unit: fc.constantFrom('a', 'b', '\r', '\n', '0'), minLength: 1, maxLength: 20 }), ext, fc.boolean()).map(
  ([d, e, upper]) => `${upper ? d.length.toString(16).toUpperCase() : d.length.toString(16)}${e}\r\n${d}\r\n`,
);
const body = fc.oneof(
  fc.constant({ framing: '', bytes: '' }),
  fc.string({ unit: fc.constantFrom('a', 'b', '\r', '\n', 'G'), maxLength: 30 }).map((d) => ({ framing: `Content-Length: ${d.length}\r\n`, bytes: d })),
  fc
    .tuple(fc.array(chunk, { maxLength: 3 }), ext, fc.array(header, { maxLength: 2 }), fc.constantFrom('0', '000'))
    .map(([cs, e, trailers, last]) => ({ framing: 'Transfer-Encoding: chunked\r\n', bytes: `${cs.join('')}${last}${e}\r\n${trailers.join('')}\r\n` })),
);
const message = fc
  .tuple(method, target, fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'), fc.boolean(), fc.array(header, { maxLength: 5 }), body, fc.nat(5))
  .map(([m, tg, v, host, hs, b, at]) => {
    const lines = [...hs];
    if (host || v === 'HTTP/1.1') lines.splice(Math.min(at, lines.length), 0, 'Host: svc.ns\r\n');
    lines.splice(Math.min(at, lines.length), 0, b.framing);
    return `${m} ${tg} ${v}\r\n${lines.join('')}\r\n${b.bytes}`;
  });
export const messages = fc.array(message, { minLength: 1, maxLength: 3 }).map((ms) => ms.join(''));

const INTERESTING = [' ', '\t', '\r', '\n', '\r\n', '\x00', ':', ',', ';', '"', '\x7f', '\xff', '-', '0', 'f', 'chunked', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: 0\r\n', '\r\n\r\n', ' chunked', 'identity'];
export const mutation = fc.oneof(
  fc.tuple(fc.constant('insert' as const), fc.nat(), fc.constantFrom(...INTERESTING)),
  fc.tuple(fc.constant('delete' as const), fc.nat(), fc.integer({ min: 1, max: 3 })),
  fc.tuple(fc.constant('replace' as const), fc.nat(), fc.constantFrom(...INTERESTING.filter((s) => s.length === 1))),
);
export function mutate(s: string, ms: Array<['insert', number, string] | ['delete', number, number] | ['replace', number, string]>): string {
  for (const m of ms) {
    const at = s.length ? m[1] % s.length : 0;
    if (m[0] === 'insert') s = s.slice(0, at) + m[2] + s.slice(at);
    else if (m[0] === 'delete') s = s.slice(0, at) + s.slice(at + m[2]);
    else s = s.slice(0, at) + m[2] + s.slice(at + 1);
  }
  return s;
}


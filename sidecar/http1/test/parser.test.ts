import t from 'tap';
import { HeadReader, isHeadError, type Head, type HeadResult } from '../parser.js';
import { ChunkedDecoder } from '../body-chunked.js';

function req(s: string, limits?: { maxHeadBytes: number; maxHeaders: number }): HeadResult {
  const r = new HeadReader(true, limits);
  const out = r.feed(Buffer.from(s, 'latin1'), 0);
  if (!out) throw new Error('incomplete');
  return out.head;
}

function res(s: string, method = 'GET'): HeadResult {
  const r = new HeadReader(false);
  r.requestMethod = method;
  const out = r.feed(Buffer.from(s, 'latin1'), 0);
  if (!out) throw new Error('incomplete');
  return out.head;
}

t.test('request heads that are rejected, and why', async (t) => {
  const cases: Array<[string, string, string, number?]> = [
    ['CL and TE (CL.TE / TE.CL)', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n', 'cl-and-te'],
    ['TE then CL', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n', 'cl-and-te'],
    ['differing CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n', 'cl-repeated'],
    ['repeated equal CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n', 'cl-repeated'],
    ['CL as a list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\n', 'cl-invalid'],
    ['negative CL', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 'cl-invalid'],
    ['CL with plus', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n', 'cl-invalid'],
    ['CL too big', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999\r\n\r\n', 'cl-invalid'],
    ['CL over 2^53', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9007199254740993\r\n\r\n', 'cl-too-big'],
    ['TE chunked, identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n', 'te-not-chunked'],
    ['TE identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n', 'te-not-chunked'],
    ['TE xchunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', 'te-not-chunked'],
    ['TE mixed case value', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: cHuNkEd\r\n\r\n', 'te-not-chunked'],
    ['TE twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'te-not-chunked'],
    ['TE tab', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n', 'framing-ows'],
    ['TE trailing space', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n', 'framing-ows'],
    ['TE in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 'te-http10'],
    ['space before colon', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n', 'space-before-colon'],
    ['tab before colon', 'GET / HTTP/1.1\r\nHost\t: a\r\n\r\n', 'space-before-colon'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 'obs-fold'],
    ['bare LF line end', 'GET / HTTP/1.1\nHost: a\r\n\r\n', 'bare-lf'],
    ['bare LF in headers', 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n', 'bare-lf'],
    ['bare CR in a value', 'GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n', 'bare-cr'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n', 'field-char'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n', 'field-char'],
    ['bad name byte', 'GET / HTTP/1.1\r\nHo"st: a\r\n\r\n', 'field-name'],
    ['empty name', 'GET / HTTP/1.1\r\n: a\r\n\r\n', 'field-name'],
    ['lower-case method', 'get / HTTP/1.1\r\nHost: a\r\n\r\n', 'method'],
    ['unknown method', 'FROB / HTTP/1.1\r\nHost: a\r\n\r\n', 'method'],
    ['two spaces', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 'request-line-sp'],
    ['garbage line', '\x16\x03\x01 / HTTP/1.1\r\nHost: a\r\n\r\n', 'request-line'],
    ['no version (HTTP/0.9)', 'GET /\r\nHost: a\r\n\r\n', 'version'],
    ['HTTP/2.0 version', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 'version', 505],
    ['http/1.1 lower-case', 'GET / http/1.1\r\nHost: a\r\n\r\n', 'version'],
    ['bytes after version', 'GET / HTTP/1.1 x\r\nHost: a\r\n\r\n', 'request-line'],
    ['tab in target', 'GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n', 'target-char'],
    ['non-ascii target', 'GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 'target-char'],
    ['relative target', 'GET a/b HTTP/1.1\r\nHost: a\r\n\r\n', 'target-form'],
    ['* with GET', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', 'target-form'],
    ['CONNECT without port', 'CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n', 'target-form'],
    ['no Host in 1.1', 'GET / HTTP/1.1\r\nX: a\r\n\r\n', 'host-missing'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'host-repeated'],
    ['header count', 'GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n', 'header-count', 431],
    ['head size', `GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(200)}\r\n\r\n`, 'head-size', 431],
    ['too many empty lines first', `${'\r\n'.repeat(9)}GET / HTTP/1.1\r\nHost: a\r\n\r\n`, 'leading-empty-lines'],
  ];
  for (const [name, text, code, status] of cases) {
    const limits = code === 'header-count' ? { maxHeadBytes: 16384, maxHeaders: 3 } : code === 'head-size' ? { maxHeadBytes: 128, maxHeaders: 100 } : undefined;
    const h = req(text, limits);
    t.ok(isHeadError(h), `${name}: rejected`);
    if (isHeadError(h)) {
      t.equal(h.code, code, `${name}: ${h.reason}`);
      t.equal(h.status, status ?? 400, `${name}: status`);
    }
  }
});

t.test('request heads that are accepted: what the engine reads from them', async (t) => {
  const cases: Array<[string, string, Partial<Head>]> = [
    ['plain GET', 'GET /a?b=1 HTTP/1.1\r\nHost: svc:80\r\n\r\n', { method: 'GET', target: '/a?b=1', framing: 'none', keepAlive: true, host: 'svc:80' } as Partial<Head>],
    ['chunked POST', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', { framing: 'chunked' }],
    ['TE with no space', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:chunked\r\n\r\n', { framing: 'chunked' }],
    ['mixed-case field names are names', 'POST / HTTP/1.1\r\nhOsT: a\r\ntransfer-ENCODING: chunked\r\n\r\n', { framing: 'chunked' }],
    ['CL', 'PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n', { framing: 'length', contentLength: 12 }],
    ['CL 0', 'PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n', { framing: 'none' }],
    ['close', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n', { keepAlive: false }],
    ['1.0 default close', 'GET / HTTP/1.0\r\n\r\n', { keepAlive: false, minor: 0 }],
    ['1.0 keep-alive', 'GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n', { keepAlive: true }],
    ['upgrade', 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n', { upgrade: true }],
    ['Upgrade without Connection token is not an upgrade', 'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n', { upgrade: false }],
    ['expect', 'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n', { expectContinue: true }],
    ['CONNECT', 'CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', { framing: 'tunnel', upgrade: true }],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n', { target: '*' }],
    ['absolute-form', 'GET http://a.b/c HTTP/1.1\r\nHost: a.b\r\n\r\n', { target: 'http://a.b/c' }],
    ['leading CRLF ignored', '\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'GET' }],
    ['obs-text value, OWS trimmed', 'GET / HTTP/1.1\r\nHost: a\r\nX:  \xe9t\xe9 \t\r\n\r\n', {}],
  ];
  for (const [name, text, want] of cases) {
    const h = req(text);
    if (isHeadError(h)) {
      t.fail(`${name}: ${h.reason}`);
      continue;
    }
    for (const [k, v] of Object.entries(want)) t.equal((h as unknown as Record<string, unknown>)[k], v, `${name}: ${k}`);
  }
  const h = req('GET / HTTP/1.1\r\nHost: a\r\nX:  \xe9t\xe9 \t\r\nCookie: a=1\r\ncookie: b=2\r\nAccept: x\r\naccept: y\r\n\r\n') as Head;
  t.equal(h.get('x'), '\xe9t\xe9');
  t.equal(h.get('cookie'), 'a=1; b=2');
  t.equal(h.get('accept'), 'x, y');
  t.equal(h.get('nope'), undefined);
  t.same(h.entries()[0], ['Host', 'a']);
});

t.test('a head split across reads, byte by byte, gives the same head and leaves the body', async (t) => {
  const text = 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello';
  const r = new HeadReader(true);
  const b = Buffer.from(text);
  let got: { head: HeadResult; used: number } | null = null;
  let i = 0;
  for (; i < b.length && !got; i++) got = r.feed(b.subarray(i, i + 1), 0);
  t.ok(got && !isHeadError(got.head));
  t.equal(i, b.length - 5, 'head ends where the body starts');
  const h = got!.head as Head;
  t.equal(h.target, '/x');
  t.equal(h.contentLength, 5);
  t.equal(h.buf.toString(), text.slice(0, -5));
  // pipelined: two heads in one read
  const two = Buffer.from('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
  const r2 = new HeadReader(true);
  const a = r2.feed(two, 0)!;
  const c = r2.feed(two, a.used)!;
  t.equal((a.head as Head).target, '/1');
  t.equal((c.head as Head).target, '/2');
  t.equal(a.used + c.used, two.length);
});

t.test('readers share no per-head state: heads read in turns on many connections keep their own fields', async (t) => {
  // Two connections whose heads arrive interleaved, a third parsed whole in between, and one past
  // the default field count: each Head keeps its own offsets after the others were parsed.
  const a = new HeadReader(true);
  const b = new HeadReader(true);
  const big = new HeadReader(true, { maxHeadBytes: 64 * 1024, maxHeaders: 300 });
  const ta = Buffer.from('GET /a HTTP/1.1\r\nHost: a.example\r\nX-One: 1\r\nX-Two: 2\r\n\r\n');
  const tb = Buffer.from('GET /b HTTP/1.1\r\nHost: b.example\r\nAccept: */*\r\n\r\n');
  const fields = Array.from({ length: 250 }, (_, i) => `X-F${i}: v${i}\r\n`).join('');
  const tc = Buffer.from(`GET /c HTTP/1.1\r\nHost: c.example\r\n${fields}\r\n`);
  t.equal(a.feed(ta.subarray(0, 30), 0), null);
  t.equal(b.feed(tb.subarray(0, 20), 0), null);
  const hc = big.feed(tc, 0)!.head as Head;
  const ha = a.feed(ta.subarray(30), 0)!.head as Head;
  const hb = b.feed(tb.subarray(20), 0)!.head as Head;
  t.ok(!isHeadError(ha) && !isHeadError(hb) && !isHeadError(hc));
  t.same(ha.entries(), [['Host', 'a.example'], ['X-One', '1'], ['X-Two', '2']]);
  t.same(hb.entries(), [['Host', 'b.example'], ['Accept', '*/*']]);
  t.equal(hc.count, 251);
  t.equal(hc.get('x-f249'), 'v249');
  t.equal(hc.get('host'), 'c.example');
  const again = new HeadReader(true).feed(Buffer.from('GET /d HTTP/1.1\r\nHost: d\r\n\r\n'), 0)!.head as Head;
  t.same(again.entries(), [['Host', 'd']]);
  t.same(ha.entries(), [['Host', 'a.example'], ['X-One', '1'], ['X-Two', '2']], 'an earlier head is untouched by later parses');
  t.equal(hc.get('x-f0'), 'v0');
});

t.test('response heads: framing by status, method and fields', async (t) => {
  const cases: Array<[string, string, string, string | null, Partial<Head>]> = [
    ['200 CL', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'GET', null, { status: 200, framing: 'length', contentLength: 3 }],
    ['200 chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET', null, { framing: 'chunked' }],
    ['200 gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n', 'GET', null, { framing: 'chunked' }],
    ['200 close-delimited', 'HTTP/1.1 200 OK\r\n\r\n', 'GET', null, { framing: 'close', keepAlive: false }],
    ['HEAD', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD', null, { framing: 'none' }],
    ['204', 'HTTP/1.1 204 No Content\r\n\r\n', 'GET', null, { framing: 'none' }],
    ['304', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n', 'GET', null, { framing: 'none' }],
    ['100', 'HTTP/1.1 100 Continue\r\n\r\n', 'POST', null, { status: 100, framing: 'none' }],
    ['101', 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n', 'GET', null, { framing: 'tunnel', upgrade: true }],
    ['no reason', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', 'GET', null, { status: 200, framing: 'none' }],
    ['CL and TE', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET', 'cl-and-te', {}],
    ['bad status', 'HTTP/1.1 2000 OK\r\n\r\n', 'GET', 'status-line', {}],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n', 'GET', 'obs-fold', {}],
  ];
  for (const [name, text, method, code, want] of cases) {
    const h = res(text, method);
    if (code) {
      t.ok(isHeadError(h) && h.code === code && h.status === 502, `${name}: ${code}`);
      continue;
    }
    if (isHeadError(h)) {
      t.fail(`${name}: ${h.reason}`);
      continue;
    }
    for (const [k, v] of Object.entries(want)) t.equal((h as unknown as Record<string, unknown>)[k], v, `${name}: ${k}`);
  }
});

function chunked(text: string, split = 0): { end: number; data: string; error: string } {
  const d = new ChunkedDecoder({ maxExtBytes: 64, maxTrailerBytes: 64, maxTrailers: 4 });
  const b = Buffer.from(text, 'latin1');
  let data = '';
  const sink = (buf: Buffer, s: number, e: number): void => {
    data += buf.toString("latin1", s, e);
  };
  if (split) {
    let off = 0;
    while (off < b.length) {
      const part = b.subarray(off, Math.min(off + split, b.length));
      const r = d.feed(part, 0, part.length, sink);
      if (r < 0) return { end: -1, data, error: d.error };
      if (d.done) return { end: off + r, data, error: '' };
      off += part.length;
    }
    return { end: b.length, data, error: 'incomplete' };
  }
  const r = d.feed(b, 0, b.length, sink);
  return { end: r, data, error: r < 0 ? d.error : d.done ? '' : 'incomplete' };
}

t.test('chunked bodies: valid framing, extensions and trailers pass; smuggling shapes do not', async (t) => {
  const ok: Array<[string, string, string]> = [
    ['two chunks', '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n', 'hello world'],
    ['hex upper and lower', 'A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n', '01234567890123456789'],
    ['leading zeros', '0005\r\nhello\r\n000\r\n\r\n', 'hello'],
    ['extension', '5;name=value\r\nhello\r\n0;last\r\n\r\n', 'hello'],
    ['quoted extension', '5;a="b; \\"c";d\r\nhello\r\n0\r\n\r\n', 'hello'],
    ['trailers', '5\r\nhello\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\n', 'hello'],
  ];
  for (const [name, text, data] of ok) {
    for (const split of [0, 1, 3]) {
      const r = chunked(text + 'NEXT', split);
      t.equal(r.error, '', `${name} (split ${split}): no error`);
      t.equal(r.end, text.length, `${name} (split ${split}): ends before the next message`);
      t.equal(r.data, data, `${name} (split ${split}): data`);
    }
  }
  const bad: Array<[string, string, RegExp]> = [
    ['negative size', '-5\r\nhello\r\n0\r\n\r\n', /negative/],
    ['overflowing size', 'fffffffffffffffff\r\n', /overflow/],
    ['14 hex digits', '10000000000000\r\n', /overflow/],
    ['space before size', ' 5\r\nhello\r\n0\r\n\r\n', /hexadecimal/],
    ['0x prefix', '0x5\r\nhello\r\n0\r\n\r\n', /hexadecimal/],
    ['bare LF after size', '5\nhello\r\n0\r\n\r\n', /hexadecimal/],
    ['CR without LF', '5\rhello\r\n0\r\n\r\n', /CRLF/],
    ['data longer than size', '3\r\nhello\r\n0\r\n\r\n', /longer/],
    ['extension without name', '5;\r\nhello\r\n0\r\n\r\n', /malformed/],
    ['extension with bad byte', '5;a=b c\r\nhello\r\n0\r\n\r\n', /malformed/],
    ['whitespace before an extension', '5 ;a=b\r\nhello\r\n0\r\n\r\n', /whitespace/],
    ['whitespace around =', '5;a = b\r\nhello\r\n0\r\n\r\n', /malformed/],
    ['extension = without value', '5;a=\r\nhello\r\n0\r\n\r\n', /malformed/],
    ['unterminated quote', '5;a="b\r\nhello\r\n0\r\n\r\n', /malformed/],
    ['extension too long', `5;a=${'b'.repeat(80)}\r\nhello\r\n0\r\n\r\n`, /too long/],
    ['trailer obs-fold', '0\r\nA: b\r\n c\r\n\r\n', /obs-fold/],
    ['trailer space before colon', '0\r\nA : b\r\n\r\n', /name/],
    ['trailer bare LF', '0\r\nA: b\n\r\n', /invalid byte/],
    ['too many trailers', '0\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne:5\r\n\r\n', /too many/],
    ['no final CRLF', '0\r\n\rX', /CRLF/],
  ];
  for (const [name, text, why] of bad) {
    for (const split of [0, 1]) {
      const r = chunked(text, split);
      t.equal(r.end, -1, `${name} (split ${split}): rejected`);
      t.match(r.error, why, `${name}: ${r.error}`);
    }
  }
});

// Path normalisation as Envoy's normalize_path / Istio's default: what a
// route matches is what the app sees, and nothing steps around a rule.
import t from 'tap';
import fc from 'fast-check';
import { normalizePath } from '../path-normalize.js';

const off = { mergeSlashes: false };
const on = { mergeSlashes: true };

const table: Array<[string, string | null, { mergeSlashes: boolean }?]> = [
  // [raw, normalised or null (→ 400), options]
  ['/', '/'],
  ['/a/b', '/a/b'],
  ['/public/../admin', '/admin'],
  ['/public/%2e%2e/admin', '/admin'],
  ['/public/%2E%2E/admin', '/admin'],
  ['/public/.%2e/admin', '/admin'],
  ['/a/./b', '/a/b'],
  ['/a/%2e/b', '/a/b'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/a/b/../../c', '/c'],
  ['/..', null],
  ['/../a', null],
  ['/a/../../b', null],
  ['/%2e%2e/x', null],
  ['/a/%2F../b', '/a/%2F../b'], // "%2F.." is one segment, not ".."
  ['/a%2F..%2Fadmin', '/a%2F..%2Fadmin'], // encoded slashes never split segments
  ['/a/%2f/b', '/a/%2F/b'], // stays encoded, hex uppercased
  ['/a%5c..%5cadmin', '/a%5C..%5Cadmin'],
  ['/a\\..\\admin', '/admin'], // a raw backslash is a slash (Istio BASE)
  ['/%7euser/%41%42c', '/~user/ABc'], // unreserved decoded
  ['/caf%c3%a9', '/caf%C3%A9'], // mixed-case hex of reserved/non-ASCII: uppercased, kept encoded
  ['/a%3Fb', '/a%3Fb'],
  ['/a%20b', '/a%20b'],
  ['/a//b', '/a//b'],
  ['/a//b', '/a/b', on],
  ['//a///b/', '/a/b/', on],
  ['/a/..//b', '//b'],
  ['/a/..//b', '/b', on],
  ['/a%00b', null],
  ['/a\u0000b', null],
  ['/a\u0001', null],
  ['/a%zzb', null],
  ['/a%4', null],
  ['/a%', null],
  ['a/b', null],
  ['', null],
  ['*', '*'],
  ['/a/../b?x=/../y&%2e', '/b?x=/../y&%2e'], // the query is untouched
  ['/.well-known/x', '/.well-known/x'],
  ['/a/...', '/a/...'],
];

t.test('table: normalised paths, and what is refused with 400', async (t) => {
  for (const [raw, want, opts] of table) {
    const r = normalizePath(raw, opts ?? off);
    if (want === null) {
      t.equal(r.ok, false, `${JSON.stringify(raw)} is refused`);
      if (!r.ok) t.ok(r.reason.length > 0, `${JSON.stringify(raw)}: ${r.reason}`);
    } else {
      t.same(r, { ok: true, path: want }, `${JSON.stringify(raw)} → ${want}${opts?.mergeSlashes ? ' (mergeSlashes)' : ''}`);
    }
  }
});

t.test('reasons say what is wrong', async (t) => {
  t.match(normalizePath('/..', off), { ok: false, reason: /above the root/ });
  t.match(normalizePath('/a%00', off), { ok: false, reason: /NUL \(%00\)/ });
  t.match(normalizePath('/a\u0000', off), { ok: false, reason: /NUL/ });
  t.match(normalizePath('/a%g0', off), { ok: false, reason: /invalid percent-encoding at offset 2/ });
});

// Paths an attacker would try: segments of dots, encoded dots and slashes, backslashes, hex of any case.
const piece = fc.oneof(
  fc.constantFrom('/', '//', '.', '..', '%2e', '%2E', '%2e%2e', '.%2E', '%2f', '%2F', '%5c', '%5C', '\\', 'a', 'b', '~', '%7e', '%41', '%c3%a9', '%20', '%3f', '-', '_'),
  fc.stringMatching(/^[a-zA-Z0-9._~-]{1,4}$/),
);
const rawPath = fc.array(piece, { maxLength: 12 }).map((xs) => `/${xs.join('')}`);
const runs = Number(process.env.WEFT_FUZZ_RUNS ?? 200);

t.test('property: idempotent, no dot segments, uppercase hex, never a NUL', async (t) => {
  for (const opts of [off, on]) {
    fc.assert(
      fc.property(rawPath, (raw) => {
        const r = normalizePath(raw, opts);
        if (!r.ok) return true;
        const again = normalizePath(r.path, opts);
        if (!again.ok || again.path !== r.path) return false;
        const segs = r.path.split('/');
        if (segs.some((s) => s === '.' || s === '..')) return false;
        if (/%(?![0-9A-F]{2})/.test(r.path) || /%2E|%00/i.test(r.path)) return false;
        if (opts.mergeSlashes && r.path.includes('//')) return false;
        return r.path.startsWith('/') && !r.path.includes('\\');
      }),
      { seed: 16, numRuns: runs },
    );
  }
  t.pass(`${runs} random paths per option hold the properties`);
});

t.test('property: only a climb above the root, NUL or a broken escape is refused', async (t) => {
  fc.assert(
    fc.property(rawPath, (raw) => {
      const r = normalizePath(raw, off);
      if (r.ok) return true;
      return /above the root|NUL|percent-encoding|control/.test(r.reason);
    }),
    { seed: 1731, numRuns: runs },
  );
  t.pass();
});

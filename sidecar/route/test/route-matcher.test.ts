// The route index answers exactly what "first entry of the precedence-sorted
// list that matches" would, without scanning every entry.
import t from 'tap';
import type { MatchEntry, ValueMatch } from '../../../api/index.js';
import { buildRouteMatcher, parseQuery, type MatchRequest } from '../route-matcher.js';
import { headerView } from '../request.js';

const e = (rule: number, type: MatchEntry['path']['type'], value: string, more: Partial<MatchEntry> = {}): MatchEntry => ({
  rule,
  path: { type, value },
  headers: [],
  queryParams: [],
  ...more,
});
const req = (path: string, more: Partial<Omit<MatchRequest, 'headers'>> & { headers?: Record<string, string> } = {}): MatchRequest => {
  const q = path.indexOf('?');
  return { method: 'GET', path: q < 0 ? path : path.slice(0, q), query: q < 0 ? '' : path.slice(q + 1), ...more, headers: headerView(more.headers ?? {}) };
};
const hx = (name: string, value: string, type: ValueMatch['type'] = 'Exact'): ValueMatch => ({ type, name, value });

t.test('path prefix matches element by element, trailing slash ignored', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['/foo', '/foo', true],
    ['/foo', '/foo/', true],
    ['/foo', '/foo/bar', true],
    ['/foo', '/foobar', false],
    ['/foo/', '/foo', true],
    ['/foo/', '/foo/bar', true],
    ['/foo/', '/foobar', false],
    ['/', '/anything', true],
    ['/', '/', true],
    ['/foo/bar', '/foo', false],
    ['/foo/bar', '/foo/bar/baz', true],
    ['/foo/bar', '/foo/barbaz', false],
    ['/Foo', '/foo', false],
  ];
  for (const [prefix, path, want] of cases) {
    const m = buildRouteMatcher([e(0, 'PathPrefix', prefix)]);
    t.equal(!!m.match(req(path)), want, `prefix ${prefix} vs ${path}`);
  }
});

t.test('exact path is exact and case-sensitive', async (t) => {
  const m = buildRouteMatcher([e(0, 'Exact', '/abc')]);
  t.ok(m.match(req('/abc')));
  t.ok(m.match(req('/abc?x=1')), 'the query is not part of the path');
  for (const p of ['/abc/', '/Abc', '/abcd', '/ab']) t.notOk(m.match(req(p)), p);
});

t.test('precedence order of the compiled list is kept across the index', async (t) => {
  // Sorted as control sorts: exact, longest prefix, method, most headers, most query params, then regex.
  const entries = [
    e(0, 'Exact', '/a/b'),
    e(1, 'PathPrefix', '/a/b'),
    e(2, 'PathPrefix', '/a', { method: 'POST' }),
    e(3, 'PathPrefix', '/a', { headers: [hx('x-a', '1'), hx('x-b', '2')] }),
    e(4, 'PathPrefix', '/a', { headers: [hx('x-a', '1')] }),
    e(5, 'PathPrefix', '/a', { queryParams: [hx('q', '1')] }),
    e(6, 'PathPrefix', '/a'),
    e(7, 'RegularExpression', '/a/[0-9]+'),
    e(8, 'PathPrefix', '/'),
  ];
  const m = buildRouteMatcher(entries);
  const cases: Array<[MatchRequest, number]> = [
    [req('/a/b'), 0],
    [req('/a/b/c'), 1],
    [req('/a/x', { method: 'POST' }), 2],
    [req('/a/x', { headers: { 'x-a': '1', 'x-b': '2' } }), 3],
    [req('/a/x', { headers: { 'x-a': '1', 'x-b': '3' } }), 4],
    [req('/a/x?q=1'), 5],
    [req('/a/x?q=2'), 6],
    [req('/a/123'), 6], // the prefix rule precedes the regex in the list
    [req('/zzz'), 8],
  ];
  for (const [r, want] of cases) t.equal(m.match(r)?.rule, want, `${r.method} ${r.path}?${r.query} ${JSON.stringify(r.headers)}`);
});

t.test('a regex entry placed earlier wins over a later prefix', async (t) => {
  const m = buildRouteMatcher([e(0, 'RegularExpression', '/v[0-9]+/.*'), e(1, 'PathPrefix', '/v1')]);
  t.equal(m.match(req('/v1/x'))?.rule, 0);
  t.equal(m.match(req('/v1'))?.rule, 1, 'regex must match the whole path');
});

t.test('header names are case-insensitive; values exact or RE2', async (t) => {
  const m = buildRouteMatcher([
    e(0, 'PathPrefix', '/', { headers: [hx('X-Version', 'v2')] }),
    e(1, 'PathPrefix', '/', { headers: [hx('x-user', 'adm.n-[0-9]+', 'RegularExpression')] }),
    e(2, 'PathPrefix', '/'),
  ]);
  t.equal(m.match(req('/', { headers: { 'x-version': 'v2' } }))?.rule, 0);
  t.equal(m.match(req('/', { headers: { 'x-version': 'V2' } }))?.rule, 2, 'values are case-sensitive');
  t.equal(m.match(req('/', { headers: { 'x-user': 'admin-42' } }))?.rule, 1);
  t.equal(m.match(req('/', { headers: { 'x-user': 'admin-42x' } }))?.rule, 2, 'regex matches the whole value');
});

t.test('only the first of equivalent header names counts', async (t) => {
  const m = buildRouteMatcher([e(0, 'PathPrefix', '/', { headers: [hx('x-a', '1'), hx('X-A', '2')] })]);
  t.ok(m.match(req('/', { headers: { 'x-a': '1' } })));
});

t.test('query params: exact name, first value of a repeated key, regex', async (t) => {
  const m = buildRouteMatcher([
    e(0, 'PathPrefix', '/', { queryParams: [hx('animal', 'whale')] }),
    e(1, 'PathPrefix', '/', { queryParams: [hx('n', '[0-9]{2}', 'RegularExpression')] }),
    e(2, 'PathPrefix', '/'),
  ]);
  t.equal(m.match(req('/?animal=whale'))?.rule, 0);
  t.equal(m.match(req('/?animal=whale&animal=dolphin'))?.rule, 0);
  t.equal(m.match(req('/?animal=dolphin&animal=whale'))?.rule, 2, 'the first value of a repeated key is the one matched');
  t.equal(m.match(req('/?Animal=whale'))?.rule, 2, 'names are case-sensitive');
  t.equal(m.match(req('/?n=42'))?.rule, 1);
  t.equal(m.match(req('/?n=423'))?.rule, 2);
  t.same([...parseQuery('a=1&b=x%20y&a=2&c&d=a+b')], [['a', '1'], ['b', 'x y'], ['c', ''], ['d', 'a b']]);
});

t.test('method match', async (t) => {
  const m = buildRouteMatcher([e(0, 'PathPrefix', '/', { method: 'DELETE' }), e(1, 'PathPrefix', '/')]);
  t.equal(m.match(req('/', { method: 'DELETE' }))?.rule, 0);
  t.equal(m.match(req('/', { method: 'GET' }))?.rule, 1);
});

t.test('no entry matches: undefined (the listener answers 404)', async (t) => {
  const m = buildRouteMatcher([e(0, 'Exact', '/only')]);
  t.equal(m.match(req('/other')), undefined);
});

t.test('a pathological regex runs in linear time', async (t) => {
  const m = buildRouteMatcher([e(0, 'RegularExpression', '(a+)+$')]);
  const start = performance.now();
  t.notOk(m.match(req('/' + 'a'.repeat(5000) + '!')));
  t.ok(performance.now() - start < 500, 'no catastrophic backtracking');
});

t.test('an invalid regex is a build error naming the field', async (t) => {
  t.throws(() => buildRouteMatcher([e(0, 'RegularExpression', '(unclosed')]), /matches\[0\]\.path: invalid regular expression/);
  t.throws(() => buildRouteMatcher([e(0, 'PathPrefix', '/', { headers: [hx('x', '[', 'RegularExpression')] })]), /matches\[0\]\.headers x/);
});

t.test('the index agrees with a linear scan on random tables', async (t) => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const segs = ['a', 'b', 'c', 'ab'];
  const randPath = () => '/' + Array.from({ length: rnd(4) }, () => segs[rnd(segs.length)]).join('/') + (rnd(4) === 0 ? '/' : '');
  let mismatches = 0;
  for (let round = 0; round < 50; round++) {
    const entries: MatchEntry[] = Array.from({ length: 1 + rnd(30) }, (_, i) => {
      const kind = rnd(3);
      const more: Partial<MatchEntry> = rnd(3) === 0 ? { headers: [hx('x-h', String(rnd(2)))] } : rnd(4) === 0 ? { method: 'POST' } : {};
      if (kind === 0) return e(i, 'Exact', randPath(), more);
      if (kind === 1) return e(i, 'PathPrefix', randPath(), more);
      return e(i, 'RegularExpression', `/${segs[rnd(segs.length)]}.*`, more);
    });
    const m = buildRouteMatcher(entries);
    const linear = (r: MatchRequest) =>
      entries.findIndex((en) => {
        const p = en.path;
        let ok: boolean;
        if (p.type === 'Exact') ok = r.path === p.value;
        else if (p.type === 'PathPrefix') {
          const pre = p.value.replace(/\/+$/, '');
          ok = pre === '' || r.path === pre || r.path.startsWith(pre + '/');
        } else ok = new RegExp(`^(?:${p.value})$`).test(r.path);
        if (en.method && en.method !== r.method) ok = false;
        for (const h of en.headers) if (r.headers.get(h.name) !== h.value) ok = false;
        return ok;
      });
    for (let k = 0; k < 40; k++) {
      const r = req(randPath(), { method: rnd(2) ? 'GET' : 'POST', headers: rnd(2) ? { 'x-h': String(rnd(2)) } : {} });
      const want = linear(r);
      const got = m.match(r);
      if ((got ? got.order : -1) !== want) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

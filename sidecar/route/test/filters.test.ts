import t from 'tap';
import { compileFilters, editRequestHeaders, editResponseHeaders, redirectLocation, rewritePath, type CompiledRedirect } from '../filters.js';

t.test('ReplacePrefixMatch replaces whole path elements (Gateway API table)', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    // path, matched prefix, replacement, result
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    // the root prefix
    ['/bar', '/', '/xyz', '/xyz/bar'],
    ['/', '/', '/xyz', '/xyz'],
    ['/bar/baz', '/', '/', '/bar/baz'],
    ['/', '/', '/', '/'],
  ];
  for (const [path, prefix, value, want] of cases) {
    t.equal(rewritePath({ type: 'ReplacePrefixMatch', value }, path, prefix.replace(/\/+$/, '')), want, `${path} prefix ${prefix} → ${JSON.stringify(value)}`);
  }
  t.equal(rewritePath({ type: 'ReplaceFullPath', value: '/full' }, '/a/b', '/a'), '/full');
});

t.test('redirect port defaults per scheme, omitted for well-known ports', async (t) => {
  const base = { scheme: 'http' as const, host: 'echo.demo:8080', port: 8080, path: '/p', query: 'x=1' };
  const r = (o: Partial<CompiledRedirect>): CompiledRedirect => ({ scheme: undefined, hostname: undefined, port: undefined, path: undefined, statusCode: 302, ...o });
  const cases: Array<[Partial<CompiledRedirect>, Partial<typeof base>, string]> = [
    [{ scheme: 'https' }, {}, 'https://echo.demo/p?x=1'],
    [{ scheme: 'http' }, {}, 'http://echo.demo/p?x=1'],
    [{ scheme: 'https', port: 8443 }, {}, 'https://echo.demo:8443/p?x=1'],
    [{ scheme: 'https', port: 443 }, {}, 'https://echo.demo/p?x=1'],
    [{ scheme: 'http', port: 443 }, {}, 'http://echo.demo:443/p?x=1'],
    [{ hostname: 'other' }, {}, 'http://other:8080/p?x=1'],
    [{ hostname: 'other' }, { port: 80, host: 'echo' }, 'http://other/p?x=1'],
    [{ port: 9000 }, {}, 'http://echo.demo:9000/p?x=1'],
    [{ path: { type: 'ReplaceFullPath', value: '/new' } }, { query: '' }, 'http://echo.demo:8080/new'],
    [{ hostname: 'h' }, { host: '[::1]:8080' }, 'http://h:8080/p?x=1'],
  ];
  for (const [red, req, want] of cases) t.equal(redirectLocation(r(red), { ...base, ...req }, ''), want, JSON.stringify(red));
  t.equal(redirectLocation(r({ path: { type: 'ReplacePrefixMatch', value: '/v2' } }), { ...base, path: '/v1/x' }, '/v1'), 'http://echo.demo:8080/v2/x?x=1');
});

t.test('request header edits: set, add appends, remove; names case-insensitive', async (t) => {
  const f = compileFilters([{ type: 'RequestHeaderModifier', set: [['X-Set', 'new'], ['x-set', 'ignored']], add: [['X-Add', 'b']], remove: ['X-Gone'] }]);
  const h: Record<string, string | string[] | undefined> = { 'x-set': 'old', 'x-add': 'a', 'x-gone': 'bye', keep: '1' };
  editRequestHeaders(h, f.request[0] as never);
  t.same(h, { 'x-set': 'new', 'x-add': 'a,b', keep: '1' });
  const h2: Record<string, string | string[] | undefined> = {};
  editRequestHeaders(h2, f.request[0] as never);
  t.same(h2, { 'x-set': 'new', 'x-add': 'b' });
});

t.test('response header edits on the upstream list', async (t) => {
  const f = compileFilters([{ type: 'ResponseHeaderModifier', set: [['X-Header-Set', 'v1']], add: [['Vary', 'x-b']], remove: ['server'] }]);
  const out = editResponseHeaders(['Server', 'app', 'X-Header-Set', 'old', 'vary', 'x-a', 'Content-Length', '2'], f.response[0]!);
  t.same(out, ['vary', 'x-a,x-b', 'Content-Length', '2', 'x-header-set', 'v1']);
});

t.test('filter lists keep spec order and collect mirrors and redirects', async (t) => {
  const f = compileFilters([
    { type: 'RequestHeaderModifier', set: [['a', '1']], add: [], remove: [] },
    { type: 'URLRewrite', hostname: 'h', path: { type: 'ReplaceFullPath', value: '/x' } },
    { type: 'RequestMirror', backend: 'ns/m:80' },
    { type: 'RequestMirror', backend: 'ns/n:80' },
  ]);
  t.equal(f.request.length, 2);
  t.same(f.mirrors, ['ns/m:80', 'ns/n:80']);
  t.notOk(f.empty);
  t.ok(compileFilters([]).empty);
  const red = compileFilters([{ type: 'RequestRedirect', statusCode: 0 as unknown as number }]);
  t.equal(red.redirect?.statusCode, 302, 'status code defaults to 302');
});

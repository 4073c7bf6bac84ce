import t from 'tap';
import { HeadReader, isHeadError, type Head } from '../parser.js';
import { requestOfHead } from '../carrier-parts.js';

function head(s: string): Head {
  const got = new HeadReader(true).feed(Buffer.from(s), 0);
  if (!got || isHeadError(got.head)) throw new Error('bad head in test');
  return got.head;
}

t.test('the request value of a head: authority, path and query as the decision reads them', async (t) => {
  const cases: Array<[string, string, { method: string; authority: string; path: string; query: string; protocol: string }]> = [
    ['origin-form', 'GET /a/b?x=1&y HTTP/1.1\r\nHost: svc.ns:8080\r\n\r\n', { method: 'GET', authority: 'svc.ns:8080', path: '/a/b', query: 'x=1&y', protocol: 'http1' }],
    ['absolute-form (explicit proxy)', 'GET http://echo.ns/p?q HTTP/1.1\r\nHost: other\r\n\r\n', { method: 'GET', authority: 'echo.ns', path: '/p', query: 'q', protocol: 'http1' }],
    ['absolute-form without path', 'GET http://echo.ns:81 HTTP/1.1\r\nHost: x\r\n\r\n', { method: 'GET', authority: 'echo.ns:81', path: '/', query: '', protocol: 'http1' }],
    ['absolute-form, query and no path', 'GET http://echo.ns?z=1 HTTP/1.1\r\nHost: x\r\n\r\n', { method: 'GET', authority: 'echo.ns', path: '/', query: 'z=1', protocol: 'http1' }],
    ['upgrade', 'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n', { method: 'GET', authority: 'a', path: '/ws', query: '', protocol: 'upgrade' }],
    ['CONNECT', 'CONNECT db.ns:5432 HTTP/1.1\r\nHost: db.ns:5432\r\n\r\n', { method: 'CONNECT', authority: 'db.ns:5432', path: '/', query: '', protocol: 'upgrade' }],
  ];
  for (const [name, text, want] of cases) {
    const r = requestOfHead(head(text));
    t.same({ method: r.method, authority: r.authority, path: r.path, query: r.query, protocol: r.protocol }, want, name);
  }
  const r = requestOfHead(head('GET / HTTP/1.1\r\nHost: a\r\nX-User: u1\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n'));
  t.equal(r.headers.get('x-user'), 'u1', 'the head is the header view');
  t.equal(r.headers.get('cookie'), 'a=1; b=2');
});

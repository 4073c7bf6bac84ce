// The inbound checker (authorize.ts): GEP-3779 decisions for every default
// inbound policy, probe paths, and the per-config cache.
import t from 'tap';
import type { InboundAuthzConfig } from '../../../api/index.js';
import { buildAuthorizer, validateInboundAuthz } from '../authorize.js';

const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const OTHER = 'spiffe://cluster.local/ns/shop/sa/other';
const EVIL = 'spiffe://cluster.local/ns/evil/sa/web';
const PROBE = 'spiffe://cluster.local/ns/ops/sa/probe';
const base = (o: Partial<InboundAuthzConfig>): InboundAuthzConfig => ({ pod: 'shop/cart-0', defaultPolicy: 'all-unauthenticated', defaultFrom: 'mesh', probes: [], policies: [], ...o });

t.test('decisions', async (t) => {
  const allowWeb = { name: 'shop/allow-web', rules: [{ sources: { identities: [WEB], prefixes: [] } }] };
  const cases: Array<[string, InboundAuthzConfig, number, string, string | undefined, 'allow' | 'deny' | 'audit', string]> = [
    ['no policy, all-unauthenticated, plaintext', base({}), 8080, '', '/', 'allow', 'default:all-unauthenticated'],
    ['no policy, all-authenticated, meshed', base({ defaultPolicy: 'all-authenticated' }), 8080, WEB, '/', 'allow', 'default:all-authenticated'],
    ['no policy, all-authenticated, plaintext', base({ defaultPolicy: 'all-authenticated' }), 8080, '', '/', 'deny', 'default:all-authenticated'],
    ['no policy, deny', base({ defaultPolicy: 'deny' }), 8080, WEB, '/', 'deny', 'default:deny'],
    ['no policy, audit', base({ defaultPolicy: 'audit' }), 8080, WEB, '/', 'audit', 'default:audit'],
    ['policy allows web', base({ policies: [allowWeb] }), 8080, WEB, '/', 'allow', 'shop/allow-web'],
    ['policy refuses other', base({ policies: [allowWeb] }), 8080, OTHER, '/', 'deny', 'shop/allow-web'],
    ['policy refuses same SA name elsewhere', base({ policies: [allowWeb] }), 8080, EVIL, '/', 'deny', 'shop/allow-web'],
    ['policy refuses plaintext', base({ policies: [allowWeb] }), 8080, '', '/', 'deny', 'shop/allow-web'],
    ['a policy overrides deny default', base({ defaultPolicy: 'deny', policies: [allowWeb] }), 8080, WEB, '/', 'allow', 'shop/allow-web'],
    ['audit + policy: would-deny is let through', base({ defaultPolicy: 'audit', policies: [allowWeb] }), 8080, OTHER, '/', 'audit', 'shop/allow-web'],
    ['"*" prefix admits the namespace', base({ policies: [{ name: 'n/p', rules: [{ sources: { identities: [], prefixes: ['spiffe://cluster.local/ns/shop/sa/'] } }] }] }), 1, OTHER, undefined, 'allow', 'n/p'],
    ['"*" prefix does not admit another namespace', base({ policies: [{ name: 'n/p', rules: [{ sources: { identities: [], prefixes: ['spiffe://cluster.local/ns/shop/sa/'] } }] }] }), 1, EVIL, undefined, 'deny', 'n/p'],
    ['"*" prefix needs a whole service account', base({ policies: [{ name: 'n/p', rules: [{ sources: { identities: [], prefixes: ['spiffe://cluster.local/ns/shop/sa/'] } }] }] }), 1, 'spiffe://cluster.local/ns/shop/sa/a/b', undefined, 'deny', 'n/p'],
    ['sources omitted = any, plaintext too', base({ policies: [{ name: 'n/p', rules: [{}] }] }), 1, '', undefined, 'allow', 'n/p'],
    ['sources [] = none', base({ policies: [{ name: 'n/p', rules: [{ sources: { identities: [], prefixes: [] } }] }] }), 1, WEB, undefined, 'deny', 'n/p'],
    ['no rules allows nothing', base({ policies: [{ name: 'n/p', rules: [] }] }), 1, WEB, undefined, 'deny', 'n/p'],
    ['ports narrow: other port', base({ policies: [{ name: 'n/p', rules: [{ ports: [8081] }] }] }), 8080, WEB, '/', 'deny', 'n/p'],
    ['ports narrow: that port', base({ policies: [{ name: 'n/p', rules: [{ ports: [8081] }] }] }), 8081, WEB, '/', 'allow', 'n/p'],
    ['second policy allows', base({ policies: [allowWeb, { name: 'shop/probe', rules: [{ sources: { identities: [PROBE], prefixes: [] } }] }] }), 8080, PROBE, '/', 'allow', 'shop/probe'],
    ['neither of two', base({ policies: [allowWeb, { name: 'shop/probe', rules: [{ sources: { identities: [PROBE], prefixes: [] } }] }] }), 8080, OTHER, '/', 'deny', 'shop/allow-web,shop/probe'],
    ['probe path under deny', base({ defaultPolicy: 'deny', probes: [{ port: 0, path: '/healthz' }] }), 8080, '', '/healthz', 'allow', 'probe'],
    ['probe path under a policy', base({ policies: [allowWeb], probes: [{ port: 8080, path: '/ready' }] }), 8080, OTHER, '/ready', 'allow', 'probe'],
    ['probe path on its port only', base({ defaultPolicy: 'deny', probes: [{ port: 8080, path: '/ready' }] }), 9090, '', '/ready', 'deny', 'default:deny'],
    ['probe path exact', base({ defaultPolicy: 'deny', probes: [{ port: 0, path: '/healthz' }] }), 8080, '', '/healthz/x', 'deny', 'default:deny'],
    ['opaque (no path) never a probe', base({ defaultPolicy: 'deny', probes: [{ port: 0, path: '/healthz' }] }), 8080, '', undefined, 'deny', 'default:deny'],
  ];
  for (const [name, cfg, port, peer, path, decision, policy] of cases) {
    const d = buildAuthorizer(cfg).check(port, peer, path);
    t.equal(d.decision, decision, `${name}: ${decision}`);
    t.equal(d.allowed, decision !== 'deny', `${name}: allowed`);
    t.equal(d.policy, policy, `${name}: policy label`);
  }
});

t.test('reasons say who, where and which policy', async (t) => {
  const a = buildAuthorizer(base({ policies: [{ name: 'shop/allow-web', rules: [] }] }));
  t.equal(a.check(8080, OTHER).reason, `forbidden: AuthorizationPolicy shop/allow-web does not allow ${OTHER} on port 8080`);
  t.equal(buildAuthorizer(base({ defaultPolicy: 'all-authenticated' })).check(80, '').reason, 'forbidden: the default inbound policy all-authenticated refuses an unauthenticated (plaintext) caller on port 80');
  t.match(buildAuthorizer(base({ defaultPolicy: 'audit' })).check(80, WEB).reason, /^audit: would deny/);
});

t.test('the answer per (port, caller) is computed once per config', async (t) => {
  const a = buildAuthorizer(base({ policies: [{ name: 'n/p', rules: [{ sources: { identities: [WEB], prefixes: [] } }] }] }));
  t.equal(a.check(8080, WEB, '/a'), a.check(8080, WEB, '/b'), 'same object: a lookup, no allocation');
  t.not(a.check(8080, WEB), a.check(8081, WEB));
  for (let i = 0; i < 10_000; i++) a.check(1 + (i % 60000), `spiffe://x/${i}`);
  t.equal(a.check(8080, OTHER).decision, 'deny', 'still right after the cache started over (bounded memory)');
});

t.test('received configs are validated, naming the field', async (t) => {
  t.ok(validateInboundAuthz(base({})).ok);
  const bad: Array<[unknown, string]> = [
    [null, ''],
    [{ ...base({}), defaultPolicy: 'open' }, 'defaultPolicy'],
    [{ ...base({}), probes: [{ port: 'x', path: '/' }] }, 'probes[0]'],
    [{ ...base({}), policies: [{ name: 'a', rules: [{ sources: { identities: [1], prefixes: [] } }] }] }, 'policies[0].rules[0].sources'],
    [{ ...base({}), policies: [{ name: 'a', rules: [{ ports: 'x' }] }] }, 'policies[0].rules[0].ports'],
    [{ ...base({}), defaultFrom: 'moon' }, 'defaultFrom'],
  ];
  for (const [raw, field] of bad) {
    const v = validateInboundAuthz(raw);
    t.equal(v.ok, false, field);
    if (!v.ok) t.equal(v.field, field);
  }
});

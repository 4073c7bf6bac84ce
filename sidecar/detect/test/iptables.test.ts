import t from 'tap';
import { buildRules, defaultInitOptions, dryRun, InitError, splitRuleLine, validateInitOptions, type Step } from '../iptables.js';

const lines = (steps: Step[]) => steps.map((s) => `${s.kind}: ${s.args.join(' ')}`);

t.test('default rule set: Linkerd-style chains, uid and loopback exempt, sidecar ports exempt inbound', async (t) => {
  t.same(lines(buildRules(defaultInitOptions())), [
    'new-chain: -t nat -N WEFT_REDIRECT_OUT',
    'new-chain: -t nat -N WEFT_OUTPUT',
    'new-chain: -t nat -N WEFT_REDIRECT_IN',
    'new-chain: -t nat -N WEFT_PREROUTING',
    'flush: -t nat -F WEFT_REDIRECT_OUT',
    'flush: -t nat -F WEFT_OUTPUT',
    'flush: -t nat -F WEFT_REDIRECT_IN',
    'flush: -t nat -F WEFT_PREROUTING',
    'rule: -t nat -A WEFT_REDIRECT_OUT -p tcp -m comment --comment weft/redirect-outbound -j REDIRECT --to-ports 7001',
    'rule: -t nat -A WEFT_OUTPUT -m owner --uid-owner 2102 -m comment --comment weft/ignore-proxy-uid -j RETURN',
    'rule: -t nat -A WEFT_OUTPUT -o lo -m comment --comment weft/ignore-loopback -j RETURN',
    'rule: -t nat -A WEFT_OUTPUT -d 127.0.0.0/8 -m comment --comment weft/ignore-loopback-destination -j RETURN',
    'rule: -t nat -A WEFT_OUTPUT -p tcp -m comment --comment weft/outbound -j WEFT_REDIRECT_OUT',
    'rule: -t nat -A WEFT_REDIRECT_IN -p tcp -m comment --comment weft/redirect-inbound -j REDIRECT --to-ports 7002',
    'rule: -t nat -A WEFT_PREROUTING -p tcp -m multiport --dports 7001,7002,7090 -m comment --comment weft/skip-inbound-ports -j RETURN',
    'rule: -t nat -A WEFT_PREROUTING -p tcp -m comment --comment weft/inbound -j WEFT_REDIRECT_IN',
    'jump: -t nat -A OUTPUT -p tcp -m comment --comment weft/install-output -j WEFT_OUTPUT',
    'jump: -t nat -A PREROUTING -p tcp -m comment --comment weft/install-prerouting -j WEFT_PREROUTING',
  ]);
});

t.test('options change exactly the rules they name', async (t) => {
  const cases: Array<{ name: string; over: Parameters<typeof defaultInitOptions>[0]; has: string[]; hasNot?: string[] }> = [
    {
      name: 'other ports and uid',
      over: { outboundPort: 15001, inboundPort: 15006, adminPort: 15090, proxyUid: 1337 },
      has: ['--to-ports 15001', '--to-ports 15006', '--uid-owner 1337', '--dports 15001,15006,15090'],
      hasNot: ['--to-ports 7001', '--uid-owner 2102'],
    },
    { name: 'proxy gid', over: { proxyGid: 2102 }, has: ['-m owner --gid-owner 2102 -m comment --comment weft/ignore-proxy-gid -j RETURN'] },
    {
      name: 'skip outbound ports, ranges included',
      over: { skipOutboundPorts: ['3306', '8000:8100'] },
      has: ['-A WEFT_OUTPUT -p tcp -m multiport --dports 3306,8000:8100 -m comment --comment weft/skip-outbound-ports -j RETURN'],
    },
    {
      name: 'skip inbound ports join the sidecar ports, no duplicates',
      over: { skipInboundPorts: ['7090', '9000'] },
      has: ['--dports 7001,7002,7090,9000 '],
    },
    {
      name: 'skip CIDRs',
      over: { skipOutboundCidrs: ['10.0.0.0/8'], skipInboundCidrs: ['192.168.1.0/24'] },
      has: ['-A WEFT_OUTPUT -d 10.0.0.0/8 -m comment --comment weft/skip-outbound-cidrs -j RETURN', '-A WEFT_PREROUTING -s 192.168.1.0/24'],
    },
    {
      name: 'outbound only: no inbound chain, no PREROUTING jump',
      over: { inbound: false },
      has: ['-A OUTPUT'],
      hasNot: ['WEFT_PREROUTING', 'WEFT_REDIRECT_IN', 'PREROUTING'],
    },
    { name: 'IPv6 loopback', over: { family: 6 }, has: ['-d ::1/128'], hasNot: ['127.0.0.0/8'] },
  ];
  for (const c of cases) {
    const text = lines(buildRules(defaultInitOptions(c.over))).join('\n');
    for (const h of c.has) t.ok(text.includes(h), `${c.name}: has ${h}`);
    for (const h of c.hasNot ?? []) t.notOk(text.includes(h), `${c.name}: has not ${h}`);
  }
});

t.test('the skip-port list is split at 15 ports per multiport rule (a range counts 2)', async (t) => {
  const ports = Array.from({ length: 20 }, (_, i) => String(10000 + i));
  const rules = lines(buildRules(defaultInitOptions({ skipOutboundPorts: ports }))).filter((l) => l.includes('skip-outbound-ports'));
  t.equal(rules.length, 2);
  const counts = rules.map((r) => /--dports (\S+)/.exec(r)![1]!.split(',').length);
  t.same(counts, [15, 5]);
  const ranged = lines(buildRules(defaultInitOptions({ skipOutboundPorts: Array.from({ length: 8 }, (_, i) => `${1000 * (i + 1)}:${1000 * (i + 1) + 5}`) })));
  t.same(
    ranged.filter((l) => l.includes('skip-outbound-ports')).map((r) => /--dports (\S+)/.exec(r)![1]!.split(',').length),
    [7, 1],
  );
});

t.test('bad options are refused with the flag named', async (t) => {
  const cases: Array<[Parameters<typeof defaultInitOptions>[0], RegExp]> = [
    [{ outboundPort: 0 }, /^outbound-port: 0/],
    [{ inboundPort: 70000 }, /^inbound-port: 70000/],
    [{ proxyUid: -1 }, /^proxy-uid/],
    [{ skipOutboundPorts: ['http'] }, /^skip-outbound-ports: "http"/],
    [{ skipInboundPorts: ['9000:8000'] }, /^skip-inbound-ports: "9000:8000"/],
    [{ skipOutboundCidrs: ['10.0.0.300/8'] }, /^skip-outbound-cidrs/],
    [{ skipInboundCidrs: ['10.0.0.0/33'] }, /^skip-inbound-cidrs/],
    [{ skipInboundCidrs: ['10.0.0.0/8'], family: 6 }, /not an IPv6/],
  ];
  for (const [over, re] of cases) {
    t.match(validateInitOptions(defaultInitOptions(over)), re, JSON.stringify(over));
    t.throws(() => buildRules(defaultInitOptions(over)), InitError);
  }
  t.equal(validateInitOptions(defaultInitOptions({ skipOutboundPorts: ['1', '65535', '1:2'], skipOutboundCidrs: ['1.2.3.4', '10.0.0.0/8'] })), undefined);
});

t.test('dry run prints runnable shell: new-chain tolerant, jumps checked before added', async (t) => {
  const out = dryRun(defaultInitOptions());
  t.equal(out[0], 'iptables -w -t nat -N WEFT_REDIRECT_OUT 2>/dev/null || true');
  t.ok(out.includes('iptables -w -t nat -C OUTPUT -p tcp -m comment --comment weft/install-output -j WEFT_OUTPUT 2>/dev/null || iptables -w -t nat -A OUTPUT -p tcp -m comment --comment weft/install-output -j WEFT_OUTPUT'));
  t.equal(dryRun(defaultInitOptions({ family: 6 }))[0]!.split(' ')[0], 'ip6tables');
});

t.test('iptables -S lines split back into argv', async (t) => {
  t.same(splitRuleLine('-A OUTPUT -p tcp -m comment --comment "weft/install-output" -j WEFT_OUTPUT'), [
    '-A', 'OUTPUT', '-p', 'tcp', '-m', 'comment', '--comment', 'weft/install-output', '-j', 'WEFT_OUTPUT',
  ]);
  t.same(splitRuleLine('-A X --comment "a \\"b\\" c"'), ['-A', 'X', '--comment', 'a "b" c']);
});

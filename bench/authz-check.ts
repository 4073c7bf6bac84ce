// The cost of inbound authorization per request (issue 15): a pod selected by
// ten AuthorizationPolicies with fifty rules, against a pod with none. The
// checker is built once per config (sidecar/inbound/authorize.ts); per request it is
// two Map lookups and a counter increment, whatever the number of rules.
//   npm run build && node dist/bench/authz-check.js
// Not part of `npm run bench` (the lead wires it in); figures need a quiet machine.
import type { InboundAuthzConfig } from '../api/index.js';
import { buildAuthorizer } from '../sidecar/inbound/authorize.js';
import { InboundAuthz } from '../sidecar/inbound/authz-state.js';
import { SidecarMetrics } from '../sidecar/admin/metrics.js';

function config(policies: number, rulesEach: number): InboundAuthzConfig {
  const list: InboundAuthzConfig['policies'] = [];
  for (let p = 0; p < policies; p++) {
    const rules = [];
    for (let r = 0; r < rulesEach; r++) {
      rules.push({
        sources: { identities: Array.from({ length: 4 }, (_, i) => `spiffe://cluster.local/ns/ns${p}/sa/sa${r}-${i}`), prefixes: [`spiffe://cluster.local/ns/team${p}${r}/sa/`] },
        ports: [8080 + r],
      });
    }
    list.push({ name: `shop/p${p}`, rules });
  }
  return { pod: 'shop/cart-0', defaultPolicy: 'all-unauthenticated', defaultFrom: 'mesh', probes: policies ? [{ port: 0, path: '/healthz' }] : [], policies: list };
}

// Twenty callers, as twenty connections would present them (one string per connection).
const peers = Array.from({ length: 20 }, (_, i) => `spiffe://cluster.local/ns/ns${i % 10}/sa/sa${i % 5}-1`);

function bench(name: string, fn: (i: number) => unknown): number {
  const n = 2_000_000;
  for (let i = 0; i < 200_000; i++) fn(i);
  let best = Infinity;
  for (let k = 0; k < 5; k++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / n);
  }
  process.stdout.write(`${name.padEnd(58)} ${best.toFixed(1).padStart(7)} ns/request\n`);
  return best;
}

const none = buildAuthorizer(config(0, 0));
const big = buildAuthorizer(config(10, 5));
bench('no AuthorizationPolicy (default all-unauthenticated)', (i) => none.check(8080 + (i & 3), peers[i % 20]!, '/x'));
bench('10 policies, 50 rules', (i) => big.check(8080 + (i & 3), peers[i % 20]!, '/x'));
const counted = new InboundAuthz(new SidecarMetrics(), () => {});
counted.apply({ version: '1', config_json: Buffer.from(JSON.stringify(config(10, 5))) });
bench('10 policies, 50 rules, counted in weft_authz_decisions_total', (i) => counted.check(8080 + (i & 3), peers[i % 20]!, '/x'));
const t0 = process.hrtime.bigint();
for (let i = 0; i < 1000; i++) buildAuthorizer(config(10, 5));
process.stdout.write(`${'build the checker (once per config push)'.padEnd(58)} ${(Number(process.hrtime.bigint() - t0) / 1000 / 1000).toFixed(1).padStart(7)} µs\n`);

import t from 'tap';
import { P2cEwma, newBalanced, observe, type Balanced } from '../balancer-p2c-ewma.js';
import { Weighted } from '../../config/config-apply.js';

type Ep = Balanced & { name: string };
const ep = (name: string, ready = true): Ep => ({ ...newBalanced(ready), name });

t.test('P2C prefers the endpoint with lower latency', async (t) => {
  const fast = ep('fast');
  const slow = ep('slow');
  observe(fast, 1, 0);
  observe(slow, 50, 0);
  const b = new P2cEwma([fast, slow]);
  const counts = { fast: 0, slow: 0 };
  for (let i = 0; i < 1000; i++) counts[b.pick()!.name as 'fast' | 'slow']++;
  t.equal(counts.fast, 1000, 'with two endpoints both are always compared');
});

t.test('P2C spreads load by requests in flight', async (t) => {
  const a = ep('a');
  const b = ep('b');
  const bal = new P2cEwma([a, b]);
  for (let i = 0; i < 100; i++) bal.pick()!.inflight++;
  t.ok(Math.abs(a.inflight - b.inflight) <= 1, `in flight ${a.inflight}/${b.inflight}`);
});

t.test('among many equal endpoints every one gets traffic', async (t) => {
  const eps = Array.from({ length: 10 }, (_, i) => ep(`e${i}`));
  const bal = new P2cEwma(eps);
  const seen = new Map<string, number>();
  for (let i = 0; i < 5000; i++) {
    const e = bal.pick()!;
    seen.set(e.name, (seen.get(e.name) ?? 0) + 1);
  }
  t.equal(seen.size, 10);
  for (const n of seen.values()) t.ok(n > 300, `${n} picks`);
});

t.test('ready endpoints first; terminating ones only when nothing is ready', async (t) => {
  const r = ep('ready');
  const term = ep('term', false);
  const bal = new P2cEwma([term, r]);
  for (let i = 0; i < 50; i++) t.equal(bal.pick()!.name, 'ready');
  const only = new P2cEwma([ep('t1', false), ep('t2', false)]);
  t.ok(only.pick(), 'falls back to terminating endpoints');
  t.equal(new P2cEwma<Ep>([]).pick(), undefined);
});

t.test('peak EWMA: a slow sample counts at once, recovery decays', async (t) => {
  const e = ep('e');
  observe(e, 100, 1000);
  t.equal(e.ewmaMs, 100);
  observe(e, 1, 1100);
  t.ok(e.ewmaMs > 90 && e.ewmaMs < 100, `shortly after: ${e.ewmaMs}`);
  observe(e, 1, 60_000);
  t.ok(e.ewmaMs < 5, `much later: ${e.ewmaMs}`);
});

t.test('weighted backends: proportions, zero weight never, all zero none', async (t) => {
  const w = new Weighted(['a', 'b', 'c'], [90, 10, 0]);
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 10_000; i++) counts[w.pick()!]!++;
  t.equal(counts.c, 0);
  t.ok(counts.a! > 8700 && counts.a! < 9300, `a ${counts.a}`);
  t.equal(new Weighted(['a', 'b'], [0, 0]).pick(), undefined);
  t.equal(new Weighted(['a'], [0]).pick(), undefined);
  t.equal(new Weighted(['a'], [5]).pick(), 'a');
});

// The state machines behind retries: the retry budget (GEP-3388), failure
// accrual (eject after N consecutive failures, probe with backoff, never
// eject everything), the in-flight bound of load shedding, and the body kept
// for replay.
import t from 'tap';
import { Readable } from 'node:stream';
import { DEFAULT_RETRY_BUDGET } from '../../../api/index.js';
import { RetryBudgetState, RetryBudgets } from '../retry-budget.js';
import {
  DEFAULT_ACCRUAL,
  availableEndpoints,
  describeAccrual,
  isAvailable,
  markPicked,
  newAccrualState,
  parseFailureAccrual,
  probeBackoffMs,
  recordFailure,
  recordSuccess,
} from '../../balance/failure-accrual.js';
import { InflightLimit, parseMaxInFlight } from '../../balance/load-shed.js';
import { BodyReplay, REPLAY_LIMIT, keepsBody } from '../retry-body.js';

t.test('budget: retries up to percent × requests in the window, plus the minimum rate', async (t) => {
  const b = new RetryBudgetState({ percent: 20, intervalMs: 10_000, minRetryCount: 0, minRetryIntervalMs: 1000 }, 0);
  for (let i = 0; i < 100; i++) b.recordRequest(i * 10);
  let made = 0;
  for (let i = 0; i < 50; i++) if (b.tryRetry(1000 + i)) made++;
  t.equal(made, 20, '20% of 100 requests');
  t.equal(b.denied, 30);
  // The window slides: 11 s later those requests no longer count.
  t.equal(b.tryRetry(12_000), false, 'old requests left the window');
  t.same(b.window(12_000), { requests: 0, retries: 0 });
  for (let i = 0; i < 10; i++) b.recordRequest(12_000 + i);
  t.equal(b.tryRetry(12_100), true);
  t.equal(b.tryRetry(12_100), true);
  t.equal(b.tryRetry(12_100), false, '2 of 10');
});

t.test('budget: the minimum rate lets a quiet backend be retried, and refills over time', async (t) => {
  const b = new RetryBudgetState({ percent: 20, intervalMs: 10_000, minRetryCount: 3, minRetryIntervalMs: 1000 }, 0);
  let made = 0;
  for (let i = 0; i < 10; i++) if (b.tryRetry(100)) made++;
  t.equal(made, 3, '3 tokens with no traffic');
  t.equal(b.tryRetry(400), false, 'a third of a second refills one token only partly');
  t.equal(b.tryRetry(450), true, 'a third of a second later: one more');
  t.equal(b.tryRetry(2000), true);
  t.equal(b.tryRetry(2000), true);
  t.equal(b.tryRetry(2000), true);
  t.equal(b.tryRetry(2000), false, 'never more than count at once');
});

t.test('budget: under sustained failure, retries stay within percent × requests + the minimum rate', async (t) => {
  // 1000 req/s for 30 s, every try fails and wants 2 retries.
  const cfg = DEFAULT_RETRY_BUDGET;
  const b = new RetryBudgetState(cfg, 0);
  let requests = 0;
  let retries = 0;
  for (let ms = 0; ms < 30_000; ms++) {
    b.recordRequest(ms);
    requests++;
    for (let k = 0; k < 2; k++) if (b.tryRetry(ms)) retries++;
  }
  const bound = (cfg.percent / 100) * requests + cfg.minRetryCount * (1 + 30_000 / cfg.minRetryIntervalMs);
  t.ok(retries <= bound, `${retries} retries ≤ ${bound}`);
  t.ok(retries >= 0.9 * (cfg.percent / 100) * requests, `the budget is used (${retries})`);
});

t.test('budgets per backend: a changed config starts a fresh budget; removed backends are forgotten', async (t) => {
  const all = new RetryBudgets();
  const a = all.get('ns/a:80', undefined, 0);
  t.equal(all.get('ns/a:80', undefined, 5), a, 'same config: same state');
  t.same(a.config, DEFAULT_RETRY_BUDGET);
  const changed = all.get('ns/a:80', { ...DEFAULT_RETRY_BUDGET, percent: 50 }, 10);
  t.not(changed, a);
  all.get('ns/b:80', undefined, 0);
  all.retain(new Set(['ns/b:80']));
  t.same([...all.entries()].map(([k]) => k), ['ns/b:80']);
});

t.test('accrual: 7 consecutive failures eject; a success in between resets the count', async (t) => {
  const s = newAccrualState();
  for (let i = 0; i < 6; i++) t.equal(recordFailure(s, DEFAULT_ACCRUAL, 0, () => 0.5), undefined);
  recordSuccess(s);
  t.equal(s.consecutiveFailures, 0);
  for (let i = 0; i < 6; i++) recordFailure(s, DEFAULT_ACCRUAL, 0, () => 0.5);
  t.equal(isAvailable(s, 0), true);
  t.equal(recordFailure(s, DEFAULT_ACCRUAL, 0, () => 0.5), 'ejected', 'the 7th in a row');
  t.equal(isAvailable(s, 0), false);
  t.equal(isAvailable(s, 999), false);
  t.equal(isAvailable(s, 1000), true, 'probe due after 1 s');
  t.same(describeAccrual(s, 400), { state: 'ejected', consecutiveFailures: 7, ejections: 1, nextProbeInMs: 600 });
});

t.test('accrual: one probe at a time; failure doubles the backoff up to 60 s; success recovers', async (t) => {
  const s = newAccrualState();
  const cfg = { ...DEFAULT_ACCRUAL, threshold: 1 };
  recordFailure(s, cfg, 0, () => 0.5);
  let now = s.probeAt;
  const waits: number[] = [];
  for (let i = 0; i < 9; i++) {
    t.equal(isAvailable(s, now), true, 'probe due');
    markPicked(s, now);
    t.equal(s.phase, 'probing');
    t.equal(isAvailable(s, now), false, 'no second request while the probe is out');
    t.equal(recordFailure(s, cfg, now, () => 0.5), 'ejected', 'a failed probe ejects again');
    waits.push(s.probeAt - now);
    now = s.probeAt;
  }
  t.same(waits, [2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000], 'doubling to the 60 s cap');
  markPicked(s, now);
  t.equal(recordSuccess(s), 'recovered');
  t.equal(s.phase, 'active');
  t.equal(s.ejections, 0, 'the backoff starts over');
  t.equal(s.ejectionsTotal, 10);
  recordFailure(s, cfg, now, () => 0.5);
  t.equal(s.probeAt - now, 1000);
});

t.test('accrual: jitter stays within ±20% and the 1 s–60 s range', async (t) => {
  for (const e of [1, 2, 3, 6, 7, 20]) {
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const d = probeBackoffMs(DEFAULT_ACCRUAL, e, () => r);
      const base = Math.min(60_000, 1000 * 2 ** (e - 1));
      t.ok(d >= 1000 && d <= 60_000 && d >= base * 0.8 - 1 && d <= base * 1.2 + 1, `ejection ${e}, rand ${r}: ${d} ms`);
    }
  }
  t.equal(recordFailure(newAccrualState(), { ...DEFAULT_ACCRUAL, threshold: 0 }, 0), undefined, 'threshold 0: off');
});

t.test('accrual: the balancer never loses every endpoint', async (t) => {
  const ep = (name: string) => ({ name, accrual: newAccrualState() });
  const list = [ep('a'), ep('b'), ep('c')];
  t.equal(availableEndpoints(list, 0), list, 'all available: the same array, no copy');
  const cfg = { ...DEFAULT_ACCRUAL, threshold: 1 };
  recordFailure(list[0]!.accrual, cfg, 0);
  t.same(availableEndpoints(list, 0).map((e) => e.name), ['b', 'c']);
  recordFailure(list[1]!.accrual, cfg, 0);
  recordFailure(list[2]!.accrual, cfg, 0);
  t.equal(availableEndpoints(list, 0), list, 'all out: use all');
});

t.test('settings parse with clear messages', async (t) => {
  t.equal(parseFailureAccrual('7'), 7);
  t.equal(parseFailureAccrual('0'), 0);
  t.match(parseFailureAccrual('-1'), { error: /whole number of consecutive failures/ });
  t.match(parseFailureAccrual('5000'), { error: /1000/ });
  t.equal(parseMaxInFlight('10000'), 10000);
  t.equal(parseMaxInFlight('0'), 0);
  t.match(parseMaxInFlight('lots'), { error: /whole number of requests/ });
});

t.test('load shedding: the bound refuses at once and frees on release', async (t) => {
  const l = new InflightLimit(2);
  t.equal(l.tryAcquire(), true);
  t.equal(l.tryAcquire(), true);
  t.equal(l.tryAcquire(), false);
  t.equal(l.shed, 1);
  l.release();
  t.equal(l.tryAcquire(), true);
  t.equal(l.inflight, 2);
  const none = new InflightLimit(0);
  for (let i = 0; i < 100_000; i++) none.tryAcquire();
  t.equal(none.shed, 0, '0: no bound');
});

async function read(s: Readable | Buffer | undefined): Promise<Buffer> {
  if (s === undefined) throw new Error('no body');
  if (Buffer.isBuffer(s)) return s;
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function source(chunks: Buffer[], delayMs = 0): Readable {
  let i = 0;
  return new Readable({
    read() {
      const next = () => this.push(i < chunks.length ? chunks[i++]! : null);
      if (delayMs) setTimeout(next, delayMs);
      else next();
    },
  });
}

t.test('body replay: every try gets the same bytes, whether the body has arrived or is still coming', async (t) => {
  const body = Buffer.alloc(48 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
  const chunks = [body.subarray(0, 10_000), body.subarray(10_000, 30_000), body.subarray(30_000)];
  // A retry while the body is still streaming in.
  const r = new BodyReplay(source(chunks, 5));
  const first = r.body() as Readable;
  const firstPart = await new Promise<Buffer>((res) => first.once('data', (c: Buffer) => res(c)));
  t.ok(firstPart.length > 0 && firstPart.length < body.length, 'the first try got part of it');
  const second = await read(r.body());
  t.ok(second.equals(body), 'the retry got every byte, in order');
  t.ok(r.replayable);
  const third = await read(r.body());
  t.ok(Buffer.isBuffer(r.body()), 'once whole, a try gets one Buffer (sent with its length)');
  t.ok(third.equals(body), 'and again');
  r.close();
});

t.test('body replay: a body over 64 KiB streams through once and is not replayable', async (t) => {
  const big = Buffer.alloc(REPLAY_LIMIT + 1000, 1);
  const r = new BodyReplay(source([big.subarray(0, 40_000), big.subarray(40_000)]));
  const got = await read(r.body());
  t.equal(got.length, big.length, 'the first try gets it all');
  t.equal(r.replayable, false);
  t.equal(r.body(), undefined);
  t.equal(keepsBody(String(REPLAY_LIMIT), false), true);
  t.equal(keepsBody(String(REPLAY_LIMIT + 1), false), false, 'known to be too large: not kept');
  t.equal(keepsBody(undefined, true), true, 'chunked: kept while it fits');
  t.equal(keepsBody('0', false), false);
  t.equal(keepsBody(undefined, false), false);
});

t.test('body replay: a slow try pauses the source (backpressure)', async (t) => {
  const chunk = Buffer.alloc(16 * 1024, 2);
  let pulled = 0;
  const src = new Readable({
    highWaterMark: 1024,
    read() {
      pulled++;
      this.push(pulled <= 4 ? chunk : null);
    },
  });
  const r = new BodyReplay(src);
  const tryBody = r.body() as Readable;
  await new Promise((res) => setTimeout(res, 50));
  t.ok(src.isPaused(), 'nobody reads the try: the source waits');
  const all = await read(tryBody);
  t.equal(all.length, 4 * chunk.length);
});

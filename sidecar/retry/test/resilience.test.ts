// The forward step's retry loop without sockets: which endpoint each try
// goes to, when a retry is made or skipped (attempts, budget, deadline, body),
// ejection keeping an endpoint out of the balancer, shedding past the
// in-flight bound, and what the metrics and the snapshot say.
import t from 'tap';
import type { RetryPolicy } from '../../../api/index.js';
import { newBalanced } from '../../balance/balancer-p2c-ewma.js';
import { newAccrualState } from '../../balance/failure-accrual.js';
import { SidecarMetrics } from '../../admin/metrics.js';
import { Resilience, RetryRun, type BackendLike, type EndpointLike, type RetryLabels } from '../resilience.js';

const ep = (n: number): EndpointLike => ({ ...newBalanced(true), key: `10.0.0.${n}:8080|`, ip: `10.0.0.${n}`, port: 8080, accrual: newAccrualState() });
const backend = (eps: EndpointLike[], retryBudget?: BackendLike['config']['retryBudget']): BackendLike => ({
  key: 'shop/cart:80',
  name: 'shop/cart',
  config: { namespace: 'shop', name: 'cart', ...(retryBudget ? { retryBudget } : {}) },
  balancer: { fallback: eps },
});
const labels: RetryLabels = { dst_namespace: 'shop', dst_service: 'cart', route_kind: 'HTTPRoute', route_namespace: 'shop', route_name: 'r', route_rule: '', backend: 'shop/cart' };
const policy = (p: Partial<RetryPolicy> = {}): RetryPolicy => ({ codes: [503], grpcCodes: [], attempts: 2, backoffMs: 100, source: 'HTTPRoute', ...p });

/** A small deterministic PRNG (mulberry32). */
function prng(seed = 42): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function clock() {
  let now = 1000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

async function metricLines(m: SidecarMetrics, name: string): Promise<string[]> {
  return (await m.render()).split('\n').filter((l) => l.startsWith(name + '{'));
}

t.test('a refused connection goes at once to another endpoint; at most two safe retries', async (t) => {
  const c = clock();
  const m = new SidecarMetrics();
  const res = new Resilience(m, { now: c.now, rand: () => 0.3 });
  const eps = [ep(1), ep(2), ep(3)];
  const b = backend(eps);
  const run = new RetryRun(res, { backend: b, policy: undefined, method: 'POST', timeouts: {}, labels: () => labels });
  const seen: EndpointLike[] = [];
  let cur = res.pick(b)!;
  for (let i = 0; i < 3; i++) {
    t.match(run.begin(cur), { ok: true });
    seen.push(cur);
    const e = run.end(cur, { kind: 'error', reason: 'connect_refused' });
    if (i < 2) {
      t.equal(e.action, 'retry', `try ${i + 1} is retried`);
      if (e.action !== 'retry') return;
      t.equal(e.delayMs, 0, 'safe: no backoff');
      cur = e.endpoint;
    } else t.same(e, { action: 'deliver', skipped: 'attempts' }, 'the third failure is delivered');
  }
  t.equal(new Set(seen).size, 3, 'each try on a different endpoint');
  run.finish();
  t.match((await metricLines(m, 'weft_retries_total')).join('\n'), /reason="connect_refused"} 2/);
  t.match((await metricLines(m, 'weft_retries_skipped_total')).join('\n'), /reason="attempts"} 1/);
});

t.test('policy retries: listed codes up to `attempts`, with backoff, within the request deadline', async (t) => {
  const c = clock();
  const res = new Resilience(undefined, { now: c.now, rand: () => 0 });
  const b = backend([ep(1), ep(2)]);
  const run = new RetryRun(res, { backend: b, policy: policy({ attempts: 2, backoffMs: 100 }), method: 'POST', timeouts: { requestMs: 1000, backendRequestMs: 300 }, labels: () => labels });
  let cur = res.pick(b)!;
  t.same(run.begin(cur), { ok: true, timeoutMs: 300, timeoutKind: 'backendRequest' });
  let e = run.end(cur, { kind: 'response', status: 503 });
  t.match(e, { action: 'retry', delayMs: 100, reason: 'status' });
  if (e.action !== 'retry') return;
  c.advance(100);
  cur = e.endpoint;
  t.match(run.begin(cur), { ok: true, timeoutMs: 300 });
  c.advance(50);
  e = run.end(cur, { kind: 'response', status: 503 });
  t.match(e, { action: 'retry', delayMs: 200 }, 'the second wait doubles');
  if (e.action !== 'retry') return;
  c.advance(200);
  cur = e.endpoint;
  t.same(run.begin(cur), { ok: true, timeoutMs: 300, timeoutKind: 'backendRequest' });
  t.same(run.end(cur, { kind: 'response', status: 503 }), { action: 'deliver', skipped: 'attempts' }, '1 + attempts tries at most');
  t.equal(run.tries, 3);

  const late = new RetryRun(res, { backend: b, policy: policy({ backoffMs: 100 }), method: 'GET', timeouts: { requestMs: 1000 }, labels: () => labels });
  const first = res.pick(b)!;
  late.begin(first);
  c.advance(950);
  t.same(late.end(first, { kind: 'response', status: 503 }), { action: 'deliver', skipped: 'deadline' }, 'no time left for the backoff and a try');
  const unlisted = new RetryRun(res, { backend: b, policy: policy(), method: 'GET', timeouts: {}, labels: () => labels });
  unlisted.begin(first);
  t.same(unlisted.end(first, { kind: 'response', status: 500 }), { action: 'deliver' }, 'unlisted code: delivered');
});

t.test('the budget stops retries of an always-failing backend; safe retries are not charged', async (t) => {
  const c = clock();
  const m = new SidecarMetrics();
  const res = new Resilience(m, { now: c.now, rand: () => 0, failureAccrual: 0 });
  const b = backend([ep(1), ep(2), ep(3)], { percent: 20, intervalMs: 10_000, minRetryCount: 1, minRetryIntervalMs: 1000 });
  let tries = 0;
  const requests = 200;
  for (let i = 0; i < requests; i++) {
    c.advance(5); // 200 req/s for 1 s
    const run = new RetryRun(res, { backend: b, policy: policy({ attempts: 3, backoffMs: 0 }), method: 'GET', timeouts: {}, labels: () => labels });
    let cur = res.pick(b)!;
    for (;;) {
      run.begin(cur);
      tries++;
      const e = run.end(cur, { kind: 'response', status: 503 });
      if (e.action !== 'retry') break;
      cur = e.endpoint;
    }
    run.finish();
  }
  const bound = requests * 1.2 + 2; // (1 + 20%) × requests + the minimum rate over ~1 s
  t.ok(tries <= bound, `${tries} tries reached the app ≤ ${bound}`);
  t.ok(tries >= requests * 1.15, `the budget was used (${tries})`);
  t.match((await metricLines(m, 'weft_retries_skipped_total')).join('\n'), /reason="budget"/);
  const snap = res.snapshot();
  t.equal(snap.backends[0]!.budget!.percent, 20);
  t.ok(snap.backends[0]!.budget!.denied > 0);

  // Connect failures are retried even with the budget spent.
  const run = new RetryRun(res, { backend: b, policy: policy(), method: 'POST', timeouts: {}, labels: () => labels });
  const first = res.pick(b)!;
  run.begin(first);
  t.match(run.end(first, { kind: 'error', reason: 'connect_refused' }), { action: 'retry' });
});

t.test('failure accrual: an endpoint failing 7 times in a row leaves the balancer, and comes back after a good probe', async (t) => {
  const c = clock();
  const m = new SidecarMetrics();
  const res = new Resilience(m, { now: c.now, rand: prng() });
  const bad = ep(1);
  const good = ep(2);
  const b = backend([bad, good]);
  for (let i = 0; i < 7; i++) res.recordOutcome(b, bad, { kind: 'response', status: 500 });
  t.equal(res.isEjected(bad), true);
  for (let i = 0; i < 50; i++) t.equal(res.pick(b), good, 'only the good endpoint is picked');
  t.match((await metricLines(m, 'weft_endpoint_ejected')).join('\n'), /endpoint="10\.0\.0\.1:8080"} 1/);
  t.match((await metricLines(m, 'weft_endpoint_ejections_total')).join('\n'), /endpoint="10\.0\.0\.1:8080"} 1/);
  t.match(res.snapshot().backends[0]!.endpoints.find((e) => e.endpoint === '10.0.0.1:8080'), { endpoint: '10.0.0.1:8080', state: 'ejected', consecutiveFailures: 7, ejections: 1 });
  t.ok(res.snapshot().backends[0]!.endpoints[0]!.nextProbeInMs! >= 800, 'next probe in about a second');
  c.advance(res.snapshot().backends[0]!.endpoints[0]!.nextProbeInMs!);
  let probes = 0;
  for (let i = 0; i < 50; i++) if (res.pick(b) === bad) probes++;
  t.equal(probes, 1, 'one probe request once the backoff is over');
  bad.ewmaMs = 1000; // the failure penalties of its bad spell
  res.recordOutcome(b, bad, { kind: 'response', status: 200 });
  t.equal(res.isEjected(bad), false, 'a good probe brings it back');
  t.equal(bad.ewmaMs, 1, 'with its latency estimate started afresh');
  t.match((await metricLines(m, 'weft_endpoint_ejected')).join('\n'), /endpoint="10\.0\.0\.1:8080"} 0/);
  let back = 0;
  for (let i = 0; i < 100; i++) if (res.pick(b) === bad) back++;
  t.ok(back > 10, `picked again (${back}/100)`);

  // Never every endpoint.
  for (const e of [bad, good]) for (let i = 0; i < 7; i++) res.recordOutcome(b, e, { kind: 'error', reason: 'connect_refused' });
  t.ok(res.pick(b), 'all ejected: all are used');
});

t.test('load shedding: past the bound a request is refused at once with overloaded', async (t) => {
  const m = new SidecarMetrics();
  const res = new Resilience(m, { maxInFlight: 2 });
  const b = backend([ep(1)]);
  const runs = [0, 1, 2].map(() => new RetryRun(res, { backend: b, policy: undefined, method: 'GET', timeouts: {}, labels: () => labels }));
  t.match(runs[0]!.begin(ep(1)), { ok: true });
  t.match(runs[1]!.begin(ep(1)), { ok: true });
  t.same(runs[2]!.begin(ep(1)), { ok: false, status: 503, reason: 'overloaded' });
  runs[0]!.finish();
  runs[0]!.finish();
  t.equal(res.limit(b.key).inflight, 1, 'finish frees the slot once');
  t.match((await metricLines(m, 'weft_requests_shed_total')).join('\n'), /backend="shop\/cart"} 1/);
});

t.test('a body that was not kept is not sent again', async (t) => {
  const res = new Resilience(undefined);
  const b = backend([ep(1), ep(2)]);
  const run = new RetryRun(res, { backend: b, policy: policy(), method: 'POST', timeouts: {}, tc: { body: 'unkept' }, labels: () => labels });
  const first = res.pick(b)!;
  run.begin(first);
  t.same(run.end(first, { kind: 'response', status: 503 }), { action: 'deliver', skipped: 'body_too_large' });
});

t.test('a penalized endpoint is not starved: its latency estimate decays until P2C tries it again', async (t) => {
  const { pickFrom } = await import('../../balance/balancer-p2c-ewma.js');
  const slow = { ...newBalanced(true), ewmaMs: 1000, lastMs: 1 };
  const fast = { ...newBalanced(true), ewmaMs: 2, lastMs: 1 };
  const rand = prng(7);
  // The fast endpoint keeps being measured (its samples are fresh); the penalized one is not.
  const picks = (now: number) => {
    fast.lastMs = now;
    return Array.from({ length: 100 }, () => pickFrom([slow, fast], rand, now)).filter((e) => e === slow).length;
  };
  t.equal(picks(1000), 0, 'just penalized: avoided');
  t.ok(picks(120_000) > 20, 'two minutes later the penalty has decayed below the measured one: picked again');
});

t.test('a due probe goes out even when the balancer would prefer the other endpoint', async (t) => {
  const c = clock();
  const res = new Resilience(undefined, { now: c.now, rand: prng(3) });
  const bad = { ...ep(1), ewmaMs: 5000, lastMs: performance.now() };
  const good = ep(2);
  const b = backend([bad, good]);
  for (let i = 0; i < 7; i++) res.recordOutcome(b, bad, { kind: 'error', reason: 'connect_refused' });
  c.advance(2000);
  t.equal(res.pick(b), bad, 'the probe');
  t.equal(res.pick(b), good, 'one at a time');
  const { pickEndpoint } = await import('../../balance/backend.js');
  const bad2 = { ...ep(3), ewmaMs: 5000, lastMs: performance.now() } as unknown as Parameters<typeof pickEndpoint>[0][number];
  const good2 = ep(4) as unknown as typeof bad2;
  bad2.accrual.phase = 'ejected';
  bad2.accrual.probeAt = 10;
  t.equal(pickEndpoint([good2, bad2], 20), bad2, 'decide() sends the due probe too');
  t.equal(bad2.accrual.phase, 'probing');
});

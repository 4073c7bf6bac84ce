// The test harness around a real Prometheus works on its own: it starts on a
// loopback address, scrapes itself every second, answers instant queries
// (vectors, scalars, rates) and reloads a changed scrape config.
import t from 'tap';
import { startPrometheus, randomLoopback } from './helpers/prometheus.js';

t.test('a real Prometheus scrapes itself and answers queries', async (t) => {
  const host = randomLoopback();
  const port = 9090;
  const prom = await startPrometheus({ host, port, jobs: [{ job: 'self', targets: [`${host}:${port}`] }] });
  t.teardown(() => prom.stop());
  await prom.waitForTargets(1);

  const up = await prom.query('up{job="self"}');
  t.equal(up.length, 1);
  t.equal(up[0].metric.instance, `${host}:${port}`);
  t.equal(up[0].value[1], '1');

  // A few scrapes later a rate over a short window has data.
  await new Promise((r) => setTimeout(r, 3500));
  const rate = await prom.query('sum(rate(prometheus_http_requests_total[10s]))');
  t.equal(rate.length, 1);
  t.ok(Number(rate[0].value[1]) > 0, `prometheus sees its own requests: ${rate[0].value[1]}/s`);

  const scalar = await prom.query('time()');
  t.ok(Math.abs(Number(scalar[0].value[1]) - Date.now() / 1000) < 5, 'scalar results come back as one sample');

  await t.rejects(prom.query('sum(rate(up[1m]'), /bad_data/, 'a syntax error is an error, not an empty result');

  await prom.setJobs([
    { job: 'self', targets: [`${host}:${port}`] },
    { job: 'nothing', targets: ['127.0.0.1:1'] },
  ]);
  const end = Date.now() + 10_000;
  let jobs: string[] = [];
  while (Date.now() < end) {
    jobs = (await prom.targets()).map((x) => x.labels.job).sort();
    if (jobs.length === 2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  t.same(jobs, ['nothing', 'self'], 'a reload picks up new jobs');
});

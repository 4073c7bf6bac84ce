import t from 'tap';
import {
  aggregate,
  histogramQuantile,
  increases,
  isFailure,
  parseExposition,
  quantileLabel,
  renderStat,
  renderTable,
  formatLatency,
  type TargetScrape,
} from '../stat-table.js';

t.test('parses the text exposition format', async (t) => {
  const text = [
    '# HELP weft_requests_total Requests.',
    '# TYPE weft_requests_total counter',
    'weft_requests_total{direction="outbound",dst_service="smiley",status_code="200"} 12',
    'weft_requests_total{direction="outbound",dst_service="we\\"ird\\\\x\\ny"} 3 1700000000000',
    'weft_request_duration_seconds_bucket{le="+Inf",direction="outbound"} 7',
    'process_start_time_seconds 1.7e9',
    'weft_x{a="1",} NaN',
    '',
    'garbage{unterminated="x 5',
  ].join('\n');
  const s = parseExposition(text);
  t.same(
    s.map((x) => [x.name, x.labels, x.value]),
    [
      ['weft_requests_total', { direction: 'outbound', dst_service: 'smiley', status_code: '200' }, 12],
      ['weft_requests_total', { direction: 'outbound', dst_service: 'we"ird\\x\ny' }, 3],
      ['weft_request_duration_seconds_bucket', { le: '+Inf', direction: 'outbound' }, 7],
      ['process_start_time_seconds', {}, 1.7e9],
      ['weft_x', { a: '1' }, NaN],
    ],
  );
});

t.test('histogram quantiles match Prometheus histogram_quantile', async (t) => {
  const b = [
    { le: 0.001, count: 10 },
    { le: 0.01, count: 60 },
    { le: 0.1, count: 100 },
    { le: Infinity, count: 100 },
  ];
  const cases: Array<[number, number]> = [
    [0, 0],
    [0.05, 0.0005], // rank 5 in the first bucket [0, 1ms]
    [0.1, 0.001],
    [0.5, 0.001 + 0.009 * (40 / 50)],
    [0.9, 0.01 + 0.09 * (30 / 40)],
    [1, 0.1],
  ];
  for (const [q, want] of cases) t.ok(Math.abs(histogramQuantile(q, b) - want) < 1e-12, `q=${q}`);
  // rank in the +Inf bucket: the upper bound of the last finite bucket
  t.equal(
    histogramQuantile(0.99, [
      { le: 0.1, count: 10 },
      { le: Infinity, count: 20 },
    ]),
    0.1,
  );
  t.ok(Number.isNaN(histogramQuantile(0.5, [{ le: Infinity, count: 0 }, { le: 1, count: 0 }])), 'no observations');
  t.ok(Number.isNaN(histogramQuantile(0.5, [{ le: Infinity, count: 3 }])), 'one bucket');
  t.ok(Number.isNaN(histogramQuantile(0.5, [{ le: 1, count: 3 }, { le: 2, count: 3 }])), 'no +Inf bucket');
  t.equal(histogramQuantile(-1, b), -Infinity);
  t.equal(histogramQuantile(2, b), Infinity);
  // non-monotonic input is made monotonic
  t.equal(
    histogramQuantile(0.5, [
      { le: 1, count: 10 },
      { le: 2, count: 8 },
      { le: Infinity, count: 10 },
    ]),
    0.5,
  );
});

t.test('counter increases handle new targets, new series and resets', async (t) => {
  const s = (v: number, code = '200') => ({ name: 'weft_requests_total', labels: { status_code: code }, value: v });
  const prev: TargetScrape[] = [{ target: 'a', at: 1000, samples: [s(10), s(4, '500')] }];
  const cur: TargetScrape[] = [
    { target: 'a', at: 3000, samples: [s(30), s(2, '500'), s(5, '404')] },
    { target: 'b', at: 3000, samples: [s(99)] },
  ];
  const inc = increases(prev, cur);
  t.same(
    inc.map((i) => [i.labels.status_code, i.value, i.seconds]),
    [
      ['200', 20, 2],
      ['500', 2, 2], // reset: 4 → 2 means the counter restarted
      ['404', 5, 2], // a series born inside the window
    ],
  );
});

const LE = ['0.001', '0.01', '0.1', '+Inf'];
function scrape(target: string, at: number, series: Array<{ labels: Record<string, string>; count: number; buckets: number[] }>): TargetScrape {
  const samples = series.flatMap(({ labels, count, buckets }) => [
    { name: 'weft_requests_total', labels, value: count },
    ...buckets.map((c, i) => ({ name: 'weft_request_duration_seconds_bucket', labels: { ...labels, le: LE[i]! }, value: c })),
  ]);
  return { target, at, samples };
}

t.test('aggregates per service and backend with the split share', async (t) => {
  const base = { direction: 'outbound', dst_namespace: 'faces', dst_service: 'smiley', route_kind: 'HTTPRoute', route_namespace: 'faces', route_name: 'smiley-split' };
  const v1 = { ...base, backend: 'faces/smiley-v1', status_code: '200', status_class: '2xx' };
  const v2 = { ...base, backend: 'faces/smiley-v2', status_code: '200', status_class: '2xx' };
  const v2err = { ...v2, status_code: '503', status_class: '5xx' };
  const inbound = { ...v1, direction: 'inbound' };
  const prev = [
    scrape('face-0', 0, [
      { labels: v1, count: 100, buckets: [10, 100, 100, 100] },
      { labels: v2, count: 10, buckets: [0, 10, 10, 10] },
    ]),
    scrape('face-1', 0, [{ labels: v1, count: 0, buckets: [0, 0, 0, 0] }]),
  ];
  const cur = [
    scrape('face-0', 2000, [
      { labels: v1, count: 190, buckets: [10, 190, 190, 190] },
      { labels: v2, count: 18, buckets: [0, 18, 18, 18] },
      { labels: v2err, count: 2, buckets: [0, 0, 2, 2] },
      { labels: inbound, count: 1000, buckets: [1000, 1000, 1000, 1000] },
    ]),
    scrape('face-1', 2000, [{ labels: v1, count: 90, buckets: [90, 90, 90, 90] }]),
  ];
  const rows = aggregate(prev, cur, { by: ['service', 'backend'], quantiles: [0.5, 0.99] });
  t.equal(rows.length, 2);
  const [r1, r2] = rows;
  t.same(r1!.keys, { service: 'faces/smiley', backend: 'faces/smiley-v1' });
  t.equal(r1!.requests, 180);
  t.equal(r1!.rps, 90);
  t.equal(r1!.successRate, 1);
  t.ok(Math.abs(r1!.share - 180 / 190) < 1e-9);
  // 90 requests under 1 ms (face-1) and 90 in (1 ms, 10 ms]: p50 is the 1 ms bound
  t.ok(Math.abs(r1!.latency.p50! - 0.001) < 1e-12);
  t.same(r2!.keys, { service: 'faces/smiley', backend: 'faces/smiley-v2' });
  t.equal(r2!.requests, 10);
  t.equal(r2!.successRate, 0.8);
  t.ok(Math.abs(r2!.share - 10 / 190) < 1e-9);

  const byRoute = aggregate(prev, cur, { by: ['route'] });
  t.same(byRoute.map((r) => [r.keys.route, r.requests]), [['HTTPRoute faces/smiley-split', 190]]);

  const byWorkload = aggregate(prev, cur, { by: ['service'], direction: 'inbound' });
  t.same(byWorkload.map((r) => r.requests), [1000]);

  const filtered = aggregate(prev, cur, { by: ['backend'], filter: { backend: 'faces/smiley-v2' } });
  t.same(filtered.map((r) => r.requests), [10]);
});

t.test('classifies failures like the dashboards', async (t) => {
  const cases: Array<[Record<string, string>, boolean]> = [
    [{ status_code: '200', status_class: '2xx' }, false],
    [{ status_code: '404', status_class: '4xx' }, false],
    [{ status_code: '503', status_class: '5xx' }, true],
    [{ status_code: '', status_class: '' }, true],
    [{ status_code: '200', status_class: '2xx', grpc_status: '0' }, false],
    [{ status_code: '200', status_class: '2xx', grpc_status: '14' }, true],
  ];
  for (const [l, want] of cases) t.equal(isFailure(l), want, JSON.stringify(l));
});

t.test('renders an aligned table', async (t) => {
  t.equal(
    renderTable(['NAME', 'RPS'], [['a', '1.0'], ['longer', '22.5']], ['l', 'r']),
    ['NAME     RPS', 'a        1.0', 'longer  22.5'].join('\n'),
  );
  const out = renderStat(
    [
      {
        keys: { service: 'faces/smiley', backend: 'faces/smiley-v1' },
        requests: 180,
        rps: 90,
        successRate: 1,
        latency: { p50: 0.0004, p99: 0.012 },
        share: 0.9,
      },
    ],
    { by: ['service', 'backend'], quantiles: [0.5, 0.99], share: true },
  );
  t.equal(
    out,
    [
      'SERVICE       BACKEND          SHARE   RPS  SUCCESS     P50   P99',
      'faces/smiley  faces/smiley-v1  90.0%  90.0  100.00%  0.40ms  12ms',
    ].join('\n'),
  );
  t.match(renderStat([], { by: ['service'] }), /no traffic yet/);
  t.same([quantileLabel(0.5), quantileLabel(0.95), quantileLabel(0.999)], ['p50', 'p95', 'p99_9']);
  t.same([formatLatency(0.00025), formatLatency(0.0042), formatLatency(0.25), formatLatency(2.5), formatLatency(NaN)], ['0.25ms', '4.2ms', '250ms', '2.50s', '-']);
});

t.test('outbound tables show retries per second, shed requests and ejections', async (t) => {
  const scrape = (at: number, retries: number, shed: number, ejections: number, reqs: number): TargetScrape => ({
    target: 'a',
    at,
    samples: parseExposition([
      `weft_requests_total{direction="outbound",dst_namespace="shop",dst_service="cart",backend="shop/cart",status_code="200",status_class="2xx"} ${reqs}`,
      `weft_retries_total{dst_namespace="shop",dst_service="cart",route_kind="HTTPRoute",route_namespace="shop",route_name="r",route_rule="",backend="shop/cart",reason="connect_refused"} ${retries}`,
      `weft_retries_total{dst_namespace="shop",dst_service="cart",route_kind="HTTPRoute",route_namespace="shop",route_name="r",route_rule="",backend="shop/cart",reason="status"} ${retries}`,
      `weft_requests_shed_total{dst_namespace="shop",dst_service="cart",backend="shop/cart"} ${shed}`,
      `weft_endpoint_ejections_total{dst_namespace="shop",dst_service="cart",backend="shop/cart",endpoint="10.0.0.1:8080"} ${ejections}`,
    ].join('\n')),
  });
  const rows = aggregate([scrape(0, 10, 0, 1, 100)], [scrape(10_000, 30, 5, 2, 600)], { by: ['service'] });
  t.equal(rows.length, 1);
  t.equal(rows[0]!.retries, 40);
  t.equal(rows[0]!.retryRate, 4);
  t.equal(rows[0]!.shed, 5);
  t.equal(rows[0]!.ejections, 1);
  const text = renderStat(rows, { by: ['service'], resilience: true });
  t.match(text, /SERVICE\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99\s+RETRIES\s+SHED\s+EJECTIONS/);
  t.match(text, /shop\/cart\s+50\.0\s+100\.00%.*\s4\.0\s+5\s+1$/m);
  const inbound = aggregate([scrape(0, 10, 0, 1, 100)], [scrape(10_000, 30, 5, 2, 600)], { by: ['workload'] });
  t.same(inbound, [], 'inbound tables do not count the callers’ retries');
});

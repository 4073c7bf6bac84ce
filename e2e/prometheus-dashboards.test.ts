// The dashboards work on real data: a real Prometheus (Debian's) scrapes the
// sidecars and control of a real local mesh (`weft up`) every second while a
// client sends traffic through a split route, which the test shifts from
// 50/50 to 70/30 by editing the HTTPRoute. Then every query of every panel
// of every dashboard, with its template variables set to real values,
// returns data through Prometheus' HTTP API; the per-backend panel shows both
// backends in the configured ratio, before and after the shift; and
// `weft stat`, from Prometheus and from the sidecars' admin endpoints, shows
// the same split.
import t from 'tap';
import { HISTOGRAM_METRICS, METRIC_LABELS } from '../api/index.js';
import {
  loadDashboards,
  parseLabelValues,
  substitute,
  targets,
  variableQuery,
} from './helpers/dashboards.js';
import {
  configDir,
  docs,
  writeConfig,
  echoWorkload,
  httpRequest,
  meshGet,
  service,
  startMesh,
  weft,
  type Mesh,
} from './helpers/mesh.js';
import { startPrometheus, type Prometheus } from './helpers/prometheus.js';

const NS = 'shop';
const W1 = 70;
const W2 = 30;
/**
 * How far an observed share of n weighted picks may stray from p: 4.5
 * standard deviations of a binomial proportion (a false alarm about once in
 * 150,000 runs), plus 0.02 for Prometheus' rate extrapolation at the window's
 * edges. ~900 requests in 10 s give ±0.09.
 */
function tolerance(p: number, n: number): number {
  return 4.5 * Math.sqrt((p * (1 - p)) / Math.max(n, 1)) + 0.02;
}

const route = (w1: number, w2: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-split
  namespace: ${NS}
spec:
  parentRefs:
    - { group: "", kind: Service, name: web, port: 80 }
  rules:
    - backendRefs:
        - { name: web-v1, port: 80, weight: ${w1} }
        - { name: web-v2, port: 80, weight: ${w2} }
`;

/**
 * web-v1 admits only the client's identity (the Workload dashboard's
 * Authorization panels): web-v2 calling it is refused with 403.
 */
const AUTHZ = `apiVersion: policy.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata:
  name: web-v1-from-client
  namespace: ${NS}
spec:
  targetRefs:
    - { group: "", kind: Pod, selector: { matchLabels: { app: web, version: v1 } } }
  action: ALLOW
  rules:
    - sources: [{ type: ServiceAccount, serviceAccount: { name: client } }]
`;

/** Sends requests through the client's sidecar until stopped: mostly 200s, some 404s and 500s. */
function traffic(mesh: Mesh): { stop(): Promise<void>; sent(): number; failures(): string[] } {
  const client = mesh.pod('client');
  const web1 = mesh.pod('web-v1');
  const web2 = mesh.pod('web-v2');
  let stopped = false;
  let sent = 0;
  const failures: string[] = [];
  const worker = async (w: number) => {
    for (let i = 0; !stopped; i++) {
      const path = i % 20 === 7 ? '/status/404' : i % 20 === 13 ? '/status/500' : `/ok`;
      try {
        // Worker 2 also makes web-v1 call client now and then, so one
        // workload has traffic in both directions for the Workload dashboard.
        // Those calls use a new connection each (no keep-alive), so its
        // sidecar also has closed connections and their bytes to show.
        if (w === 2 && i % 4 === 0) {
          await httpRequest(`http://client.${NS}${path}`, { proxy: `${web1.podIP}:7001`, keepAlive: false, timeoutMs: 5000 });
        }
        // Worker 1 now and then has web-v2 (service account web) call web-v1, which only admits the client: 403.
        else if (w === 1 && i % 5 === 0) {
          const r = await httpRequest(`http://web-v1.${NS}/ok`, { proxy: `${web2.podIP}:7001`, timeoutMs: 5000 });
          if (r.status !== 403 && failures.length < 10) failures.push(`web-v2 → web-v1 answered ${r.status}, not 403`);
        }
        else await meshGet(client.podIP, `http://web.${NS}${path}`, { timeoutMs: 5000 });
        sent++;
      } catch (e) {
        if (failures.length < 10) failures.push(`worker ${w}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // ~40 rps per worker: enough for every series, little CPU on 2 cores.
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const workers = [0, 1, 2].map(worker);
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
    sent: () => sent,
    failures: () => failures,
  };
}

async function waitForData(prom: Prometheus, expr: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = await prom.query(expr).catch(() => []);
    if (r.length > 0) return;
    if (Date.now() > end) throw new Error(`no data for ${expr} after ${timeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

function shares(rows: Array<{ backend: string; value: number }>): { share: Map<string, number>; total: number } {
  const total = rows.reduce((a, r) => a + r.value, 0);
  return { share: new Map(rows.map((r) => [r.backend.replace(/^.*\//, ''), r.value / total])), total };
}

t.test('every dashboard query returns data from a real Prometheus scraping a real mesh', async (t) => {
  const dir = configDir(t, {
    'services.yaml': docs(
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
      service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
      service({ name: 'web-v1', namespace: NS, selector: { app: 'web', version: 'v1' } }),
      service({ name: 'web-v2', namespace: NS, selector: { app: 'web', version: 'v2' } }),
      service({ name: 'client', namespace: NS, selector: { app: 'client' } }),
    ),
    'route.yaml': route(50, 50),
    'authz.yaml': AUTHZ,
    'workloads.yaml': docs(
      echoWorkload({ name: 'web-v1', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'v1' }, calls: ['client'] }),
      echoWorkload({ name: 'web-v2', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'v2' } }),
      echoWorkload({ name: 'client', namespace: NS, labels: { app: 'client' }, calls: ['web'] }),
    ),
  });
  const mesh = await startMesh(t, dir);
  t.teardown(() => mesh.stop());

  const sidecars = mesh.pods.map((p) => `${p.podIP}:7090`);
  const controlAdmin = mesh.controlAdmin.replace(/^http:\/\//, '');
  const prom = await startPrometheus({
    jobs: [
      { job: 'weft-sidecars', targets: sidecars },
      { job: 'weft-control', targets: [controlAdmin] },
    ],
    scrapeIntervalS: 1,
  });
  t.teardown(() => prom.stop());
  await prom.waitForTargets(sidecars.length + 1);

  const load = traffic(mesh);
  t.teardown(() => load.stop());
  await waitForData(prom, `weft_requests_total{direction="outbound",dst_service="web"}`, 20_000);
  // 50/50 for a while, then shift to 70/30 as a canary rollout would, and
  // let a 10 s window after the shift fill up.
  await new Promise((r) => setTimeout(r, 11_000));
  const shiftedAt = Date.now() / 1000;
  writeConfig(dir, 'route.yaml', route(W1, W2));
  await new Promise((r) => setTimeout(r, 13_000));

  // Grafana's $__rate_interval grows with the time range; a minute covers
  // this mesh's whole life, so events of its start (pushes, certificates)
  // are in range as they would be on a real dashboard.
  const window = '1m';
  const vars = { namespace: NS, service: 'web', workload: 'web-v1' };
  const ratio = (w1: number, w2: number) => w1 / (w1 + w2);
  const dashboards = loadDashboards();

  await t.test('template variables list the values the mesh has', async (t) => {
    for (const d of dashboards) {
      for (const v of d.json.templating.list) {
        if (v.type !== 'query') continue;
        const lv = parseLabelValues(variableQuery(v))!;
        const sel = substitute(lv.selector, vars, window);
        const values = new Set((await prom.query(`count by (${lv.label}) (${sel})`)).map((s) => s.metric[lv.label]));
        const want = vars[v.name as keyof typeof vars];
        t.ok(values.has(want), `${d.file} $${v.name} offers "${want}" (got ${[...values].join(', ')})`);
      }
    }
  });

  await t.test('every panel query returns data', async (t) => {
    let n = 0;
    for (const d of dashboards) {
      for (const q of targets(d)) {
        const expr = substitute(q.expr, vars, window);
        const res = await prom.query(expr);
        t.ok(res.length > 0, `${d.json.uid} "${q.panelTitle}" ${q.refId} returns data: ${expr}`);
        const finite = res.filter((s) => Number.isFinite(Number(s.value[1])));
        t.ok(finite.length > 0, `${d.json.uid} "${q.panelTitle}" ${q.refId} has a number, not only NaN: ${JSON.stringify(res.slice(0, 3))}`);
        n++;
      }
    }
    t.comment(`${n} queries evaluated`);
  });

  await t.test('every metric weft declares is exported by some target', async (t) => {
    const families = await prom.metadata();
    for (const name of Object.keys(METRIC_LABELS)) {
      const want = HISTOGRAM_METRICS.includes(name) ? 'histogram' : undefined;
      t.ok(families[name], `${name} is exported`);
      if (want) t.equal(families[name]?.[0]?.type, want, `${name} is a histogram`);
    }
  });

  await t.test('the per-backend panel shows the split in its configured ratio', async (t) => {
    const routes = dashboards.find((d) => d.json.uid === 'weft-service-routes')!;
    const panel = targets(routes).find((x) => x.panelTitle === 'Requests by backend')!;
    t.ok(panel, 'the Service dashboard has the per-backend panel');
    // The panel's own query over the last 10 s (all after the shift), and
    // over the 10 s before the shift.
    const at = async (time: number) => {
      const res = await prom.query(substitute(panel.expr, vars, '10s'), time);
      return shares(res.map((s) => ({ backend: s.metric.backend ?? '', value: Number(s.value[1]) })));
    };
    const before = await at(shiftedAt - 0.5);
    const after = await at(Date.now() / 1000);
    for (const [when, got, w1, w2] of [['before the shift', before, 50, 50], ['after the shift', after, W1, W2]] as const) {
      // The panel shows requests per second; over 10 s that is 10× as many requests.
      const n = got.total * 10;
      const tol = tolerance(ratio(w1, w2), n);
      t.same([...got.share.keys()].sort(), ['web-v1', 'web-v2'], `${when}: both backends of the split`);
      t.ok(Math.abs((got.share.get('web-v1') ?? 0) - ratio(w1, w2)) < tol, `${when}: web-v1 share ${got.share.get('web-v1')?.toFixed(3)} ≈ ${w1}% ±${tol.toFixed(3)} (${Math.round(n)} requests)`);
      t.ok(Math.abs((got.share.get('web-v2') ?? 0) - ratio(w2, w1)) < tol, `${when}: web-v2 share ${got.share.get('web-v2')?.toFixed(3)} ≈ ${w2}% ±${tol.toFixed(3)}`);
    }
    const moved = (after.share.get('web-v1') ?? 0) - (before.share.get('web-v1') ?? 0);
    // Expected +0.20; the two windows' noise is ~0.03 each.
    t.ok(moved > 0.08, `the shift is visible: web-v1 went from ${before.share.get('web-v1')?.toFixed(3)} to ${after.share.get('web-v1')?.toFixed(3)}`);

    const sharePanel = targets(routes).find((x) => x.panelTitle === 'Share of requests by backend')!;
    const shareRes = await prom.query(substitute(sharePanel.expr, vars, '10s'));
    const sum = shareRes.reduce((a, s) => a + Number(s.value[1]), 0);
    t.ok(Math.abs(sum - 1) < 1e-6, `the share panel's shares add up to 1 (${sum})`);
  });

  await t.test('weft stat from Prometheus shows the split', async (t) => {
    const p = weft(t, ['stat', 'backends', 'web', '-n', NS, '--prometheus', prom.url, '--window', '10s', '-o', 'json']);
    const { code } = await p.exited;
    t.equal(code, 0, p.stderr());
    const out = JSON.parse(p.stdout()) as { rows: Array<{ service: string; backend: string; requests: number; rps: number; share: number; successRate: number; latency: Record<string, number | null> }> };
    const rows = out.rows.filter((r) => r.service === `${NS}/web`);
    t.same(rows.map((r) => r.backend.replace(/^.*\//, '')).sort(), ['web-v1', 'web-v2']);
    const n = rows.reduce((a, r) => a + r.requests, 0);
    for (const r of rows) {
      const want = r.backend.endsWith('web-v1') ? W1 / (W1 + W2) : W2 / (W1 + W2);
      const tol = tolerance(want, n);
      t.ok(Math.abs(r.share - want) < tol, `${r.backend} share ${r.share.toFixed(3)} ≈ ${want} ±${tol.toFixed(3)} (${Math.round(n)} requests)`);
      t.ok(r.rps > 1, `${r.backend} rps ${r.rps}`);
      // 1 in 20 requests is a 500: success is ~95%.
      t.ok(r.successRate > 0.85 && r.successRate < 1, `${r.backend} success ${r.successRate}`);
      t.ok((r.latency.p50 ?? 0) > 0, `${r.backend} p50 ${r.latency.p50}`);
    }
    const routes = weft(t, ['stat', 'routes', 'web', '-n', NS, '--prometheus', prom.url, '--window', '10s', '-o', 'json']);
    t.equal((await routes.exited).code, 0, routes.stderr());
    const routeRows = (JSON.parse(routes.stdout()) as { rows: Array<{ service: string; route: string; share: number }> }).rows;
    t.same(routeRows.map((r) => [r.service, r.route, r.share]), [[`${NS}/web`, `HTTPRoute ${NS}/web-split`, 1]], 'one route carries all of web');
    const wl = weft(t, ['stat', 'workloads', '-n', NS, '--prometheus', prom.url, '--window', '10s', '-o', 'json']);
    t.equal((await wl.exited).code, 0, wl.stderr());
    const wlRows = (JSON.parse(wl.stdout()) as { rows: Array<{ workload: string; rps: number }> }).rows;
    t.same(wlRows.map((r) => r.workload).sort(), [`${NS}/client`, `${NS}/web-v1`, `${NS}/web-v2`], 'inbound traffic per workload');
    const table = weft(t, ['stat', '-n', NS, '--prometheus', prom.url, '--window', '10s']);
    await table.exited;
    t.match(table.stdout(), /SERVICE\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99/, 'a table with the linkerd-style columns');
    t.match(table.stdout(), new RegExp(`${NS}/web\\s+\\d`), 'a row for the Service');
  });

  await t.test('weft stat from the sidecars (found through control) shows the split', async (t) => {
    const p = weft(t, ['stat', 'backends', '-n', NS, '--control-admin', controlAdmin, '--window', '5s', '-o', 'json']);
    const { code } = await p.exited;
    t.equal(code, 0, p.stderr());
    const out = JSON.parse(p.stdout()) as { rows: Array<{ service: string; backend: string; requests: number; share: number; rps: number }> };
    const rows = out.rows.filter((r) => r.service === `${NS}/web`);
    t.same(rows.map((r) => r.backend.replace(/^.*\//, '')).sort(), ['web-v1', 'web-v2']);
    const n = rows.reduce((a, r) => a + r.requests, 0);
    for (const r of rows) {
      const want = r.backend.endsWith('web-v1') ? W1 / (W1 + W2) : W2 / (W1 + W2);
      const tol = tolerance(want, n);
      t.ok(Math.abs(r.share - want) < tol, `${r.backend} share ${r.share.toFixed(3)} ≈ ${want} ±${tol.toFixed(3)} (${n} requests)`);
    }
  });

  await load.stop();
  t.notOk(load.failures().some((f) => f.includes('not 403')), `web-v2 → web-v1 was always refused by the AuthorizationPolicy (${load.failures().join('; ')})`);
  t.ok(load.sent() > 200, `the client sent ${load.sent()} requests (${load.failures().join('; ') || 'no transport errors'})`);
});

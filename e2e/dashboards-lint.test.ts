// The Grafana dashboards in deploy/grafana are valid, importable anywhere
// (datasource variable, stable uids) and query only what weft exports:
// every metric and label comes from api/metrics.ts. promtool checks that
// every query is PromQL Prometheus accepts.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HISTOGRAM_METRICS, METRIC_LABELS } from '../api/index.js';
import {
  allPanels,
  legendLabels,
  loadDashboards,
  parseLabelValues,
  scanPromQL,
  substitute,
  targets,
  variableQuery,
} from './helpers/dashboards.js';

const run = promisify(execFile);

// Labels Prometheus adds to every scraped series, whatever the scrape config.
const TARGET_LABELS = ['instance', 'job'];

// PromQL functions and aggregations the dashboards may use.
const FUNCTIONS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'deriv', 'histogram_quantile', 'time', 'vector', 'scalar',
  'clamp_min', 'clamp_max', 'abs', 'label_replace', 'label_join', 'max_over_time', 'min_over_time',
  'avg_over_time', 'absent', 'sort', 'sort_desc', 'changes', 'resets', 'timestamp', 'round',
]);

/** metric name as queried → the metric it belongs to and the labels it carries. */
function knownSeries(): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [name, labels] of Object.entries(METRIC_LABELS)) {
    if (HISTOGRAM_METRICS.includes(name)) {
      m.set(`${name}_bucket`, [...labels, 'le']);
      m.set(`${name}_sum`, [...labels]);
      m.set(`${name}_count`, [...labels]);
    } else {
      m.set(name, [...labels]);
    }
  }
  return m;
}

const dashboards = loadDashboards();
const series = knownSeries();

t.test('there are the four dashboards, each valid JSON', async (t) => {
  t.same(
    dashboards.map((d) => d.json.uid).sort(),
    ['weft-control-plane', 'weft-mesh-overview', 'weft-service-routes', 'weft-workload'],
  );
  for (const d of dashboards) {
    t.ok(typeof d.json.title === 'string' && d.json.title.length > 0, `${d.file} has a title`);
    t.ok(Array.isArray(d.json.panels) && d.json.panels.length > 0, `${d.file} has panels`);
    t.ok((d.json.schemaVersion as number) >= 36, `${d.file} schemaVersion is current`);
    t.equal(d.json.id, null, `${d.file} has no instance id (import assigns one)`);
  }
});

t.test('uids are unique across dashboards and panel ids unique within each', async (t) => {
  const uids = dashboards.map((d) => d.json.uid);
  t.equal(new Set(uids).size, uids.length, 'uids unique');
  for (const uid of uids) t.match(uid, /^weft-[a-z0-9-]{1,35}$/, 'uid is stable, short and weft-prefixed');
  for (const d of dashboards) {
    const ids = allPanels(d).map((p) => p.id);
    t.ok(ids.every((id) => Number.isInteger(id)), `${d.file}: every panel has an id`);
    t.equal(new Set(ids).size, ids.length, `${d.file}: panel ids unique`);
  }
});

t.test('every dashboard has the datasource variable and every panel and query uses it', async (t) => {
  for (const d of dashboards) {
    const vars = d.json.templating.list;
    const ds = vars.find((v) => v.name === 'datasource');
    t.ok(ds, `${d.file}: has $datasource`);
    t.equal(ds?.type, 'datasource', `${d.file}: $datasource is a datasource variable`);
    t.equal(ds?.query, 'prometheus', `${d.file}: $datasource picks Prometheus data sources`);
    const usesVar = (x: unknown) =>
      x === '${datasource}' || (typeof x === 'object' && x !== null && (x as { uid?: string }).uid === '${datasource}');
    for (const p of allPanels(d)) {
      if (p.type === 'row') continue;
      t.ok(usesVar(p.datasource), `${d.file}: panel ${p.id} "${p.title}" uses \${datasource}`);
      t.ok((p.targets ?? []).length > 0, `${d.file}: panel ${p.id} "${p.title}" has queries`);
      for (const q of p.targets ?? []) {
        t.ok(q.datasource === undefined || usesVar(q.datasource), `${d.file}: panel ${p.id} query ${q.refId} uses \${datasource}`);
      }
    }
    for (const v of vars) {
      if (v.type === 'query') t.ok(usesVar(v.datasource), `${d.file}: variable ${v.name} uses \${datasource}`);
    }
  }
});

t.test('every query names only exported metrics and their labels', async (t) => {
  let checked = 0;
  for (const d of dashboards) {
    const varNames = new Set(d.json.templating.list.map((v) => v.name));
    for (const q of targets(d)) {
      const where = `${d.file} panel ${q.panelId} "${q.panelTitle}" ${q.refId}`;
      const scan = scanPromQL(q.expr);
      t.ok(scan.metrics.length > 0, `${where}: names a metric`);
      const allowed = new Set<string>(TARGET_LABELS);
      for (const m of scan.metrics) {
        const labels = series.get(m);
        t.ok(labels, `${where}: ${m} is a metric weft exports`);
        for (const l of labels ?? []) allowed.add(l);
      }
      for (const s of scan.selectors) {
        const own = new Set([...(series.get(s.metric) ?? []), ...TARGET_LABELS]);
        for (const l of s.labels) t.ok(own.has(l), `${where}: ${s.metric} has label ${l}`);
      }
      for (const l of scan.grouping) t.ok(allowed.has(l), `${where}: grouping label ${l} exists`);
      for (const l of legendLabels(q.legendFormat)) t.ok(allowed.has(l), `${where}: legend label ${l} exists`);
      for (const f of scan.functions) t.ok(FUNCTIONS.has(f), `${where}: ${f}() is a PromQL function`);
      for (const m of q.expr.matchAll(/\$\{?(\w+)/g)) {
        t.ok(m[1].startsWith('__') || varNames.has(m[1]), `${where}: variable $${m[1]} is defined`);
      }
      checked++;
    }
    for (const v of d.json.templating.list) {
      if (v.type !== 'query') continue;
      const lv = parseLabelValues(variableQuery(v));
      t.ok(lv, `${d.file}: variable ${v.name} is a label_values() query`);
      if (!lv) continue;
      const scan = scanPromQL(lv.selector);
      t.equal(scan.metrics.length, 1, `${d.file}: variable ${v.name} names one metric`);
      const labels = new Set(series.get(scan.metrics[0]) ?? []);
      t.ok(labels.has(lv.label), `${d.file}: variable ${v.name}: ${scan.metrics[0]} has label ${lv.label}`);
      for (const s of scan.selectors) for (const l of s.labels) t.ok(labels.has(l), `${d.file}: variable ${v.name} filters on ${l}`);
    }
  }
  t.ok(checked >= 40, `checked ${checked} queries`);
});

t.test('the scanner itself finds names (so the checks above are not vacuous)', async (t) => {
  const s = scanPromQL(
    'sum by (backend) (rate(weft_requests_total{direction="outbound",dst_service=~"$service"}[$__rate_interval])) / ignoring (backend) group_left sum(rate(x_total{a!="b"}[1m]))',
  );
  t.same(s.metrics, ['weft_requests_total', 'x_total']);
  t.same(s.selectors, [
    { metric: 'weft_requests_total', labels: ['direction', 'dst_service'] },
    { metric: 'x_total', labels: ['a'] },
  ]);
  t.same(s.grouping, ['backend', 'backend']);
  t.same(s.functions, ['sum', 'rate', 'sum', 'rate']);
  t.equal(series.has('weft_request_duration_seconds_bucket'), true);
  t.equal(series.has('weft_request_duration_seconds'), false, 'a histogram is queried by its series, not its name');
});

t.test('promtool accepts every query as PromQL', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-dash-lint-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rules: string[] = [];
  const vars = { namespace: 'default', service: 'web', workload: 'web', datasource: 'prometheus' };
  for (const d of dashboards) {
    for (const q of targets(d)) rules.push(substitute(q.expr, vars, '1m'));
    for (const v of d.json.templating.list) {
      const lv = v.type === 'query' ? parseLabelValues(variableQuery(v)) : undefined;
      if (lv) rules.push(substitute(lv.selector, vars, '1m'));
    }
  }
  const yaml =
    'groups:\n  - name: dashboards\n    rules:\n' +
    rules.map((e, i) => `      - record: weft:dashboard_query_${i}\n        expr: ${JSON.stringify(e)}\n`).join('');
  writeFileSync(join(dir, 'rules.yml'), yaml);
  const { stdout } = await run('promtool', ['check', 'rules', join(dir, 'rules.yml')]);
  t.match(stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

t.test('the JSON files are what build.mjs writes (no hand edits drift)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-dash-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // build.mjs writes next to itself; run a copy in a temp dir and compare.
  const { readFileSync, copyFileSync } = await import('node:fs');
  const src = new URL('../deploy/grafana/build.mjs', import.meta.url).pathname;
  copyFileSync(src, join(dir, 'build.mjs'));
  await run(process.execPath, [join(dir, 'build.mjs')]);
  for (const d of dashboards) {
    const built = readFileSync(join(dir, d.file), 'utf8');
    const committed = readFileSync(new URL(`../deploy/grafana/${d.file}`, import.meta.url), 'utf8');
    t.equal(built, committed, `${d.file} matches build.mjs`);
  }
});

t.test('the deploy files that ship the dashboards and scrape config are valid', async (t) => {
  const { readFileSync, readdirSync } = await import('node:fs');
  const YAML = await import('yaml');
  const deploy = (p: string) => new URL(`../deploy/${p}`, import.meta.url).pathname;

  const kust = YAML.parse(readFileSync(deploy('grafana/kustomization.yaml'), 'utf8')) as {
    configMapGenerator: Array<{ files: string[] }>;
    generatorOptions: { labels: Record<string, string> };
  };
  const jsonFiles = readdirSync(deploy('grafana')).filter((f) => f.endsWith('.json')).sort();
  t.same([...kust.configMapGenerator[0]!.files].sort(), jsonFiles, 'the ConfigMap holds every dashboard');
  t.equal(kust.generatorOptions.labels.grafana_dashboard, '1', "labelled for Grafana's dashboard sidecar");

  const monitors = YAML.parseAllDocuments(readFileSync(deploy('prometheus/podmonitor.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; apiVersion: string; spec: { podMetricsEndpoints: Array<{ port: string }> } });
  t.same(monitors.map((m) => `${m.apiVersion} ${m.kind}`), ['monitoring.coreos.com/v1 PodMonitor', 'monitoring.coreos.com/v1 PodMonitor']);
  t.same(monitors.map((m) => m.spec.podMetricsEndpoints[0]!.port), ['weft-admin', 'admin'], 'the port names the injector and weft install declare');

  // Debian's promtool has no Kubernetes discovery: swap it for a static
  // target so promtool still checks every relabelling rule and regex.
  const cfg = YAML.parse(readFileSync(deploy('prometheus/scrape-config.yaml'), 'utf8')) as {
    scrape_configs: Array<Record<string, unknown> & { job_name: string }>;
  };
  t.same(cfg.scrape_configs.map((j) => j.job_name), ['weft-sidecars', 'weft-control', 'weft-annotated-pods']);
  for (const j of cfg.scrape_configs) {
    t.ok(Array.isArray(j.kubernetes_sd_configs), `${j.job_name} discovers pods`);
    delete j.kubernetes_sd_configs;
    j.static_configs = [{ targets: ['127.0.0.1:7090'] }];
  }
  const dir = mkdtempSync(join(tmpdir(), 'weft-scrape-lint-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'prometheus.yml'), YAML.stringify(cfg));
  const { stdout } = await run('promtool', ['check', 'config', '--syntax-only', join(dir, 'prometheus.yml')]);
  t.match(stdout, /SUCCESS/);
});

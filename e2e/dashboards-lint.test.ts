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
  lintDashboards,
  loadDashboards,
  parseLabelValues,
  queryableSeries,
  scanPromQL,
  substitute,
  targets,
  variableQuery,
  type Dashboard,
} from './helpers/dashboards.js';

const run = promisify(execFile);

const dashboards = loadDashboards();
const series = queryableSeries(METRIC_LABELS, HISTOGRAM_METRICS);

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

t.test('uids, panel ids, the datasource variable and every query pass the lint', async (t) => {
  const { problems, queries } = lintDashboards(dashboards, series);
  t.same(problems, [], 'no problems');
  t.ok(queries >= 60, `checked ${queries} queries`);
  const panels = dashboards.reduce((n, d) => n + allPanels(d).length, 0);
  t.ok(panels >= 50, `${panels} panels`);
});

t.test('the lint catches each kind of mistake (it is not vacuous)', async (t) => {
  const good = dashboards.find((d) => d.json.uid === 'weft-service-routes')!;
  const bad = JSON.parse(JSON.stringify(good)) as Dashboard;
  const panels = bad.json.panels.filter((p) => p.type !== 'row');
  panels[0]!.targets![0]!.expr = 'sum(rate(weft_requests{direction="outbound"}[5m]))';
  panels[1]!.targets![0]!.expr = 'sum(rate(weft_requests_total{path="/x"}[5m]))';
  panels[2]!.targets![0]!.expr = 'sum by (pod) (rate(weft_requests_total[5m]))';
  panels[3]!.targets![0]!.expr = 'histogram_quantile(0.5, sum by (le) (rate(weft_request_duration_seconds[5m])))';
  panels[4]!.targets![0]!.expr = 'sum(rate(weft_requests_total{dst_service="$svc"}[5m]))';
  panels[5]!.targets![0]!.legendFormat = '{{route}}';
  panels[6]!.targets![0]!.expr = 'summ(rate(weft_requests_total[5m]))';
  panels[7]!.datasource = { type: 'prometheus', uid: 'P1809F7CD0C75ACF3' };
  panels[8]!.id = panels[9]!.id;
  bad.json.templating.list = bad.json.templating.list.filter((v) => v.name !== 'datasource');
  const twin = { ...good, file: 'twin.json' };
  const { problems } = lintDashboards([bad, twin], series);
  const expect = [
    /weft_requests is not a metric weft exports/,
    /weft_requests_total has no label path/,
    /grouping by unknown label pod/,
    /weft_request_duration_seconds is not a metric weft exports/,
    /variable \$svc is not defined/,
    /legend names unknown label route/,
    /summ\(\) is not a PromQL function/,
    /does not use \$\{datasource\}/,
    /panel id \d+ is used twice/,
    /no datasource variable/,
    /uid weft-service-routes also used by/,
  ];
  for (const re of expect) t.ok(problems.some((p) => re.test(p)), `caught ${re}`);
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

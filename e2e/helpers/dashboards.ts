// Reading weft's Grafana dashboards (deploy/grafana/*.json) for tests: their
// panel queries, their template variables, and a small PromQL scanner that
// names the metrics, labels and functions a query uses. The scanner is not a
// full PromQL parser (promtool checks syntax); it only has to find names.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Target {
  dashboard: string; // uid
  panelId: number;
  panelTitle: string;
  refId: string;
  expr: string;
  legendFormat: string;
  instant: boolean;
}

export interface Dashboard {
  file: string;
  json: Record<string, unknown> & {
    uid: string;
    title: string;
    panels: Panel[];
    templating: { list: Variable[] };
  };
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string } | string | null;
  targets?: Array<{ expr?: string; refId: string; legendFormat?: string; instant?: boolean; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

export interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  definition?: string;
  datasource?: { uid?: string } | string;
}

export const DASHBOARD_DIR = new URL('../../deploy/grafana/', import.meta.url).pathname;

/** Every dashboard JSON in deploy/grafana (throws with the file name when one does not parse). */
export function loadDashboards(dir: string = DASHBOARD_DIR): Dashboard[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const text = readFileSync(join(dir, file), 'utf8');
      try {
        return { file, json: JSON.parse(text) as Dashboard['json'] };
      } catch (e) {
        throw new Error(`${file}: ${(e as Error).message}`);
      }
    });
}

/** Panels, with the panels of collapsed rows flattened in. */
export function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.json.panels) {
    out.push(p);
    for (const inner of p.panels ?? []) out.push(inner);
  }
  return out;
}

export function targets(d: Dashboard): Target[] {
  const out: Target[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (typeof t.expr !== 'string') continue;
      out.push({
        dashboard: d.json.uid,
        panelId: p.id,
        panelTitle: p.title,
        refId: t.refId,
        expr: t.expr,
        legendFormat: t.legendFormat ?? '',
        instant: t.instant === true,
      });
    }
  }
  return out;
}

export function variableQuery(v: Variable): string {
  return typeof v.query === 'string' ? v.query : v.query.query;
}

/**
 * Replaces Grafana's variables the way Grafana would before sending a query:
 * `$name`, `${name}` and `[[name]]` from `vars` (already regex-escaped values
 * for multi-value variables), `$__rate_interval`, `$__interval` and `$__range`
 * from `window`.
 */
export function substitute(expr: string, vars: Record<string, string>, window: string): string {
  const all: Record<string, string> = { __rate_interval: window, __interval: window, __range: window, ...vars };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (m, a: string, b: string, c: string) => {
    const name = a ?? b ?? c;
    const v = all[name];
    if (v === undefined) throw new Error(`no value for variable $${name} in ${expr}`);
    return v;
  });
}

export interface Selector {
  metric: string; // '' for a bare {…} selector
  labels: string[];
}

export interface Scan {
  metrics: string[];
  selectors: Selector[];
  /** Labels of by/without/on/ignoring/group_left/group_right lists. */
  grouping: string[];
  functions: string[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

type Tok = { k: 'id' | 'str' | 'num' | 'var' | 'p'; v: string };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < s.length && s[j] !== c) j += s[j] === '\\' && c !== '`' ? 2 : 1;
      out.push({ k: 'str', v: s.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '$') {
      const m = /^\$(\{\w+(?::\w+)?\}|\w+)/.exec(s.slice(i));
      if (!m) throw new Error(`stray $ at ${i} in ${s}`);
      out.push({ k: 'var', v: m[0] });
      i += m[0].length;
    } else if (/[0-9.]/.test(c)) {
      const m = /^[0-9.]+(e[+-]?[0-9]+)?([smhdwy]|ms)*/i.exec(s.slice(i))!;
      out.push({ k: 'num', v: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_:]/.test(c)) {
      const m = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(s.slice(i))!;
      out.push({ k: 'id', v: m[0] });
      i += m[0].length;
    } else {
      const m = /^(=~|!~|!=|==|>=|<=)/.exec(s.slice(i));
      out.push({ k: 'p', v: m ? m[0] : c });
      i += m ? m[0].length : 1;
    }
  }
  return out;
}

/** The metrics, labels and functions a PromQL expression names. */
export function scanPromQL(expr: string): Scan {
  const toks = tokenize(expr);
  const scan: Scan = { metrics: [], selectors: [], grouping: [], functions: [] };
  for (let i = 0; i < toks.length; i++) {
    const t = toks[i];
    if (t.k === 'p' && t.v === '[') {
      while (i < toks.length && !(toks[i].k === 'p' && toks[i].v === ']')) i++;
      continue;
    }
    if (t.k === 'p' && t.v === '{') {
      // Bare selector, or the matchers of the metric just before it.
      const prev = toks[i - 1];
      const metric = prev && prev.k === 'id' && !GROUPING.has(prev.v) ? prev.v : '';
      const sel: Selector = metric ? scan.selectors[scan.selectors.length - 1] : { metric: '', labels: [] };
      if (!metric) scan.selectors.push(sel);
      for (i++; i < toks.length && !(toks[i].k === 'p' && toks[i].v === '}'); i++) {
        const next = toks[i + 1];
        if (toks[i].k === 'id' && next && next.k === 'p' && ['=', '!=', '=~', '!~'].includes(next.v)) {
          if (toks[i].v === '__name__') continue;
          sel.labels.push(toks[i].v);
        }
      }
      continue;
    }
    if (t.k !== 'id') continue;
    const next = toks[i + 1];
    if (GROUPING.has(t.v)) {
      if (next && next.k === 'p' && next.v === '(') {
        for (i += 2; i < toks.length && !(toks[i].k === 'p' && toks[i].v === ')'); i++) {
          if (toks[i].k === 'id') scan.grouping.push(toks[i].v);
        }
      }
      continue;
    }
    if (KEYWORDS.has(t.v.toLowerCase())) continue;
    // A function call, or an aggregation with its grouping first: sum by (x) (…).
    if (next && ((next.k === 'p' && next.v === '(') || (next.k === 'id' && (next.v === 'by' || next.v === 'without')))) {
      scan.functions.push(t.v);
      continue;
    }
    scan.metrics.push(t.v);
    scan.selectors.push({ metric: t.v, labels: [] });
  }
  return scan;
}

/** Labels a legend format (`{{label}}`) names. */
export function legendLabels(fmt: string): string[] {
  return [...fmt.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]);
}

/** `label_values(selector, label)` → its selector and label, or undefined for other variable queries. */
export function parseLabelValues(q: string): { selector: string; label: string } | undefined {
  const m = /^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$/s.exec(q);
  return m ? { selector: m[1], label: m[2] } : undefined;
}

// ---- lint ------------------------------------------------------------------------

/** Labels Prometheus adds to every scraped series, whatever the scrape config. */
export const TARGET_LABELS = ['instance', 'job'];

/** PromQL functions and aggregations dashboards may use. */
export const PROMQL_FUNCTIONS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'topk', 'bottomk', 'quantile', 'stddev', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'deriv', 'histogram_quantile', 'time', 'vector', 'scalar',
  'clamp_min', 'clamp_max', 'abs', 'label_replace', 'label_join', 'max_over_time', 'min_over_time',
  'avg_over_time', 'absent', 'sort', 'sort_desc', 'changes', 'resets', 'timestamp', 'round',
]);

/** Series names as queried (histograms by their _bucket/_sum/_count) → their labels. */
export function queryableSeries(metricLabels: Readonly<Record<string, readonly string[]>>, histograms: readonly string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const [name, labels] of Object.entries(metricLabels)) {
    if (histograms.includes(name)) {
      m.set(`${name}_bucket`, [...labels, 'le']);
      m.set(`${name}_sum`, [...labels]);
      m.set(`${name}_count`, [...labels]);
    } else {
      m.set(name, [...labels]);
    }
  }
  return m;
}

const usesDatasourceVar = (x: unknown): boolean =>
  x === '${datasource}' || (typeof x === 'object' && x !== null && (x as { uid?: string }).uid === '${datasource}');

/**
 * Every problem with a set of dashboards, one line each (empty: clean):
 * uids, panel ids, the datasource variable, and every query's metrics,
 * labels, functions and variables against what weft exports.
 */
export function lintDashboards(dashboards: readonly Dashboard[], series: ReadonlyMap<string, readonly string[]>): { problems: string[]; queries: number } {
  const problems: string[] = [];
  let queries = 0;
  const seenUids = new Map<string, string>();
  for (const d of dashboards) {
    const f = d.file;
    const uid = d.json.uid;
    if (typeof uid !== 'string' || !/^weft-[a-z0-9-]{1,35}$/.test(uid)) problems.push(`${f}: uid "${uid}" is not weft-<name>`);
    if (seenUids.has(uid)) problems.push(`${f}: uid ${uid} also used by ${seenUids.get(uid)}`);
    seenUids.set(uid, f);
    const ids = new Set<number>();
    for (const p of allPanels(d)) {
      if (!Number.isInteger(p.id)) problems.push(`${f}: panel "${p.title}" has no id`);
      else if (ids.has(p.id)) problems.push(`${f}: panel id ${p.id} is used twice`);
      ids.add(p.id);
      if (p.type === 'row') continue;
      if (!usesDatasourceVar(p.datasource)) problems.push(`${f}: panel ${p.id} "${p.title}" does not use \${datasource}`);
      if (!(p.targets ?? []).length) problems.push(`${f}: panel ${p.id} "${p.title}" has no query`);
      for (const q of p.targets ?? []) {
        if (q.datasource !== undefined && !usesDatasourceVar(q.datasource)) problems.push(`${f}: panel ${p.id} query ${q.refId} does not use \${datasource}`);
      }
    }
    const vars = d.json.templating?.list ?? [];
    const ds = vars.find((v) => v.name === 'datasource');
    if (!ds || ds.type !== 'datasource' || ds.query !== 'prometheus') problems.push(`${f}: no datasource variable of type datasource, query prometheus`);
    const varNames = new Set(vars.map((v) => v.name));
    for (const q of targets(d)) {
      queries++;
      const where = `${f}: panel ${q.panelId} "${q.panelTitle}" ${q.refId}`;
      let scan: Scan;
      try {
        scan = scanPromQL(q.expr);
      } catch (e) {
        problems.push(`${where}: ${(e as Error).message}`);
        continue;
      }
      if (scan.metrics.length === 0) problems.push(`${where}: names no metric`);
      const allowed = new Set<string>(TARGET_LABELS);
      for (const m of scan.metrics) {
        const labels = series.get(m);
        if (!labels) problems.push(`${where}: ${m} is not a metric weft exports`);
        for (const l of labels ?? []) allowed.add(l);
      }
      for (const s of scan.selectors) {
        const own = new Set([...(series.get(s.metric) ?? []), ...TARGET_LABELS]);
        for (const l of s.labels) if (!own.has(l)) problems.push(`${where}: ${s.metric || '{}'} has no label ${l}`);
      }
      for (const l of scan.grouping) if (!allowed.has(l)) problems.push(`${where}: grouping by unknown label ${l}`);
      for (const l of legendLabels(q.legendFormat)) if (!allowed.has(l)) problems.push(`${where}: legend names unknown label ${l}`);
      for (const fn of scan.functions) if (!PROMQL_FUNCTIONS.has(fn)) problems.push(`${where}: ${fn}() is not a PromQL function`);
      for (const m of q.expr.matchAll(/\$\{?(\w+)/g)) {
        if (!m[1]!.startsWith('__') && !varNames.has(m[1]!)) problems.push(`${where}: variable $${m[1]} is not defined`);
      }
    }
    for (const v of vars) {
      if (v.type !== 'query') continue;
      if (!usesDatasourceVar(v.datasource)) problems.push(`${f}: variable ${v.name} does not use \${datasource}`);
      const lv = parseLabelValues(variableQuery(v));
      if (!lv) {
        problems.push(`${f}: variable ${v.name} is not a label_values() query`);
        continue;
      }
      const scan = scanPromQL(lv.selector);
      if (scan.metrics.length !== 1) {
        problems.push(`${f}: variable ${v.name} must name one metric`);
        continue;
      }
      const labels = new Set(series.get(scan.metrics[0]!) ?? []);
      if (!series.has(scan.metrics[0]!)) problems.push(`${f}: variable ${v.name}: ${scan.metrics[0]} is not a metric weft exports`);
      if (!labels.has(lv.label)) problems.push(`${f}: variable ${v.name}: ${scan.metrics[0]} has no label ${lv.label}`);
      for (const s of scan.selectors) for (const l of s.labels) if (!labels.has(l)) problems.push(`${f}: variable ${v.name} filters on unknown label ${l}`);
    }
  }
  return { problems, queries };
}

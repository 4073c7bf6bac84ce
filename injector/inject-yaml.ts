// `weft inject`: the same patch builder applied offline to a YAML stream.
// Workloads get their pod template injected; everything else passes through.
import { parseAllDocuments, Document } from 'yaml';
import { INJECT_NAMESPACE_LABEL } from '../api/index.js';
import { applyAddOps, buildPatch } from './patch.js';
import { isRecord, type PodLike } from './pod.js';
import type { InjectOptions } from './proxy-spec.js';

export interface InjectReport {
  /** kind/name and what happened, one per workload seen. */
  results: { resource: string; injected: boolean; reason?: string; warnings: string[] }[];
}

/** Where the pod template sits in each kind `weft inject` handles. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
  Pod: [],
};

function getPath(obj: Record<string, unknown>, path: string[]): Record<string, unknown> | undefined {
  let cur: unknown = obj;
  for (const p of path) cur = isRecord(cur) ? cur[p] : undefined;
  return isRecord(cur) ? cur : undefined;
}

/** Injects one object in place where it is a workload; returns a report entry or undefined if not a workload. */
function injectObject(obj: Record<string, unknown>, opts: InjectOptions, report: InjectReport): void {
  const kind = typeof obj['kind'] === 'string' ? obj['kind'] : '';
  if (kind === 'List' && Array.isArray(obj['items'])) {
    for (const it of obj['items']) if (isRecord(it)) injectObject(it, opts, report);
    return;
  }
  const path = TEMPLATE_PATHS[kind];
  if (!path) return;
  const meta = isRecord(obj['metadata']) ? obj['metadata'] : {};
  const resource = `${kind.toLowerCase()}/${String(meta['name'] ?? meta['generateName'] ?? '?')}`;
  const template = path.length === 0 ? obj : getPath(obj, path);
  if (!template) {
    report.results.push({ resource, injected: false, reason: `no pod template at ${path.join('.')}`, warnings: [] });
    return;
  }
  const pod = { ...(template as PodLike), kind: kind === 'Job' || kind === 'CronJob' ? 'Job' : 'Pod' };
  // Asked to inject explicitly: behave as in a namespace labelled for injection (pods can still opt out).
  const r = buildPatch(pod, { [INJECT_NAMESPACE_LABEL]: 'enabled' }, opts);
  if (!r.inject) {
    report.results.push({ resource, injected: false, reason: r.reason, warnings: r.warnings });
    return;
  }
  const patched = applyAddOps(template, r.ops);
  for (const k of Object.keys(template)) delete template[k];
  Object.assign(template, patched);
  report.results.push({ resource, injected: true, warnings: r.warnings });
}

/** Injects every workload of a multi-document YAML stream; non-workload documents come back as they were. */
export function injectYaml(text: string, opts: InjectOptions = {}): { yaml: string; report: InjectReport } {
  const report: InjectReport = { results: [] };
  // Kubernetes reads YAML with 1.1 rules (yes/on/y are booleans): read and write the same way.
  const docs = parseAllDocuments(text, { version: '1.1' });
  if (!Array.isArray(docs)) return { yaml: text, report }; // empty stream
  const out: string[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) throw new Error(`document ${i + 1}: ${doc.errors[0]?.message ?? 'YAML error'}`);
    const js: unknown = doc.toJS();
    if (js === null || js === undefined) continue;
    const before = report.results.filter((r) => r.injected).length;
    if (isRecord(js)) injectObject(js, opts, report);
    const changed = report.results.filter((r) => r.injected).length > before;
    const textOut = changed ? new Document(js, { version: '1.1', aliasDuplicateObjects: false }).toString({ lineWidth: 0 }) : doc.toString({ lineWidth: 0 });
    // A document after the first carries its own "---" marker; the join below adds one.
    out.push(textOut.replace(/^---[ \t]*\n/, ''));
  }
  return { yaml: out.map((d) => (d.endsWith('\n') ? d : d + '\n')).join('---\n'), report };
}


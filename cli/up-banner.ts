// What `weft up` prints about itself: the banner (control, every pod's
// addresses, the logs, the dashboard) and the line saying the mesh is ready.
import { relative } from 'node:path';
import { PORTS } from '../api/index.js';
import { formatHostPort } from './args.js';
import type { UpOptions } from './up-flags.js';
import { workloadKey, type LocalPod } from './up-workloads.js';

/** A path as the user would type it from here. */
function show(dirPath: string): string {
  const rel = relative(process.cwd(), dirPath);
  return rel === '' ? '.' : rel.startsWith('..') ? dirPath : rel;
}

export function bannerText(o: UpOptions, list: readonly LocalPod[], dashboardUrl: string): string {
  const lines: string[] = [
    `weft up ${show(o.dir)}: ${new Set(list.map((x) => workloadKey(x.workload))).size} workloads, ${list.length} pods`,
    o.external
      ? `  control    ${formatHostPort(o.controlAddr)} (already running)`
      : `  control    grpc ${formatHostPort(o.controlAddr)}  admin http://${formatHostPort(o.adminAddr)}  state ${show(o.stateDir)}`,
  ];
  const podW = Math.max(...list.map((x) => `${x.workload.namespace}/${x.name}`.length), 8);
  for (const pod of list) {
    const w = pod.workload;
    const app = w.ports.length ? w.ports.map((x) => `${pod.ip}:${x}`).join(',') : '(no ports)';
    lines.push(
      `  ${`${w.namespace}/${pod.name}`.padEnd(podW)}  pod ${pod.ip.padEnd(13)} app ${app}  sidecar out :${PORTS.outbound} in :${PORTS.inbound} admin http://${pod.ip}:${PORTS.admin}`,
    );
  }
  lines.push(`  logs       ${show(o.logDir)}/<namespace>.<pod>.{app,sidecar}.log`);
  if (dashboardUrl) lines.push(`  dashboard  ${dashboardUrl}`);
  return lines.join('\n');
}

/** "ready: N pods in T ms (sidecar start → ready: median, max)". */
export function readyStatus(runs: readonly { sidecarReadyMs?: number }[], elapsedMs: number): string {
  const cold = runs.map((r) => r.sidecarReadyMs ?? 0).sort((a, b) => a - b);
  const median = cold.length ? cold[Math.floor(cold.length / 2)]! : 0;
  return `ready: ${runs.length} pods in ${elapsedMs} ms (sidecar start → ready: median ${median} ms, max ${cold[cold.length - 1] ?? 0} ms)`;
}

// Reads a V8 .cpuprofile (node --cpu-prof) and sums self time per function,
// the figure that says where a sidecar's CPU goes under wrk. A window (in
// process.hrtime µs, the same monotonic clock V8 stamps samples with) keeps
// only the load period, so start-up (module loading, key generation) does not
// blur the hot path.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  fn: string;
  where: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  /** Busy (non-idle) ms inside the window. */
  totalMs: number;
  /** Window length in ms (0 when the whole profile was used). */
  windowMs: number;
  top: SelfTime[];
  /** Self time by origin: weft code, undici, grpc-js, other packages, node internals, GC, native/program. */
  byOrigin: Array<{ origin: string; pct: number }>;
}

function originOf(cf: CallFrame): string {
  const u = cf.url;
  if (cf.functionName === '(garbage collector)') return 'GC';
  if (cf.functionName === '(program)') return '(program)';
  if (u === '') return 'native (writes, TLS, syscalls)';
  if (u.startsWith('node:')) return 'node internals';
  if (u.includes('/node_modules/undici/')) return 'undici';
  if (u.includes('/node_modules/@grpc/') || u.includes('/node_modules/protobufjs/')) return 'grpc-js/protobuf';
  if (u.includes('/node_modules/prom-client/')) return 'prom-client';
  if (u.includes('/node_modules/')) return 'other packages';
  if (u.includes('/dist/sidecar/')) return 'weft sidecar';
  if (u.includes('/dist/')) return 'weft other';
  return 'other';
}

export function topSelfTime(path: string, n = 15, window?: { fromUs: number; toUs: number }): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of p.nodes) byId.set(node.id, node);
  const self = new Map<string, { fn: string; where: string; us: number }>();
  const origins = new Map<string, number>();
  let total = 0;
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    const dt = p.timeDeltas[i + 1] ?? 0; // a sample's time is the gap to the next one
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') continue;
    total += dt;
    const file = cf.url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '');
    const where = file ? `${file}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName}|${where}`;
    const e = self.get(key) ?? { fn: cf.functionName || '(anonymous)', where, us: 0 };
    e.us += dt;
    self.set(key, e);
    const o = originOf(cf);
    origins.set(o, (origins.get(o) ?? 0) + dt);
  }
  const pct = (us: number): number => (total > 0 ? (100 * us) / total : 0);
  const top = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ fn: e.fn, where: e.where, ms: e.us / 1000, pct: pct(e.us) }));
  const byOrigin = [...origins.entries()].sort((a, b) => b[1] - a[1]).map(([origin, us]) => ({ origin, pct: pct(us) }));
  return { totalMs: total / 1000, windowMs: window ? (window.toUs - window.fromUs) / 1000 : 0, top, byOrigin };
}

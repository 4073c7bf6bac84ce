// CPU and memory of a process from /proc, the same way for every proxy:
// utime+stime in clock ticks (CLK_TCK is 100 on Linux: 10 ms resolution, so
// the bench measures over runs of many seconds) and VmRSS.
import { readFileSync } from 'node:fs';

const TICK_MS = 10;

/** utime+stime of pid, in ms; NaN when the process is gone. */
export function cpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  // The command name (field 2) may hold spaces; fields after ")" are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return (Number(rest[11]) + Number(rest[12])) * TICK_MS;
}

/** utime and stime of pid separately, in ms (user space vs kernel). */
export function cpuSplitMs(pid: number): { user: number; sys: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(rest[11]) * TICK_MS, sys: Number(rest[12]) * TICK_MS };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

/** VmRSS (or another /proc/<pid>/status field, e.g. RssAnon) of pid in MB; NaN when gone. */
export function rssMb(pid: number, field: 'VmRSS' | 'RssAnon' | 'RssFile' = 'VmRSS'): number {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(s);
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Samples VmRSS and RssAnon of several pids every intervalMs until stopped; returns the maxima. */
export function sampleRss(pids: number[], intervalMs = 200): { stop(): { rss: number[]; anon: number[] } } {
  const rss = pids.map(() => Number.NaN);
  const anon = pids.map(() => Number.NaN);
  const take = (): void => {
    pids.forEach((p, i) => {
      const v = rssMb(p);
      const a = rssMb(p, 'RssAnon');
      if (!(v <= rss[i]!)) rss[i] = v;
      if (!(a <= anon[i]!)) anon[i] = a;
    });
  };
  take();
  const t = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(t);
      take();
      return { rss, anon };
    },
  };
}

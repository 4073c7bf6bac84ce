// `weft up`'s live traffic table: every interval the sidecars' /metrics
// become rows per service and backend — redrawn in place on a terminal
// (with the banner, status, config errors and recent messages), appended otherwise.
import { PORTS } from '../api/index.js';
import { httpGet } from './up-probes.js';
import { aggregate, parseExposition, renderStat, type TargetScrape } from './stat-table.js';

export interface TableSources {
  intervalS: number;
  redraw: boolean;
  /** The pod IPs whose sidecars are scraped. */
  podIps: () => string[];
  isStopping: () => boolean;
  banner: () => string;
  status: () => string;
  /** Workload errors and control's config errors, one line each. */
  errors: () => string[];
  recent: readonly string[];
}

/** Starts the table; returns its stop. */
export function startTable(s: TableSources): () => void {
  let prev: TargetScrape[] = [];
  const table = setInterval(() => {
    void Promise.all(
      s.podIps().map(async (ip): Promise<TargetScrape | undefined> => {
        try {
          const res = await httpGet(`http://${ip}:${PORTS.admin}/metrics`, 1000);
          if (res.status !== 200) return undefined;
          return { target: ip, at: Date.now(), samples: parseExposition(res.body) };
        } catch {
          return undefined;
        }
      }),
    ).then((scrapes) => {
      if (s.isStopping()) return;
      const cur = scrapes.filter((x): x is TargetScrape => x !== undefined);
      const rows = aggregate(prev, cur, { by: ['service', 'backend'], quantiles: [0.5, 0.99] });
      prev = cur;
      const text = renderStat(rows, { by: ['service', 'backend'], quantiles: [0.5, 0.99], share: true });
      const stamp = new Date().toISOString().slice(11, 19);
      if (s.redraw) {
        const errs = s.errors().map((e) => `  ${e}`);
        const extra = [
          ...(errs.length ? ['', 'config errors (the last good config keeps serving):', ...errs] : []),
          ...(s.recent.length ? ['', ...s.recent] : []),
        ];
        process.stdout.write(
          `\x1b[H\x1b[2J${s.banner()}\n  ${s.status()}\n\n${stamp}  outbound traffic, last ${s.intervalS} s (Ctrl-C stops)\n${text}\n${extra.join('\n')}\n`,
        );
      } else process.stdout.write(`\n${stamp}  outbound traffic, last ${s.intervalS} s\n${text}\n`);
    });
  }, s.intervalS * 1000);
  return () => clearInterval(table);
}

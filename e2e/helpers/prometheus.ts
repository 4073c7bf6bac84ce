// A real Prometheus (Debian's /usr/bin/prometheus) for tests: started on a
// unique loopback address with a generated config and a temporary TSDB,
// queried through its HTTP API, stopped and cleaned up by the caller.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PROMETHEUS_BIN = process.env.WEFT_PROMETHEUS_BIN ?? '/usr/bin/prometheus';

export interface ScrapeJob {
  job: string;
  /** host:port */
  targets: string[];
  /** Extra labels for every target of the job. */
  labels?: Record<string, string>;
  metricsPath?: string;
}

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  /** http://127.X.Y.Z:PORT */
  url: string;
  /** host:port Prometheus listens on (scrape it to have it scrape itself). */
  address: string;
  /** Instant query; throws on a query error (Prometheus' message included). */
  query(expr: string, time?: number): Promise<Sample[]>;
  /** Metric families the targets export (from their # TYPE lines), even those without series yet. */
  metadata(): Promise<Record<string, Array<{ type: string; help: string }>>>;
  /** Active targets and their health. */
  targets(): Promise<Array<{ labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }>>;
  /** Resolves when every target has been scraped successfully at least `scrapes` times, or throws after `timeoutMs`. */
  waitForTargets(count: number, timeoutMs?: number): Promise<void>;
  /** Replaces the scrape jobs (rewrites the config and reloads Prometheus). */
  setJobs(jobs: ScrapeJob[]): Promise<void>;
  stop(): Promise<void>;
  /** Prometheus' stderr so far (for failure messages). */
  log(): string;
}

/** A random loopback address outside 127.0.0.0/16 (which local-mode pod IPs use). */
export function randomLoopback(): string {
  const r = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
  return `127.${r(100, 250)}.${r(1, 254)}.${r(1, 254)}`;
}

function configYaml(jobs: ScrapeJob[], intervalS: number): string {
  const lines = ['global:', `  scrape_interval: ${intervalS}s`, `  scrape_timeout: ${Math.max(Math.round(intervalS * 800), 500)}ms`, `  evaluation_interval: ${intervalS}s`, 'scrape_configs:'];
  for (const j of jobs) {
    lines.push(`  - job_name: ${JSON.stringify(j.job)}`);
    lines.push(`    metrics_path: ${JSON.stringify(j.metricsPath ?? '/metrics')}`);
    lines.push('    static_configs:');
    lines.push(`      - targets: ${JSON.stringify(j.targets)}`);
    if (j.labels && Object.keys(j.labels).length > 0) lines.push(`        labels: ${JSON.stringify(j.labels)}`);
  }
  return lines.join('\n') + '\n';
}

export async function startPrometheus(opts: { jobs: ScrapeJob[]; scrapeIntervalS?: number; host?: string; port?: number }): Promise<Prometheus> {
  const host = opts.host ?? randomLoopback();
  const port = opts.port ?? 9090;
  const address = `${host}:${port}`;
  const url = `http://${address}`;
  const interval = opts.scrapeIntervalS ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'weft-prom-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, configYaml(opts.jobs, interval));
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=${address}`,
      '--web.enable-lifecycle',
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  let exited = false;
  const exitedP = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));

  async function api<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await fetch(url + path, init);
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  const prom: Prometheus = {
    url,
    address,
    async query(expr, time) {
      const params = new URLSearchParams({ query: expr });
      if (time !== undefined) params.set('time', String(time));
      const data = await api<{ resultType: string; result: Sample[] | [number, string] }>(`/api/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: params.toString(),
      });
      // A scalar result (time(), a number) as one sample without labels.
      if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as [number, string] }];
      return data.result as Sample[];
    },
    async metadata() {
      return api<Record<string, Array<{ type: string; help: string }>>>('/api/v1/metadata');
    },
    async targets() {
      const data = await api<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }> }>('/api/v1/targets?state=active');
      return data.activeTargets;
    },
    async waitForTargets(count, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        if (exited) throw new Error(`prometheus exited: ${stderr}`);
        try {
          const ts = await prom.targets();
          const up = ts.filter((t) => t.health === 'up').length;
          last = ts.map((t) => `${t.scrapeUrl} ${t.health} ${t.lastError}`).join('; ');
          if (ts.length >= count && up === ts.length) return;
        } catch (e) {
          last = (e as Error).message;
        }
        if (Date.now() > end) throw new Error(`prometheus targets not all up after ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async setJobs(jobs) {
      writeFileSync(configFile, configYaml(jobs, interval));
      const res = await fetch(url + '/-/reload', { method: 'POST' });
      if (!res.ok) throw new Error(`prometheus reload: ${res.status} ${await res.text()}`);
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exitedP;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => stderr,
  };

  // Ready when the API answers.
  const end = Date.now() + 20_000;
  for (;;) {
    if (exited) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`prometheus exited at start: ${stderr}`);
    }
    try {
      const res = await fetch(url + '/-/ready');
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > end) {
      await prom.stop();
      throw new Error(`prometheus not ready after 20 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return prom;
}

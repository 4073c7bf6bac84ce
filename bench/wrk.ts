// Closed-loop maximum throughput: wrk -t1 -c50 -dNs, as in the baseline.
import { spawn } from 'node:child_process';

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  non2xx: number;
  socketErrors: number;
  raw: string;
}

export function parseWrk(out: string): WrkResult {
  const req = /(\d+) requests in ([\d.]+)(ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const non = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (!req || !rps) throw new Error(`bench: cannot parse wrk output:\n${out}`);
  const unit = req[3] === 'ms' ? 0.001 : req[3] === 'm' ? 60 : 1;
  return {
    requests: Number(req[1]),
    seconds: Number(req[2]) * unit,
    rps: Number(rps[1]),
    non2xx: non ? Number(non[1]) : 0,
    socketErrors: se ? Number(se[1]) + Number(se[2]) + Number(se[3]) + Number(se[4]) : 0,
    raw: out,
  };
}

export function runWrk(url: string, host: string, opts: { threads?: number; conns?: number; seconds: number }): Promise<WrkResult> {
  const args = [
    `-t${opts.threads ?? 1}`,
    `-c${opts.conns ?? 50}`,
    `-d${opts.seconds}s`,
    '-H',
    `Host: ${host}`,
    url,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`bench: wrk exited ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

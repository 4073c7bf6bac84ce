// Child processes of the bench: started with their output in a log file,
// waited for, and always stopped (the bench never leaves a proxy behind).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  log: string;
  startedAt: bigint;
  exited: boolean;
}

const live = new Set<Proc>();

export function start(name: string, cmd: string, args: string[], logPath: string, env?: NodeJS.ProcessEnv): Proc {
  const fd = openSync(logPath, 'a');
  const startedAt = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: env ?? process.env });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`bench: could not start ${name} (${cmd})`);
  const p: Proc = { name, child, pid: child.pid, log: logPath, startedAt, exited: false };
  live.add(p);
  child.on('exit', () => {
    p.exited = true;
    live.delete(p);
  });
  return p;
}

export function tail(p: Proc, n = 15): string {
  try {
    return readFileSync(p.log, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

export async function stop(p: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<void> {
  if (p.exited) return;
  const gone = new Promise<void>((r) => p.child.once('exit', () => r()));
  p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => stop(p)));
}

/** Synchronous last resort on process exit. */
export function killAllSync(): void {
  for (const p of live) {
    try {
      p.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function waitListening(p: Proc, host: string, port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (p.exited) throw new Error(`bench: ${p.name} exited:\n${tail(p)}`);
    if (await tcpOpen(host, port)) return;
    await sleep(20);
  }
  throw new Error(`bench: ${p.name} not listening on ${host}:${port} after ${timeoutMs} ms:\n${tail(p)}`);
}

export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

export function httpGet(host: string, port: number, path: string, hostHeader?: string, timeoutMs = 3000): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const r = request({ host, port, path, method: 'GET', headers: hostHeader ? { host: hostHeader } : {}, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    r.on('timeout', () => r.destroy(new Error('timeout')));
    r.on('error', reject);
    r.end();
  });
}

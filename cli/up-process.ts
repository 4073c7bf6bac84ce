// One child process of `weft up` (a sidecar or an app), kept running the way
// a kubelet keeps a container: restarted with backoff, output in a log file.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Say } from './up-console.js';

export interface ProcOptions {
  label: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  echo: boolean;
  say: Say;
  restart: boolean;
  onSpawn?: (pid: number) => void;
}

/**
 * Signals the child's whole process group (it leads one, being detached):
 * like a container's processes, whatever the app spawned stops with it.
 */
function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

/**
 * A child process restarted with backoff when it dies (250 ms doubling to
 * 10 s; reset once it has run for 10 s), whose output goes to a log file.
 * Children get their own process group, so a Ctrl-C at the terminal reaches
 * only `weft up`, which then stops them in order.
 */
export class Supervised {
  child: ChildProcess | undefined;
  private stopping = false;
  private failures = 0;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private log: WriteStream;
  private exited: Promise<void> = Promise.resolve();
  /** The last non-empty line the process printed: the likely reason it died. */
  private lastLine = '';

  constructor(private readonly o: ProcOptions) {
    this.log = createWriteStream(o.logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    if (this.stopping) return;
    this.startedAt = Date.now();
    const child = spawn(this.o.command, this.o.args, {
      cwd: this.o.cwd,
      env: this.o.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.child = child;
    this.log.write(`--- ${new Date().toISOString()} start ${this.o.command} ${this.o.args.join(' ')}\n`);
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        this.log.write(chunk);
        const lines = chunk.toString('utf8').split('\n').filter((l) => l.trim() !== '');
        if (lines.length) this.lastLine = lines[lines.length - 1]!.slice(0, 200);
        if (this.o.echo) {
          const text = chunk.toString('utf8').replace(/\n$/, '');
          process.stderr.write(text.split('\n').map((l) => `[${this.o.label}] ${l}\n`).join(''));
        }
      });
    }
    this.exited = new Promise((res) => {
      // 'close', not 'exit': the output is all read by then, so lastLine is the real last line.
      child.once('close', (code, signal) => {
        this.child = undefined;
        this.log.write(`--- ${new Date().toISOString()} exit ${signal ?? code}\n`);
        if (!this.stopping) this.crashed(code, signal);
        res();
      });
    });
    child.once('error', (e) => {
      this.o.say(`${this.o.label}: cannot start ${this.o.command}: ${e.message}`);
    });
    if (child.pid !== undefined) this.o.onSpawn?.(child.pid);
  }

  private crashed(code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.o.restart) return;
    if (Date.now() - this.startedAt > 10_000) this.failures = 0;
    const delay = Math.min(10_000, 250 * 2 ** this.failures);
    this.failures++;
    // A crash loop must not bury everything else: the first few, then every tenth.
    if (this.failures <= 3 || this.failures % 10 === 0) {
      const why = this.lastLine ? `: ${this.lastLine}` : '';
      this.o.say(
        `${this.o.label} exited (${signal ?? `code ${code}`})${why}; restart #${this.failures} in ${delay} ms — log: ${this.o.logFile}`,
      );
    }
    this.timer = setTimeout(() => this.start(), delay);
  }

  /** SIGTERM, then SIGKILL after graceMs. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      signalGroup(child, 'SIGTERM');
      const t = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(t);
    }
    await new Promise<void>((r) => this.log.end(r));
  }

  kill(): void {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.child) signalGroup(this.child, 'SIGKILL');
  }
}

// Open-loop fixed-rate load, wrk2-style: request i is due at t0 + i/rate, and
// its latency is measured from that scheduled time, not from when it was
// actually written. A proxy that stalls therefore pays for every request that
// queued behind the stall (no coordinated omission). Raw keep-alive HTTP/1.1
// connections, no HTTP library, so the generator's own cost stays small; it
// reports how late it sent (send lag) so that cost is visible.
//
// Run as a child process: node dist/bench/openloop.js '<OpenLoopOptions JSON>'
// prints one OpenLoopResult JSON line.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export interface OpenLoopOptions {
  host: string;
  port: number;
  hostHeader: string;
  path?: string;
  rate: number;
  seconds: number;
  warmupSeconds?: number;
  conns?: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface OpenLoopResult {
  scheduled: number;
  completed: number;
  errors: number;
  non200: number;
  /** ms from scheduled send time to the last byte of the response. */
  latency: Percentiles;
  /** ms from scheduled send time to the write: the generator's own lateness. */
  sendLag: Percentiles;
  achievedRate: number;
}

export function percentiles(sorted: ArrayLike<number>): Percentiles {
  const n = sorted.length;
  if (n === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN };
  const at = (q: number): number => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1]! };
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CHUNK_END = Buffer.from('\r\n0\r\n\r\n');

interface Conn {
  sock: Socket;
  busy: boolean;
  sched: number;
  buf: Buffer | null;
}

export function runOpenLoop(o: OpenLoopOptions): Promise<OpenLoopResult> {
  const rate = o.rate;
  const interval = 1000 / rate;
  const warm = o.warmupSeconds ?? 1;
  const nConns = o.conns ?? 16;
  const req = Buffer.from(`GET ${o.path ?? '/'} HTTP/1.1\r\nHost: ${o.hostHeader}\r\nUser-Agent: weft-bench\r\n\r\n`);
  const maxSamples = Math.ceil(rate * (o.seconds + 1)) + 16;
  const lat = new Float64Array(maxSamples);
  const lag = new Float64Array(maxSamples);
  let nLat = 0;
  let nLag = 0;
  let scheduled = 0;
  let errors = 0;
  let non200 = 0;
  const idle: Conn[] = [];
  const waiting: number[] = [];
  let tMeasure = 0;
  let tEnd = 0;
  let outstanding = 0;
  let finish: (() => void) | undefined;

  function send(c: Conn, sched: number): void {
    c.busy = true;
    c.sched = sched;
    outstanding++;
    const now = performance.now();
    if (sched >= tMeasure && nLag < maxSamples) lag[nLag++] = now - sched;
    c.sock.write(req);
  }

  function done(c: Conn, status: number): void {
    const now = performance.now();
    outstanding--;
    if (status !== 200) non200++;
    if (c.sched >= tMeasure && c.sched < tEnd && nLat < maxSamples) lat[nLat++] = now - c.sched;
    c.busy = false;
    const next = waiting.shift();
    if (next !== undefined) send(c, next);
    else idle.push(c);
    if (finish && outstanding === 0 && waiting.length === 0) finish();
  }

  // Parses one response off the connection's buffer; nginx and the proxies
  // answer with Content-Length, weft may chunk: both are handled.
  function onData(c: Conn, d: Buffer): void {
    const b = c.buf ? Buffer.concat([c.buf, d]) : d;
    const he = b.indexOf(CRLFCRLF);
    if (he < 0) {
      c.buf = b;
      return;
    }
    const head = b.toString('latin1', 0, he);
    const status = Number(head.slice(9, 12));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let end: number;
    if (cl) {
      end = he + 4 + Number(cl[1]);
      if (b.length < end) {
        c.buf = b;
        return;
      }
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const ce = b.indexOf(CHUNK_END, he);
      if (ce < 0) {
        c.buf = b;
        return;
      }
      end = ce + CHUNK_END.length;
    } else {
      end = he + 4; // 204/304 or no body
    }
    c.buf = end < b.length ? b.subarray(end) : null;
    if (c.busy) done(c, status);
  }

  function open(): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host: o.host, port: o.port });
      const c: Conn = { sock, busy: false, sched: 0, buf: null };
      sock.setNoDelay(true);
      sock.once('connect', () => resolve(c));
      sock.on('data', (d: Buffer) => onData(c, d));
      sock.on('error', (e) => {
        if (!c.busy && idle.indexOf(c) < 0) reject(e);
      });
      sock.on('close', () => {
        const i = idle.indexOf(c);
        if (i >= 0) idle.splice(i, 1);
        if (c.busy) {
          errors++;
          c.busy = false;
          outstanding--;
        }
        // Replace a connection the server closed, so the pool keeps its size.
        if (!finish) open().then((n) => { idle.push(n); const w = waiting.shift(); if (w !== undefined) { idle.pop(); send(n, w); } }, () => errors++);
        else if (outstanding === 0 && waiting.length === 0) finish();
      });
    });
  }

  return (async () => {
    const conns = await Promise.all(Array.from({ length: nConns }, () => open()));
    idle.push(...conns);
    const t0 = performance.now() + 5;
    tMeasure = t0 + warm * 1000;
    tEnd = tMeasure + o.seconds * 1000;
    let next = t0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        while (next <= now && next < tEnd) {
          scheduled += next >= tMeasure ? 1 : 0;
          const c = idle.pop();
          if (c) send(c, next);
          else waiting.push(next);
          next += interval;
        }
        if (next >= tEnd) return resolve();
        setTimeout(tick, Math.max(0, next - performance.now() - 0.05));
      };
      setTimeout(tick, 5);
    });
    await new Promise<void>((resolve) => {
      finish = resolve;
      if (outstanding === 0 && waiting.length === 0) resolve();
      setTimeout(resolve, 5000).unref();
    });
    errors += waiting.length;
    for (const c of conns) c.sock.destroy();
    const L = lat.subarray(0, nLat).sort();
    const G = lag.subarray(0, nLag).sort();
    return {
      scheduled,
      completed: nLat,
      errors,
      non200,
      latency: percentiles(L),
      sendLag: percentiles(G),
      achievedRate: nLat / o.seconds,
    };
  })();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opts = JSON.parse(process.argv[2] ?? '{}') as OpenLoopOptions;
  runOpenLoop(opts).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (e: Error) => {
      process.stderr.write(`openloop: ${e.message}\n`);
      process.exit(1);
    },
  );
}

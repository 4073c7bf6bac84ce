// `weft tap` on the sidecar side: live requests streamed to subscribers of
// the admin endpoint `GET /tap` as NDJSON, one record a line.
//
// Free when nobody taps: with no subscriber the hub is inactive and the
// request path builds no record (RequestObservers.active). Bounded when the
// rate is high: each subscriber gets at most `rate` records a second (the
// rest are sampled out), and while its connection has more than `maxBuffer`
// bytes unsent, records are dropped; both are counted and reported to the
// subscriber in a `{"kind":"dropped",...}` line once a second.
import type { ServerResponse } from 'node:http';
import type { RequestRecord, RequestSink } from './observe.js';

export interface TapFilter {
  /** Only this direction. */
  direction?: 'outbound' | 'inbound' | undefined;
  /** Destination Service "namespace/name". */
  service?: string | undefined;
  /** Destination workload "namespace/name". */
  destination?: string | undefined;
  /** Path prefix. */
  path?: string | undefined;
  method?: string | undefined;
}

export interface TapOptions {
  /** Records a second per subscriber before sampling kicks in (default 100). */
  rate?: number;
  /** Unsent bytes a subscriber may have before records are dropped (default 256 KiB). */
  maxBuffer?: number;
  /** Most subscribers at once (default 16). */
  maxSubscribers?: number;
  onDrop?: (n: number) => void;
}

interface Subscriber {
  res: ServerResponse;
  filter: TapFilter;
  /** Records left to send before the tap ends (Infinity without --max). */
  left: number;
  /** Records allowed in the current second. */
  budget: number;
  sampled: number;
  dropped: number;
}

export function matches(f: TapFilter, r: RequestRecord): boolean {
  if (f.direction && r.direction !== f.direction) return false;
  if (f.service && r.service !== f.service) return false;
  if (f.destination && r.destination !== f.destination) return false;
  if (f.method && r.method !== f.method) return false;
  if (f.path && !r.path.startsWith(f.path)) return false;
  return true;
}

/** A tap filter from /tap's query string; an error names the parameter. */
export function parseTapQuery(q: URLSearchParams): { filter: TapFilter; max: number } | { error: string } {
  const filter: TapFilter = {};
  const dir = q.get('direction');
  if (dir !== null && dir !== '') {
    if (dir !== 'outbound' && dir !== 'inbound') return { error: `direction: "${dir}" is not outbound or inbound` };
    filter.direction = dir;
  }
  for (const k of ['service', 'destination'] as const) {
    const v = q.get(k);
    if (v === null || v === '') continue;
    if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(v)) return { error: `${k}: "${v}" is not namespace/name` };
    filter[k] = v;
  }
  const path = q.get('path');
  if (path) filter.path = path;
  const method = q.get('method');
  if (method) filter.method = method.toUpperCase();
  let max = Infinity;
  const m = q.get('max');
  if (m !== null && m !== '') {
    const n = Number(m);
    if (!Number.isInteger(n) || n < 1) return { error: `max: "${m}" is not a positive integer` };
    max = n;
  }
  return { filter, max };
}

export class TapHub implements RequestSink {
  private readonly subs = new Set<Subscriber>();
  private readonly rate: number;
  private readonly maxBuffer: number;
  private readonly maxSubscribers: number;
  private ticker: NodeJS.Timeout | undefined;
  /** Told when `active` changes (RequestObservers recomputes its flag). */
  onChange: (() => void) | undefined;
  sampledTotal = 0;
  droppedTotal = 0;

  constructor(private readonly o: TapOptions = {}) {
    this.rate = o.rate ?? 100;
    this.maxBuffer = o.maxBuffer ?? 256 * 1024;
    this.maxSubscribers = o.maxSubscribers ?? 16;
  }

  get active(): boolean {
    return this.subs.size > 0;
  }

  get subscribers(): number {
    return this.subs.size;
  }

  /** Streams matching records to `res` until it closes or `max` were sent. False when the hub is full. */
  subscribe(res: ServerResponse, filter: TapFilter, max = Infinity): boolean {
    if (this.subs.size >= this.maxSubscribers) return false;
    const sub: Subscriber = { res, filter, left: max, budget: this.rate, sampled: 0, dropped: 0 };
    this.subs.add(sub);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    // The first line tells the client the tap is on (it may wait for traffic a long time).
    res.write(`${JSON.stringify({ kind: 'tap', rate: this.rate })}\n`);
    res.once('close', () => this.unsubscribe(sub));
    if (!this.ticker) {
      this.ticker = setInterval(() => this.tick(), 1000);
      this.ticker.unref();
    }
    if (this.subs.size === 1) this.onChange?.();
    return true;
  }

  private unsubscribe(sub: Subscriber): void {
    if (!this.subs.delete(sub)) return;
    if (!sub.res.writableEnded) sub.res.end();
    if (this.subs.size === 0) {
      if (this.ticker) clearInterval(this.ticker);
      this.ticker = undefined;
      this.onChange?.();
    }
  }

  private tick(): void {
    for (const s of this.subs) {
      if (s.sampled || s.dropped) {
        s.res.write(`${JSON.stringify({ kind: 'dropped', sampled: s.sampled, dropped: s.dropped })}\n`);
        s.sampled = 0;
        s.dropped = 0;
      }
      s.budget = this.rate;
    }
  }

  write(rec: RequestRecord): void {
    let line: string | undefined;
    for (const s of this.subs) {
      if (!matches(s.filter, rec)) continue;
      if (s.budget <= 0) {
        s.sampled++;
        this.sampledTotal++;
        this.o.onDrop?.(1);
        continue;
      }
      if (s.res.writableLength > this.maxBuffer) {
        s.dropped++;
        this.droppedTotal++;
        this.o.onDrop?.(1);
        continue;
      }
      s.budget--;
      line ??= `${JSON.stringify({ kind: 'request', ...rec })}\n`;
      s.res.write(line);
      if (--s.left <= 0) this.unsubscribe(s);
    }
  }

  async close(): Promise<void> {
    for (const s of [...this.subs]) this.unsubscribe(s);
  }
}

// Access logs (opt-in per workload: `weft sidecar --access-log json`, pod
// annotation `weft.io/access-log: json`): one JSON line per request.
//
// Off the hot path: the request path only pushes its record into a bounded
// buffer; lines are serialized and written in batches on a later turn of
// the event loop. While the output pushes back (a slow pipe, a full disk)
// the buffer fills, and records that do not fit are dropped and counted
// (weft_observe_dropped_total{sink="access-log"}) rather than held in
// memory or slowing requests.
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { RequestRecord, RequestSink } from './observe.js';

export const ACCESS_LOG_FORMATS = ['json'] as const;
export type AccessLogFormat = (typeof ACCESS_LOG_FORMATS)[number];

export interface AccessLogOptions {
  format: AccessLogFormat;
  /** Where lines go (default: the sidecar's stdout). */
  out?: Writable;
  /** A file path instead of `out`. */
  path?: string;
  /** Most records waiting to be written (default 10,000). */
  maxBuffer?: number;
  onDrop?: (n: number) => void;
}

/** One access log line (no trailing newline). */
export function accessLogLine(r: RequestRecord): string {
  return JSON.stringify({
    time: new Date(r.time).toISOString(),
    direction: r.direction,
    source: r.source,
    destination: {
      service: r.service,
      route: r.route,
      backend: r.backend,
      endpoint: r.endpoint,
      workload: r.destination,
    },
    method: r.method,
    authority: r.authority,
    path: r.path,
    status: r.status,
    grpcStatus: r.grpcStatus,
    bytesIn: r.bytesIn,
    bytesOut: r.bytesOut,
    durationMs: r.durationMs,
    upstreamMs: r.upstreamMs,
    proxyError: r.proxyError,
    traceId: r.traceId,
  });
}

export class AccessLog implements RequestSink {
  private buf: RequestRecord[] = [];
  private readonly max: number;
  private scheduled = false;
  private blocked = false;
  private readonly out: Writable;
  private readonly ownsOut: boolean;
  dropped = 0;
  written = 0;

  constructor(private readonly o: AccessLogOptions) {
    this.max = o.maxBuffer ?? 10_000;
    if (o.path) {
      this.out = createWriteStream(o.path, { flags: 'a' });
      this.out.on('error', () => undefined);
      this.ownsOut = true;
    } else {
      this.out = o.out ?? process.stdout;
      this.ownsOut = false;
    }
  }

  write(rec: RequestRecord): void {
    if (this.buf.length >= this.max) {
      this.dropped++;
      this.o.onDrop?.(1);
      return;
    }
    this.buf.push(rec);
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.blocked || this.buf.length === 0) return;
    const batch = this.buf;
    this.buf = [];
    let text = '';
    for (let i = 0; i < batch.length; i++) text += `${accessLogLine(batch[i]!)}\n`;
    this.written += batch.length;
    if (!this.out.write(text)) {
      this.blocked = true;
      this.out.once('drain', () => {
        this.blocked = false;
        if (this.buf.length && !this.scheduled) {
          this.scheduled = true;
          setImmediate(this.flush);
        }
      });
    }
  };

  async close(): Promise<void> {
    this.flush();
    if (this.ownsOut) await new Promise<void>((r) => this.out.end(r));
  }
}

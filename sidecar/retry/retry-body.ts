// The request body kept for retries: up to REPLAY_LIMIT bytes (64 KiB) are
// kept as they stream to the first try, so a retry sends the same bytes
// again. A larger body streams through without being kept and its request is
// not retried (weft_retries_skipped_total{reason="body_too_large"}); a body
// known to be larger (Content-Length) is not even looked at.
//
// One reader at a time: each try gets `body()`, a stream of the kept bytes
// followed by the rest as it arrives; the source is paused while that reader
// is slow (backpressure), so nothing but the kept bytes is ever buffered.
import { PassThrough, type Readable } from 'node:stream';

export const REPLAY_LIMIT = 64 * 1024;

export class BodyReplay {
  private chunks: Buffer[] | undefined = [];
  private size = 0;
  private ended = false;
  private failed: Error | undefined;
  private reader: PassThrough | undefined;
  private reading = false;

  constructor(
    private readonly src: Readable,
    private readonly limit = REPLAY_LIMIT,
  ) {}

  /** False once the body outgrew the limit (or failed): it cannot be sent again. */
  get replayable(): boolean {
    return this.chunks !== undefined && this.failed === undefined;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.size;
  }

  get complete(): boolean {
    return this.ended;
  }

  private readonly onData = (c: Buffer): void => {
    this.size += c.length;
    if (this.chunks) {
      if (this.size <= this.limit) this.chunks.push(c);
      else this.chunks = undefined; // too large to keep: this request will not be retried
    }
    const r = this.reader;
    if (r && !r.destroyed && !r.write(c)) {
      this.src.pause();
      r.once('drain', this.resume);
    }
  };

  private readonly resume = (): void => {
    this.src.resume();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.reader?.end();
  };

  private readonly onError = (e: Error): void => {
    this.failed = e;
    this.reader?.destroy(e);
  };

  /**
   * The body for the next try, or undefined when it cannot be replayed. A
   * body that has arrived whole comes back as one Buffer (sent with its
   * length); otherwise a stream of the kept bytes and then the rest.
   */
  body(): Readable | Buffer | undefined {
    if (!this.replayable) return undefined;
    if (!this.reading) {
      // Start reading only when the first try wants the body: nothing flows unread.
      this.reading = true;
      this.src.on('data', this.onData);
      this.src.once('end', this.onEnd);
      this.src.once('error', this.onError);
    }
    const prev = this.reader;
    if (prev) {
      prev.removeListener('drain', this.resume);
      if (!prev.destroyed) prev.destroy();
    }
    this.reader = undefined;
    if (this.ended) {
      this.src.resume();
      return this.chunks!.length === 1 ? this.chunks![0]! : Buffer.concat(this.chunks!);
    }
    // A fixed 16 KiB buffer (Node 22+ defaults to 64 KiB): the same backpressure, and the same memory per request, on every runtime.
    const r = new PassThrough({ highWaterMark: 16 * 1024 });
    r.on('error', () => {});
    for (const c of this.chunks!) r.write(c);
    this.reader = r;
    this.src.resume();
    return r;
  }

  /** Stops reading for tries (the request is done). */
  close(): void {
    if (!this.reading) return;
    this.src.removeListener('data', this.onData);
    this.reader?.destroy();
    this.reader = undefined;
    this.chunks = undefined;
    // Drain what is left so the client's connection is not stuck mid-body.
    this.src.resume();
  }
}

/** Whether a request with these headers has a body worth keeping (≤ limit, or of unknown length). */
export function keepsBody(contentLength: string | undefined, chunked: boolean, limit = REPLAY_LIMIT): boolean {
  if (contentLength !== undefined) {
    const n = Number(contentLength);
    return Number.isFinite(n) && n > 0 && n <= limit;
  }
  return chunked;
}

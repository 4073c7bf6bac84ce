// The request-head timeout of a sidecar listener (--request-head-timeout,
// default 10 s): a connection whose first request head has not fully arrived
// within the limit gets 408 and is closed, counted as
// weft_limit_rejections_total{limit="request_head_timeout"}.
//
// Why not node's headersTimeout: the listeners hand accepted sockets to an
// http.Server that never listens itself (after protocol detection), and node
// only checks headersTimeout for servers that emitted 'listening'; and the
// time spent in detection (a slow request line) must count too. So the guard
// is armed at accept and disarmed when the head is complete (the request
// event) or when detection says the connection is not HTTP/1.1.
import type { Socket } from 'node:net';

export interface HeadGuardOptions {
  timeoutMs: number;
  /** Called once per connection closed by the guard (count it). */
  onTimeout?: (socket: Socket) => void;
}

const kTimer = Symbol('weft.headTimer');
type Guarded = Socket & { [kTimer]?: NodeJS.Timeout };

export class HeadGuard {
  constructor(private readonly o: HeadGuardOptions) {}

  /** At accept: the head must be complete within the timeout. */
  accept(socket: Socket): void {
    const s = socket as Guarded;
    if (s[kTimer] || this.o.timeoutMs <= 0) return;
    s[kTimer] = setTimeout(() => {
      s[kTimer] = undefined;
      if (s.destroyed) return;
      this.o.onTimeout?.(s);
      const reason = `request head not received within ${this.o.timeoutMs} ms`;
      if (s.writable) s.end(`HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\nweft-proxy-error: ${reason}\r\n\r\n`);
      // Do not wait for a slow client to read the answer.
      setTimeout(() => s.destroy(), 1000).unref();
    }, this.o.timeoutMs);
    s[kTimer].unref();
    s.once('close', () => this.done(s));
  }

  /** The head is complete (request or upgrade event), or the connection is not HTTP/1.1. */
  done(socket: Socket): void {
    const s = socket as Guarded;
    if (s[kTimer]) clearTimeout(s[kTimer]);
    s[kTimer] = undefined;
  }
}

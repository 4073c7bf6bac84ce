// A small pool of HTTP/1.1 client connections to one upstream address
// (plain TCP or TLS). get() is synchronous: an idle connection (most recently
// used first, so the rest can time out), or a new one whose writes Node
// queues until the connect completes. Idle connections expire on the shared
// timer wheel; there is no per-connection timer.
import net from 'node:net';
import tls from 'node:tls';
import { ClientConn } from './client-conn.js';
import { DEFAULT_LIMITS, type HeadLimits } from './parser.js';
import { TimerWheel } from './timer-wheel.js';

export interface PoolOptions {
  host: string;
  port: number;
  /** TLS options (mTLS to a peer sidecar), or a function giving them per connection (a rotating certificate); absent for plain TCP. */
  tls?: tls.ConnectionOptions | (() => tls.ConnectionOptions);
  /** Called once per new TLS connection after the handshake; return an error message to refuse the peer (identity check). */
  verifyPeer?: (socket: tls.TLSSocket) => string | null;
  /** Idle connections kept. Default DEFAULT_MAX_IDLE. */
  maxIdle?: number;
  /** Idle connection lifetime. Default 30 s. */
  idleTimeoutMs?: number;
  limits?: HeadLimits;
  wheel?: TimerWheel;
  localAddress?: string;
  /** Called with each new connection once it is connected (the sidecar's tcp_* metrics). */
  onConnected?: (socket: net.Socket) => void;
  /** A connect (TLS handshake included) not done within this fails with code UND_ERR_CONNECT_TIMEOUT. Default: none. */
  connectTimeoutMs?: number;
}

/**
 * Idle connections a pool keeps by default. A bound against a burst, not a
 * working size: a pool that closes connections its load still needs reopens
 * them a moment later (64 made the inbound connect and close an app
 * connection for most requests at 200 concurrent callers, a fifth of its
 * time). Idle connections go when idleTimeoutMs passes.
 */
export const DEFAULT_MAX_IDLE = 1024;

const sharedWheel = new TimerWheel();

export class Pool {
  private readonly idle: ClientConn[] = [];
  private readonly opts: PoolOptions;
  private readonly wheel: TimerWheel;
  private readonly releaseFn = (c: ClientConn): void => this.put(c);
  private readonly idleCloseFn = (c: ClientConn): void => this.drop(c);
  private closed = false;
  /** Connections opened over the pool's life. */
  opened = 0;

  constructor(opts: PoolOptions) {
    this.opts = opts;
    this.wheel = opts.wheel ?? sharedWheel;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  /** An idle connection, or a new one (connecting). */
  get(): ClientConn {
    for (;;) {
      const c = this.idle.pop();
      if (!c) break;
      this.wheel.cancel(c);
      if (!c.closed) return c;
    }
    return this.connect();
  }

  /** A new connection, never an idle one (for a retry after an idle connection failed). */
  connect(): ClientConn {
    const o = this.opts;
    this.opened++;
    let socket: net.Socket;
    if (o.tls) {
      const t = typeof o.tls === 'function' ? o.tls() : o.tls;
      const s = tls.connect({ ...t, host: o.host, port: o.port, localAddress: o.localAddress, noDelay: true } as tls.ConnectionOptions);
      const verify = o.verifyPeer;
      if (verify) {
        s.once('secureConnect', () => {
          const err = verify(s);
          if (err) s.destroy(new Error(err));
        });
      }
      socket = s;
    } else socket = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress, noDelay: true });
    // No Nagle: a head written while the previous segment is unacknowledged must not wait for the peer's delayed ACK.
    socket.setNoDelay(true);
    const counted = o.onConnected;
    const ready = o.tls ? 'secureConnect' : 'connect';
    if (counted) socket.once(ready, () => counted(socket));
    if (o.connectTimeoutMs) {
      // The socket's own inactivity timer (no Timeout object of ours), off once connected.
      const s = socket;
      const onTimeout = (): void => {
        s.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
      };
      s.setTimeout(o.connectTimeoutMs);
      s.once('timeout', onTimeout);
      s.once(ready, () => {
        s.setTimeout(0);
        s.removeListener('timeout', onTimeout);
      });
    }
    const c = new ClientConn(socket, o.limits ?? DEFAULT_LIMITS);
    c.release = this.releaseFn;
    c.onIdleClose = this.idleCloseFn;
    return c;
  }

  close(): void {
    this.closed = true;
    for (const c of this.idle) {
      this.wheel.cancel(c);
      c.destroy();
    }
    this.idle.length = 0;
  }

  private put(c: ClientConn): void {
    if (this.closed || this.idle.length >= (this.opts.maxIdle ?? DEFAULT_MAX_IDLE)) {
      c.destroy();
      return;
    }
    this.idle.push(c);
    this.wheel.schedule(c, Date.now() + (this.opts.idleTimeoutMs ?? 30_000));
  }

  private drop(c: ClientConn): void {
    this.wheel.cancel(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) {
      this.idle[i] = this.idle[this.idle.length - 1]!;
      this.idle.pop();
    }
  }
}

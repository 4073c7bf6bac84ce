// Graceful drain (SIGTERM, POST /shutdown). The order is what keeps a
// rolling update from losing requests:
//
//   1. Goodbye on the config stream: control drops this pod's endpoints from
//      every other sidecar's config at once (not after the 10 s disconnect
//      grace), and /ready answers 503.
//   2. For a short propagation window the inbound listener still accepts, so
//      a peer that has not applied the update yet is not refused; every
//      inbound HTTP/1.1 response now carries `Connection: close` (HTTP/2
//      sessions get a GOAWAY where the listener is given `draining`).
//   3. The inbound listener closes; idle keep-alive connections close;
//      in-flight requests are answered.
//   4. The outbound listener keeps serving the app's own calls throughout;
//      the sidecar stops once nothing is in flight, or at the drain timeout.
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';

import { DEFAULT_DRAIN_TIMEOUT_MS, parseDrainTimeout } from '../../api/index.js';

export { DEFAULT_DRAIN_TIMEOUT_MS, parseDrainTimeout };
/** Longest wait for the peers to apply the endpoint removal before the inbound stops accepting. */
export const DRAIN_PROPAGATION_MS = 1_000;

/** What a listener exposes for the drain (listen-inbound's and listen-outbound's faces). */
export interface DrainListener {
  server: NetServer;
  http: HttpServer;
  sockets: Set<Socket>;
  /** The inbound's weft-mux/1 connections without a stream end too. */
  closeIdleMux?: () => void;
  /** The outbound's engine HTTP/1.1 adapter: its requests in flight count too. */
  engine?: { inFlight(): number } | undefined;
}

export interface DrainPlan {
  /** Propagation window: inbound keeps accepting (with `Connection: close`). */
  windowMs: number;
  /** From the signal to the forced close. */
  timeoutMs: number;
}

/** How long each phase may take for a drain timeout (pure: tested with a table). */
export function drainPlan(timeoutMs: number): DrainPlan {
  const t = Number.isFinite(timeoutMs) && timeoutMs > 0 ? timeoutMs : 0;
  return { windowMs: Math.min(DRAIN_PROPAGATION_MS, Math.floor(t / 2)), timeoutMs: t };
}

export interface DrainOptions {
  inbound: DrainListener;
  outbound: DrainListener;
  /** Says Goodbye to control (ConfigStream.goodbye). */
  goodbye: (reason: string) => void;
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Drain {
  private startedAt: number | undefined;
  private outboundInFlight = 0;
  private inboundInFlight = 0;
  /**
   * The inbound's HTTP/1.1 connections and how many requests each is
   * answering. Its http.Server never listens (connections are handed to it
   * after TLS), so Node's own closeIdleConnections() does not track them.
   */
  private readonly inboundConns = new Map<Socket, number>();
  /** Inbound responses not finished yet: those whose head is still unsent will say `Connection: close`. */
  private readonly inboundRes = new Set<ServerResponse>();

  constructor(private readonly o: DrainOptions) {
    o.inbound.http.on('connection', (s: Socket) => {
      this.inboundConns.set(s, 0);
      s.once('close', () => this.inboundConns.delete(s));
    });
    // Until the listeners take `draining` themselves, the drain turns
    // keep-alive off on the inbound's responses from here: a response
    // written after the signal says `Connection: close` and its connection
    // ends once it is sent.
    o.inbound.http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      const s = req.socket;
      this.inboundInFlight++;
      this.inboundRes.add(res);
      this.inboundConns.set(s, (this.inboundConns.get(s) ?? 0) + 1);
      res.once('close', () => {
        this.inboundInFlight--;
        this.inboundRes.delete(res);
        const n = this.inboundConns.get(s);
        if (n !== undefined) this.inboundConns.set(s, n - 1);
      });
      if (this.draining()) res.shouldKeepAlive = false;
    });
    o.outbound.http.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
      this.outboundInFlight++;
      res.once('close', () => this.outboundInFlight--);
    });
  }

  /** True from the signal on: listeners answer `Connection: close` / send GOAWAY. */
  readonly draining = (): boolean => this.startedAt !== undefined;

  private readonly starters: Array<() => void> = [];
  /**
   * Runs `fn` when the drain starts (at once if it has): for what cannot
   * poll `draining()`, e.g. GOAWAY on the HTTP/2 sessions already open.
   */
  onStart(fn: () => void): void {
    if (this.startedAt !== undefined) fn();
    else this.starters.push(fn);
  }

  /** Ends the inbound HTTP/1.1 connections that carry no request now (the peers have dropped this endpoint). */
  private closeIdleInbound(): void {
    this.o.inbound.closeIdleMux?.();
    for (const [s, active] of this.inboundConns) {
      if (active > 0) continue;
      this.inboundConns.delete(s);
      s.end();
      s.destroySoon?.();
    }
  }

  /** Requests being answered right now (both directions, HTTP/1.1). */
  inFlight(): number {
    return this.inboundInFlight + this.outboundInFlight + (this.o.outbound.engine?.inFlight() ?? 0);
  }

  /**
   * Runs steps 1–4; resolves when the sidecar may close (idle, or the
   * timeout). The caller then closes what is left, forcibly.
   */
  async run(reason: string, timeoutMs: number): Promise<{ idle: boolean; ms: number }> {
    if (this.startedAt !== undefined) return { idle: false, ms: 0 };
    const start = Date.now();
    this.startedAt = start;
    const plan = drainPlan(timeoutMs);
    const deadline = start + plan.timeoutMs;
    // The outbound listener is left open: the app's own calls keep working until the caller closes the sidecar.
    const { inbound } = this.o;
    this.o.goodbye(reason);
    for (const res of this.inboundRes) if (!res.headersSent) res.shouldKeepAlive = false;
    for (const fn of this.starters.splice(0)) {
      try {
        fn();
      } catch (e) {
        this.o.log(`drain: a start hook failed: ${(e as Error).message}`);
      }
    }
    this.o.log(`drain: ${reason}: endpoints withdrawn; inbound closes in ${plan.windowMs} ms, stop when idle or in ${plan.timeoutMs} ms`);
    // 2. Propagation window: new connections are still accepted and told to
    // close. Idle ones are left alone: a peer that has not applied the
    // update yet may be writing a request on one right now.
    if (plan.windowMs > 0) await sleep(plan.windowMs);
    // 3. No new inbound connections; idle ones go, busy ones once answered.
    inbound.server.close();
    for (;;) {
      this.closeIdleInbound();
      const idle = inbound.sockets.size === 0 && this.inFlight() === 0;
      if (idle || Date.now() >= deadline) {
        const ms = Date.now() - start;
        this.o.log(`drain: ${idle ? 'idle' : `timeout with ${inbound.sockets.size} inbound connection(s) and ${this.inFlight()} request(s) in flight`} after ${ms} ms`);
        return { idle, ms };
      }
      await sleep(25);
    }
  }
}

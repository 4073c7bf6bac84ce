// A ServerHandler that relays each request to an upstream Pool: the head as
// its own bytes minus hop-by-hop fields (plus the route's edits), the body
// and the response in their own framing, with backpressure both ways. One
// Exchange object per request; no closures, timers or Promises per request.
import type { Head } from './parser.js';
import { forwardHead, proxyErrorLine, type HeadEdits } from './head-write.js';
import type { ClientConn, ClientHandler } from './client-conn.js';
import type { Pool } from './pool.js';
import type { ServerConn, ServerHandler } from './server-conn.js';

export type RouteDecision =
  | { kind: 'forward'; pool: Pool; edits?: HeadEdits; responseEdits?: HeadEdits }
  | { kind: 'respond'; status: number; body: string; fields?: string[] };

export type Router = (head: Head, conn: ServerConn) => RouteDecision;

class Exchange implements ClientHandler {
  client: ClientConn;
  responded = false;
  bodySent = false;
  retried = false;
  closeAfter = false;
  tunnel = false;
  constructor(
    readonly conn: ServerConn,
    readonly head: Head,
    readonly out: Buffer,
    readonly route: { pool: Pool; responseEdits?: HeadEdits },
  ) {
    this.client = route.pool.get();
  }

  send(): void {
    const h = this.head;
    this.client.request(this.out, h.method, this, h.framing === 'length' || h.framing === 'chunked' || h.upgrade);
  }

  onResponseHead(_c: ClientConn, head: Head): void {
    const conn = this.conn;
    if (head.status < 200 && head.status !== 101) {
      conn.write(head.buf); // 100 Continue / 103: relayed as they came
      return;
    }
    this.responded = true;
    if (head.status === 101 || (this.head.method === 'CONNECT' && head.status < 300)) {
      this.tunnel = true;
      conn.write(forwardHead(head, { keepUpgrade: true }));
      this.client.startTunnel();
      conn.startTunnel();
      return;
    }
    this.closeAfter = head.framing === 'close';
    let edits = this.route.responseEdits;
    if (conn.draining()) {
      this.closeAfter = true;
      edits = { ...edits, add: [...(edits?.add ?? []), 'connection: close'] };
    } else if (this.head.minor === 0 && this.head.keepAlive && !this.closeAfter) edits = { ...edits, add: [...(edits?.add ?? []), 'connection: keep-alive'] };
    conn.write(edits || head.hop ? forwardHead(head, edits) : head.buf);
  }

  onResponseBody(c: ClientConn, chunk: Buffer): void {
    if (!this.conn.write(chunk)) c.socket.pause();
  }

  onResponseEnd(_c: ClientConn): void {
    if (this.tunnel) {
      this.conn.socket.end();
      return;
    }
    this.conn.endResponse(!this.closeAfter);
  }

  onResponseError(_c: ClientConn, reason: string, retryable: boolean): void {
    const conn = this.conn;
    if (retryable && !this.bodySent && !this.retried) {
      // The peer closed an idle connection as the request went out: once more on a fresh one.
      this.retried = true;
      this.client = this.route.pool.connect();
      this.send();
      return;
    }
    if (this.tunnel || this.responded) {
      conn.destroy();
      return;
    }
    this.responded = true;
    conn.data = null;
    conn.respond(502, `upstream: ${reason}\n`, [proxyErrorLine(`upstream failure: ${reason}`)], true);
  }

  onDrain(): void {
    this.conn.resume();
  }
}

export function proxyHandler(router: Router): ServerHandler {
  return {
    onRequest(conn, head) {
      const d = router(head, conn);
      if (d.kind === 'respond') {
        conn.data = null;
        conn.respond(d.status, d.body, d.fields ?? []);
        return;
      }
      const ex = new Exchange(conn, head, forwardHead(head, d.edits ?? (head.upgrade ? { keepUpgrade: true } : undefined)), d);
      conn.data = ex;
      ex.send();
    },
    onRequestBody(conn, chunk) {
      const ex = conn.data as Exchange | null;
      if (!ex) return;
      ex.bodySent = true;
      if (!ex.client.write(chunk)) conn.pause();
    },
    onRequestEnd(conn) {
      const ex = conn.data as Exchange | null;
      if (!ex) return;
      if (ex.tunnel) ex.client.end();
      else ex.client.endRequest();
    },
    onRequestAbort(conn) {
      const ex = conn.data as Exchange | null;
      conn.data = null;
      ex?.client.destroy();
    },
    onDrain(conn) {
      const ex = conn.data as Exchange | null;
      ex?.client.socket.resume();
    },
  };
}

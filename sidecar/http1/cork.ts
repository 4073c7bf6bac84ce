// Writes of one event-loop turn go out as one writev (one TLS record on a
// TLS socket): the first write of a turn corks the socket, one shared
// setImmediate uncorks every socket written in that turn. No per-write
// nextTick, no per-socket timer.
//
// A turn's batch is held back only up to FLUSH_BYTES. On the hop, one turn
// of the outbound carries the requests of every caller that was readable in
// it; held to the end of the turn they travel as one batch, and each process
// down the chain works while the others wait for it (a convoy: bench runs
// with a machine 27% idle while wrk -c50 was the only load). Flushing once a
// few KB are queued lets the peer start on the first requests while this side
// reads the rest. Measured on the two-sidecar pair (wrk -c50, 4 interleaved
// rounds each): 23.2k req/s held to the turn's end, 26.1k at 4 KB, with less
// CPU per request (fewer idle wake-ups); 1–2 KB cost more writes than they
// gained, 8–16 KB gained less.
import type { Socket } from 'node:net';

export interface Corkable {
  readonly socket: Socket;
  corked: boolean;
}

/** Bytes a corked socket may hold within one turn before they are written out. */
export const FLUSH_BYTES = 4096;

const pending: Corkable[] = [];
let scheduled = false;

function flush(): void {
  scheduled = false;
  for (let i = 0; i < pending.length; i++) {
    const c = pending[i]!;
    c.corked = false;
    c.socket.uncork();
  }
  pending.length = 0;
}

/** Write buf to c's socket, corked until the end of this event-loop turn or FLUSH_BYTES. Returns socket.write's answer. */
export function corkedWrite(c: Corkable, buf: Buffer | string): boolean {
  if (!c.corked) {
    c.corked = true;
    c.socket.cork();
    pending.push(c);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  }
  const ok = c.socket.write(buf);
  if (c.socket.writableLength >= FLUSH_BYTES) {
    // Out now, and corked again for the rest of the turn (a socket the kernel will not take more
    // from stays over the bound, so its writes go straight to its buffer: it is full either way).
    c.socket.uncork();
    c.socket.cork();
  }
  return ok;
}

// Writes of one event-loop turn go out as one writev (one TLS record on a
// TLS socket): the first write of a turn corks the socket, one shared
// setImmediate uncorks every socket written in that turn. No per-write
// nextTick, no per-socket timer.
import type { Socket } from 'node:net';

export interface Corkable {
  readonly socket: Socket;
  corked: boolean;
}

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

/** Write buf to c's socket, corked until the end of this event-loop turn. Returns socket.write's answer. */
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
  return c.socket.write(buf);
}

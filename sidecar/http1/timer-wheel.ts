// One timer for a whole set of connections. Each connection is an entry in
// an intrusive doubly linked list hung off one of N slots (slot = deadline
// tick mod N); moving a connection's deadline is a few pointer writes, so a
// request costs no Timeout object, no closure and no Promise. One unref'd
// interval walks the slots that came due; an entry whose deadline lies a lap
// or more ahead is simply left for a later lap.

export interface WheelEntry {
  wheelNext: WheelEntry | null;
  wheelPrev: WheelEntry | null;
  /** Absolute deadline in ms (Date.now() scale); 0 when not scheduled. */
  wheelDeadline: number;
  wheelSlot: number;
  onWheelExpire(): void;
}

export class TimerWheel {
  private readonly slots: (WheelEntry | null)[];
  private readonly tick: number;
  private timer: NodeJS.Timeout | null = null;
  private size = 0;
  private last = 0;
  private emptyRuns = 0;

  constructor(tickMs = 250, slots = 256) {
    this.tick = tickMs;
    this.slots = new Array<WheelEntry | null>(slots).fill(null);
  }

  get scheduled(): number {
    return this.size;
  }

  /** (Re)arm e to expire at `deadline` (ms since the epoch). */
  schedule(e: WheelEntry, deadline: number): void {
    const slot = Math.floor(deadline / this.tick) % this.slots.length;
    if (e.wheelDeadline !== 0) {
      if (e.wheelSlot === slot) {
        e.wheelDeadline = deadline;
        return;
      }
      this.unlink(e);
    }
    e.wheelDeadline = deadline;
    e.wheelSlot = slot;
    const head = this.slots[slot]!;
    e.wheelPrev = null;
    e.wheelNext = head;
    if (head) head.wheelPrev = e;
    this.slots[slot] = e;
    this.size++;
    if (!this.timer) {
      this.emptyRuns = 0;
      this.last = Math.floor(Date.now() / this.tick);
      this.timer = setInterval(() => this.run(), this.tick);
      this.timer.unref();
    }
  }

  cancel(e: WheelEntry): void {
    if (e.wheelDeadline === 0) return;
    this.unlink(e);
    e.wheelDeadline = 0;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private unlink(e: WheelEntry): void {
    if (e.wheelPrev) e.wheelPrev.wheelNext = e.wheelNext;
    else this.slots[e.wheelSlot] = e.wheelNext;
    if (e.wheelNext) e.wheelNext.wheelPrev = e.wheelPrev;
    e.wheelNext = e.wheelPrev = null;
    // The interval keeps running while the wheel empties and fills again
    // (a connection between two requests): run() stops it after an empty lap.
    this.size--;
  }

  private run(): void {
    if (this.size === 0) {
      if (++this.emptyRuns >= this.slots.length && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
      return;
    }
    this.emptyRuns = 0;
    const now = Date.now();
    const cur = Math.floor(now / this.tick);
    const n = this.slots.length;
    // Walk every slot that came due since the last run (at most one lap).
    const from = Math.max(this.last + 1, cur - n + 1);
    const due: WheelEntry[] = [];
    for (let t = from; t <= cur; t++) {
      for (let e = this.slots[t % n]!; e; e = e.wheelNext!) {
        if (e.wheelDeadline <= now) due.push(e);
      }
    }
    // The current tick is walked again next run: an entry due later within
    // this tick (deadline > now) would otherwise wait a whole lap.
    this.last = cur - 1;
    for (const e of due) {
      if (e.wheelDeadline === 0 || e.wheelDeadline > now) continue; // re-armed by an earlier expiry
      this.unlink(e);
      e.wheelDeadline = 0;
      e.onWheelExpire();
    }
  }
}

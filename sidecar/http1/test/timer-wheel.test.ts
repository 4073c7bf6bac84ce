import t from 'tap';
import { TimerWheel, type WheelEntry } from '../timer-wheel.js';

t.test('one wheel: entries expire at their deadline (never before), in order; cancelled ones never; re-arming moves them', async (t) => {
  const wheel = new TimerWheel(20, 8); // one lap = 160 ms: a 400 ms deadline wraps the wheel twice
  const fired: Array<[string, number]> = [];
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const entry = (name: string): WheelEntry => ({
    wheelNext: null,
    wheelPrev: null,
    wheelDeadline: 0,
    wheelSlot: 0,
    onWheelExpire: () => {
      fired.push([name, Date.now()]);
      if (name === 'b') allDone();
    },
  });
  const now = Date.now();
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(entry) as [WheelEntry, WheelEntry, WheelEntry, WheelEntry];
  wheel.schedule(a, now + 60);
  wheel.schedule(b, now + 400);
  wheel.schedule(c, now + 60);
  wheel.schedule(d, now + 60);
  wheel.cancel(c);
  wheel.schedule(d, now + 250); // re-armed later
  t.equal(wheel.scheduled, 3);
  const hold = setInterval(() => {}, 1000); // the wheel's own interval is unref'd: it never keeps a process alive
  await done;
  clearInterval(hold);
  t.same(fired.map((f) => f[0]), ['a', 'd', 'b'], 'a, then the re-armed d, then b after two laps; c never');
  const due: Record<string, number> = { a: now + 60, d: now + 250, b: now + 400 };
  for (const [n, at] of fired) t.ok(at >= due[n]!, `${n} not before its deadline`);
  t.equal(wheel.scheduled, 0, 'nothing left; the unref-ed interval stops by itself after an empty lap');
  wheel.close();
});

t.test('a deadline later in the tick a run falls in still fires at the next run, not a lap later', async (t) => {
  // Date.now() is stepped by hand: run() at 1005 (deadline 1008, same 10 ms tick), then at 1012.
  const realNow = Date.now;
  let now = 1000;
  Date.now = () => now;
  t.teardown(() => {
    Date.now = realNow;
  });
  const wheel = new TimerWheel(10, 1024);
  t.teardown(() => wheel.close());
  let fired = 0;
  const e: WheelEntry = { wheelNext: null, wheelPrev: null, wheelDeadline: 0, wheelSlot: 0, onWheelExpire: () => fired++ };
  wheel.schedule(e, 1008);
  const run = (wheel as unknown as { run(): void }).run.bind(wheel);
  now = 1005;
  run();
  t.equal(fired, 0, 'not before its deadline');
  now = 1012;
  run();
  t.equal(fired, 1, 'fired at the first run after its deadline');
});

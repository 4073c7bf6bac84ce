// The first SIGINT/SIGTERM stops `weft up` in order; a second one kills at
// once — but not the echo of the first: Ctrl-C under `npm start` reaches
// weft up from the terminal and again from npm. The handler stays installed
// throughout, so no signal ever meets Node's default (which would leave the
// children running).
import type { Say } from './up-console.js';

export interface StopSignals {
  /** The first signal. */
  signal: Promise<NodeJS.Signals>;
  /** Removes the handlers (after shutdown). */
  release(): void;
}

export function catchStopSignals(killAll: () => void, say: Say): StopSignals {
  let firstSignalAt = 0;
  let gotSignal: (s: NodeJS.Signals) => void = () => undefined;
  const signal = new Promise<NodeJS.Signals>((r) => (gotSignal = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (!firstSignalAt) {
      firstSignalAt = Date.now();
      gotSignal(sig);
    } else if (Date.now() - firstSignalAt > 1000) {
      say(`${sig} again: killing everything`);
      killAll();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

// Where `weft up`'s messages go: stderr, or — on a terminal, where the table
// is redrawn in place — the lines under the table, until shutdown begins.
export type Say = (line: string) => void;

export interface UpConsole {
  /** The table is redrawn in place (stdout and stderr are terminals, not --quiet). */
  readonly redraw: boolean;
  /** The last few messages, shown under the redrawn table. */
  readonly recent: readonly string[];
  /** A message as it is (control's log lines). */
  note: Say;
  /** A message of `weft up` itself. */
  say: Say;
}

export function upConsole(quiet: boolean, isStopping: () => boolean): UpConsole {
  const recent: string[] = [];
  const redraw = !quiet && process.stdout.isTTY === true && process.stderr.isTTY === true;
  const note: Say = (line) => {
    recent.push(`${new Date().toISOString().slice(11, 19)} ${line}`);
    if (recent.length > 8) recent.shift();
    if (!redraw || isStopping()) process.stderr.write(`${line}\n`);
  };
  return { redraw, recent, note, say: (line) => note(`weft up: ${line}`) };
}

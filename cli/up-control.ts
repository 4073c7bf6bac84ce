// Control first: it creates STATE (trust anchor, bootstrap token) that the
// sidecars read when they start — unless `--control` names one already running.
import type { UpOptions } from './up-flags.js';
import { formatHostPort } from './args.js';
import type { Say } from './up-console.js';

export interface UpControl {
  /** This process runs control (no --control). */
  readonly embedded: boolean;
  /** Control's current config errors, one line each (none with --control). */
  configErrors(): string[];
  close(): Promise<void>;
}

export async function startUpControl(o: UpOptions, log: Say): Promise<UpControl> {
  if (o.external) return { embedded: false, configErrors: () => [], close: async () => undefined };
  // Loaded on demand: `weft up --control` never loads control's code.
  const { startControl, formatConfigError } = await import('../control/index.js');
  const control = await startControl({
    configDir: o.dir,
    stateDir: o.stateDir,
    listen: formatHostPort(o.controlAddr),
    adminListen: formatHostPort(o.adminAddr),
    log,
    ...(o.defaultInboundPolicy ? { defaultInboundPolicy: o.defaultInboundPolicy } : {}),
  });
  return {
    embedded: true,
    configErrors: () => control.errors().map((e) => formatConfigError(e)),
    close: () => control.close(),
  };
}

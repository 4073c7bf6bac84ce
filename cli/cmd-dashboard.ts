// `weft dashboard`: the web dashboard against a running mesh — the local
// mesh of `weft up` (which serves it itself at http://127.0.0.1:7070/), a
// cluster's control admin address, or a Prometheus.
import { PORTS } from '../api/index.js';
import { bool, list, parseFlags, parseHostPort, str, UsageError, waitForSignal } from './args.js';
import { startDashboard } from './dashboard-server.js';

export const DEFAULT_DASHBOARD = '127.0.0.1:7070';

const HELP = `usage: weft dashboard [flags]

Serves the web dashboard: every Service with its live request rate, success
rate and p99 latency, per route and per backend (the traffic split as it
happens), a topology of who calls whom from real traffic, each workload's
identity, and the routes and policies that apply; the page refreshes every
second. \`weft up\` serves the same page at http://${DEFAULT_DASHBOARD}/.

Sources (default: the local mesh of \`weft up\`):
  --control-admin H:P   control's admin address (default 127.0.0.1:${PORTS.controlAdmin}):
                        the inventory, and the sidecars to scrape
  --admin URL,...       scrape these sidecar admin endpoints instead
  --prometheus URL      rates from this Prometheus (with --control-admin
                        for routes, policies and identities)

flags:
  --listen H:P          where to serve the page (default ${DEFAULT_DASHBOARD})
  --window SECONDS      rate window (default 10 from sidecars, 30 from Prometheus)
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    help: { type: 'boolean', short: 'h' },
    'control-admin': { type: 'string' },
    admin: { type: 'string', multiple: true },
    prometheus: { type: 'string' },
    listen: { type: 'string' },
    window: { type: 'string' },
  }, { positionals: false });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const listen = parseHostPort(str(p, 'listen') ?? DEFAULT_DASHBOARD, '--listen');
  const w = str(p, 'window');
  const windowSeconds = w === undefined ? undefined : Number(w);
  if (windowSeconds !== undefined && !(Number.isInteger(windowSeconds) && windowSeconds >= 2 && windowSeconds <= 3600)) {
    throw new UsageError(`--window: "${w}" is not a number of seconds from 2 to 3600`);
  }
  const prometheus = str(p, 'prometheus');
  const admins = list(p, 'admin').map((a) => (/^https?:\/\//.test(a) ? a : `http://${a}`));
  const controlAdmin = str(p, 'control-admin') ?? (prometheus && admins.length === 0 ? undefined : `127.0.0.1:${PORTS.controlAdmin}`);
  let d;
  try {
    d = await startDashboard({ listen, controlAdmin, admins, prometheus, ...(windowSeconds ? { windowSeconds } : {}) });
  } catch (e) {
    process.stderr.write(`weft dashboard: cannot listen on ${str(p, 'listen') ?? DEFAULT_DASHBOARD}: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`weft dashboard: ${d.url} (Ctrl-C stops)\n`);
  await waitForSignal();
  await d.close();
  return 0;
}

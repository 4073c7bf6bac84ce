// `weft up` serves the web dashboard from the same control admin endpoint as
// `weft stat` reads; a busy port only costs the page, never the mesh.
import { formatHostPort } from './args.js';
import { startDashboard, type DashboardHandle } from './dashboard-server.js';
import type { Say } from './up-console.js';
import type { UpOptions } from './up-flags.js';

export async function startUpDashboard(o: UpOptions, say: Say): Promise<DashboardHandle | undefined> {
  const addr = o.dashboardAddr;
  if (!addr) return undefined;
  return startDashboard({ listen: addr, controlAdmin: formatHostPort(o.adminAddr) }).catch((e: Error) => {
    say(`dashboard: cannot listen on ${formatHostPort(addr)}: ${e.message} (--dashboard H:P or off)`);
    return undefined;
  });
}

// weft get routes|services|policies [-n NS | -A] [-l SELECTOR] [-o yaml|json]
//   [--config-dir DIR | --control-admin HOST:PORT]
// Lists mesh resources with their status, from a running control (its admin
// GET /resources) or, offline, from a config directory compiled on the spot.
import http from 'node:http';
import https from 'node:https';
import { stringify } from 'yaml';
import { PORTS } from '../api/index.js';
import { compile, loadDirectory, snapshotOf } from '../control/index.js';
import {
  GET_KINDS,
  getTable,
  inventoryFrom,
  parseSelector,
  selectResources,
  withStatus,
  type Inventory,
  type Requirement,
} from './describe.js';
import { bool, parseFlags, str, UsageError, type FlagSpec, type Parsed } from './args.js';

const HELP = `usage: weft get routes|services|policies [flags]

List HTTPRoutes and GRPCRoutes, Services, or BackendLBPolicies and
BackendTLSPolicies, with weft's status (Accepted, ResolvedRefs, reasons).

flags:
  -n, --namespace NS        only resources in NS (default "default")
  -A, --all-namespaces      resources in every namespace
  -l, --selector SELECTOR   label selector: k=v,k!=v,k in (a,b),k notin (a),k,!k
  -o, --output FORMAT       table (default), yaml or json (resources with status)
  --control-admin H:P|URL   ask this control's admin port (default 127.0.0.1:${PORTS.controlAdmin})
  --config-dir DIR          read DIR offline instead (no running control needed;
                            no endpoints, since no sidecar has registered)
`;

export const SOURCE_FLAGS: FlagSpec = {
  namespace: { type: 'string', short: 'n' },
  'control-admin': { type: 'string' },
  'config-dir': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

function getJson(url: string, timeoutMs = 5000): Promise<unknown> {
  const mod = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (e) {
          reject(new Error(`${url}: not JSON (${(e as Error).message})`));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** The inventory: from --config-dir (compiled here), else from control's admin /resources. */
export async function loadInventory(p: Parsed): Promise<Inventory> {
  const dir = str(p, 'config-dir');
  const admin = str(p, 'control-admin');
  if (dir && admin) throw new UsageError('--config-dir and --control-admin are exclusive');
  if (dir) {
    const { resources, errors } = await loadDirectory(dir);
    const c = compile(snapshotOf(resources, []));
    return { resources, statuses: c.statuses, errors: [...errors, ...c.errors], registered: [] };
  }
  const base = admin ?? `127.0.0.1:${PORTS.controlAdmin}`;
  const url = /^https?:\/\//.test(base) ? `${base.replace(/\/$/, '')}/resources` : `http://${base}/resources`;
  try {
    return inventoryFrom(await getJson(url));
  } catch (e) {
    throw new Error(`cannot read control's resources: ${(e as Error).message}${admin ? '' : ' (is `weft up` or `weft control` running? or pass --config-dir DIR)'}`);
  }
}

export function outputFormat(p: Parsed): 'table' | 'yaml' | 'json' {
  const o = str(p, 'output') ?? 'table';
  if (o !== 'table' && o !== 'yaml' && o !== 'json' && o !== 'wide') throw new UsageError(`--output: "${o}" is not one of table, yaml, json`);
  return o === 'wide' ? 'table' : o;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    ...SOURCE_FLAGS,
    'all-namespaces': { type: 'boolean', short: 'A' },
    selector: { type: 'string', short: 'l' },
  });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const what = p.positionals[0];
  if (!what) throw new UsageError('weft get needs a kind: routes, services or policies');
  const kind = GET_KINDS[what.toLowerCase()];
  if (!kind) throw new UsageError(`unknown kind "${what}": use routes, services or policies`);
  if (p.positionals.length > 1) throw new UsageError(`unexpected argument "${p.positionals[1]}" (use weft describe for one resource)`);
  const all = bool(p, 'all-namespaces');
  const ns = str(p, 'namespace');
  if (all && ns) throw new UsageError('--namespace and --all-namespaces are exclusive');
  let selector: Requirement[] | undefined;
  const sel = str(p, 'selector');
  if (sel !== undefined) {
    try {
      selector = parseSelector(sel);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  const format = outputFormat(p);
  let inv: Inventory;
  try {
    inv = await loadInventory(p);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    process.stderr.write(`weft get: ${(e as Error).message}\n`);
    return 1;
  }
  const opts = { allNamespaces: all, ...(ns ? { namespace: ns } : {}), ...(selector ? { selector } : {}) };
  if (format === 'table') {
    process.stdout.write(getTable(inv, kind, opts));
    return 0;
  }
  const items = selectResources(inv, kind, opts).map((r) => withStatus(inv, r));
  const list = { apiVersion: 'v1', kind: 'List', items };
  process.stdout.write(format === 'json' ? JSON.stringify(list, null, 2) + '\n' : stringify(list, { aliasDuplicateObjects: false }));
  return 0;
}

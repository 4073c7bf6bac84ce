// weft describe route|service|policy NAME [-n NS] [--config-dir DIR | --control-admin H:P]
// Explains one resource: a Service's attached routes and effective rules per
// port and consumer namespace, a route's parents with status and compiled
// rules, a policy's targets and status.
import { stringify } from 'yaml';
import { DESCRIBE_KINDS, POLICY_KINDS, describe, withStatus, type Inventory } from './describe.js';
import { bool, parseFlags, str, UsageError } from './args.js';
import { SOURCE_FLAGS, loadInventory, outputFormat } from './cmd-get.js';
import http from 'node:http';
import { PORTS } from '../api/index.js';
import type { CallerHealth } from './describe.js';

/** GET http://<pod IP>:7090/resilience of every registered sidecar that answers within a second. */
async function callerHealth(inv: Inventory): Promise<CallerHealth[]> {
  const get = (ip: string): Promise<unknown> =>
    new Promise((resolve) => {
      const req = http.get({ host: ip, port: PORTS.admin, path: '/resilience', timeout: 1000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          try {
            resolve(res.statusCode === 200 ? JSON.parse(body) : undefined);
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(undefined));
    });
  const all = await Promise.all(inv.registered.filter((w) => w.podIP && w.meshed !== false).map(async (w) => ({ w, body: await get(w.podIP) })));
  const out: CallerHealth[] = [];
  for (const { w, body } of all) {
    const backends = (body as { backends?: CallerHealth['backends'] } | undefined)?.backends;
    if (Array.isArray(backends)) out.push({ caller: `${w.namespace}/${w.podName || w.workload}`, backends });
  }
  return out;
}

const HELP = `usage: weft describe route|service|policy|workload|pod NAME [flags]

  service NAME   ports, endpoints, endpoint health as the callers' sidecars
                 see it (failure accrual), retry budget, attached routes
                 (producer and consumer), policies, and the effective rules
                 per Service port and consumer namespace in the order the
                 sidecar tries them
  route NAME     parents with Accepted/ResolvedRefs and their reasons, and
                 each rule as compiled (matches, filters, backends, weights)
  policy NAME    a BackendLBPolicy, BackendTLSPolicy, AuthorizationPolicy or
                 XBackendTrafficPolicy: targets, settings (session, TLS, what
                 it allows, retry budget), status
  workload NAME  the AuthorizationPolicies that select its pods (GEP-3779's
                 inherited policies) and what each allows, its default
                 inbound policy and probe paths
  pod NAME       the same for one pod (Kubernetes mode, or a local replica)

NAME may also be written KIND/NAME (service/echo) or NAMESPACE/NAME.

flags:
  -n, --namespace NS        namespace of NAME (default "default")
  -o, --output FORMAT       text (default), yaml or json (the resource with status)
  --control-admin H:P|URL   ask this control's admin port (default 127.0.0.1:7091)
  --config-dir DIR          read DIR offline instead
`;

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, SOURCE_FLAGS);
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  let [what, name] = p.positionals;
  if (what?.includes('/') && name === undefined) [what, name] = what.split('/', 2) as [string, string];
  if (!what || !name) throw new UsageError('weft describe needs a kind and a name: weft describe service echo');
  const kind = DESCRIBE_KINDS[what.toLowerCase()];
  if (!kind) throw new UsageError(`unknown kind "${what}": use route, service, policy, workload or pod`);
  let ns = str(p, 'namespace') ?? 'default';
  if (name.includes('/')) {
    if (str(p, 'namespace')) throw new UsageError('give the namespace once: NAMESPACE/NAME or -n NAMESPACE');
    [ns, name] = name.split('/', 2) as [string, string];
  }
  const format = str(p, 'output') === undefined || str(p, 'output') === 'text' ? 'text' : outputFormat(p);
  let inv: Inventory;
  try {
    inv = await loadInventory(p);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    process.stderr.write(`weft describe: ${(e as Error).message}\n`);
    return 1;
  }
  if (format === 'yaml' || format === 'json') {
    const kinds = kind === 'route' ? ['HTTPRoute', 'GRPCRoute'] : kind === 'service' ? ['Service'] : kind === 'workload' ? ['Workload'] : POLICY_KINDS;
    const items = inv.resources.filter((r) => kinds.includes(r.kind) && (r.metadata.namespace ?? 'default') === ns && r.metadata.name === name).map((r) => withStatus(inv, r));
    if (items.length === 0) {
      process.stderr.write(`weft describe: ${kind} ${ns}/${name} not found\n`);
      return 1;
    }
    const out = items.length === 1 ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    process.stdout.write(format === 'json' ? JSON.stringify(out, null, 2) + '\n' : stringify(out, { aliasDuplicateObjects: false }));
    return 0;
  }
  // Failure accrual lives in each caller's sidecar: ask the registered ones (local mode; best effort).
  const health = kind === 'service' && !str(p, 'config-dir') ? await callerHealth(inv) : undefined;
  const text = describe(inv, kind, ns, name, health ? { health } : {});
  if (text === undefined) {
    process.stderr.write(`weft describe: ${kind} ${ns}/${name} not found\n`);
    return 1;
  }
  process.stdout.write(text);
  return 0;
}

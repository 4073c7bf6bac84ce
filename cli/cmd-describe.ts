// weft describe route|service|policy NAME [-n NS] [--config-dir DIR | --control-admin H:P]
// Explains one resource: a Service's attached routes and effective rules per
// port and consumer namespace, a route's parents with status and compiled
// rules, a policy's targets and status.
import { stringify } from 'yaml';
import { DESCRIBE_KINDS, describe, withStatus, type Inventory } from './describe.js';
import { bool, parseFlags, str, UsageError } from './args.js';
import { SOURCE_FLAGS, loadInventory, outputFormat } from './cmd-get.js';

const HELP = `usage: weft describe route|service|policy NAME [flags]

  service NAME   ports, endpoints, attached routes (producer and consumer),
                 policies, and the effective rules per Service port and
                 consumer namespace in the order the sidecar tries them
  route NAME     parents with Accepted/ResolvedRefs and their reasons, and
                 each rule as compiled (matches, filters, backends, weights)
  policy NAME    a BackendLBPolicy or BackendTLSPolicy: targets, settings, status

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
  if (!kind) throw new UsageError(`unknown kind "${what}": use route, service or policy`);
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
    const kinds = kind === 'route' ? ['HTTPRoute', 'GRPCRoute'] : kind === 'service' ? ['Service'] : ['BackendLBPolicy', 'BackendTLSPolicy'];
    const items = inv.resources.filter((r) => kinds.includes(r.kind) && (r.metadata.namespace ?? 'default') === ns && r.metadata.name === name).map((r) => withStatus(inv, r));
    if (items.length === 0) {
      process.stderr.write(`weft describe: ${kind} ${ns}/${name} not found\n`);
      return 1;
    }
    const out = items.length === 1 ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    process.stdout.write(format === 'json' ? JSON.stringify(out, null, 2) + '\n' : stringify(out, { aliasDuplicateObjects: false }));
    return 0;
  }
  const text = describe(inv, kind, ns, name);
  if (text === undefined) {
    process.stderr.write(`weft describe: ${kind} ${ns}/${name} not found\n`);
    return 1;
  }
  process.stdout.write(text);
  return 0;
}

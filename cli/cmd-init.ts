// `weft init`: install (or remove, or print) the iptables NAT rules that send
// a pod's TCP traffic through its sidecar. What the injector's weft-init
// container runs, and what the e2e test bed runs in each pod namespace.
import { PORTS, PROXY_UID } from '../api/index.js';
// The rule builder lives with the sidecar (it is the sidecar's contract with
// the kernel); cmd-init is its only other user.
import {
  applyRules,
  defaultInitOptions,
  dryRun,
  InitError,
  listRules,
  programFor,
  removeRules,
  validateInitOptions,
  type InitOptions,
} from '../sidecar/detect/iptables.js';
import { bool, int, list, parseFlags, UsageError, type FlagSpec } from './args.js';

const SPEC: FlagSpec = {
  'proxy-uid': { type: 'string' },
  'proxy-gid': { type: 'string' },
  'outbound-port': { type: 'string' },
  'inbound-port': { type: 'string' },
  'admin-port': { type: 'string' },
  'skip-outbound-ports': { type: 'string', multiple: true },
  'skip-inbound-ports': { type: 'string', multiple: true },
  'skip-outbound-cidrs': { type: 'string', multiple: true },
  'skip-inbound-cidrs': { type: 'string', multiple: true },
  'outbound-only': { type: 'boolean' },
  ipv6: { type: 'boolean' },
  remove: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  list: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const HELP = `usage: weft init [flags]

Installs iptables NAT rules in the current network namespace (chains
WEFT_OUTPUT, WEFT_REDIRECT_OUT, WEFT_PREROUTING, WEFT_REDIRECT_IN): outbound
TCP goes to the sidecar's outbound port, inbound TCP to its inbound port.
Running it again replaces weft's rules; it never adds a second set.

  --proxy-uid N              uid whose traffic is not redirected (default ${PROXY_UID})
  --proxy-gid N              also exclude this gid
  --outbound-port N          outbound listener (default ${PORTS.outbound})
  --inbound-port N           inbound listener (default ${PORTS.inbound})
  --admin-port N             admin port, never redirected inbound (default ${PORTS.admin})
  --skip-outbound-ports L    destination ports that bypass the sidecar (3306,8000:8100)
  --skip-inbound-ports L     local ports that bypass the sidecar
  --skip-outbound-cidrs L    destination networks that bypass the sidecar
  --skip-inbound-cidrs L     source networks whose inbound traffic bypasses the sidecar
  --outbound-only            do not redirect inbound traffic
  --ipv6                     use ip6tables (run once more without it for IPv4)
  --dry-run                  print the iptables commands instead of running them
  --list                     print weft's current rules (iptables -t nat -S)
  --remove                   remove weft's chains and the jumps into them
`;

function options(p: ReturnType<typeof parseFlags>): InitOptions {
  const portRange = { min: 1, max: 65535 };
  const o = defaultInitOptions({
    proxyUid: int(p, 'proxy-uid', { min: 0 }) ?? PROXY_UID,
    proxyGid: int(p, 'proxy-gid', { min: 0 }),
    outboundPort: int(p, 'outbound-port', portRange) ?? PORTS.outbound,
    inboundPort: int(p, 'inbound-port', portRange) ?? PORTS.inbound,
    adminPort: int(p, 'admin-port', portRange) ?? PORTS.admin,
    skipOutboundPorts: list(p, 'skip-outbound-ports'),
    skipInboundPorts: list(p, 'skip-inbound-ports'),
    skipOutboundCidrs: list(p, 'skip-outbound-cidrs'),
    skipInboundCidrs: list(p, 'skip-inbound-cidrs'),
    inbound: !bool(p, 'outbound-only'),
    family: bool(p, 'ipv6') ? 6 : 4,
  });
  const bad = validateInitOptions(o);
  if (bad) throw new UsageError(`--${bad}`);
  return o;
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, SPEC, { positionals: false });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  const o = options(p);
  const family = o.family;
  try {
    if (bool(p, 'dry-run')) {
      if (bool(p, 'remove')) {
        process.stdout.write(`# weft init --remove: deletes every jump to WEFT_OUTPUT / WEFT_PREROUTING, then:\n`);
        for (const c of ['WEFT_OUTPUT', 'WEFT_REDIRECT_OUT', 'WEFT_PREROUTING', 'WEFT_REDIRECT_IN']) {
          process.stdout.write(`${programFor(family)} -w -t nat -F ${c}\n`);
        }
        for (const c of ['WEFT_OUTPUT', 'WEFT_REDIRECT_OUT', 'WEFT_PREROUTING', 'WEFT_REDIRECT_IN']) {
          process.stdout.write(`${programFor(family)} -w -t nat -X ${c}\n`);
        }
        return 0;
      }
      process.stdout.write(dryRun(o).join('\n') + '\n');
      return 0;
    }
    if (bool(p, 'list')) {
      const lines = await listRules(family);
      process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
      return 0;
    }
    if (bool(p, 'remove')) {
      await removeRules(family);
      process.stdout.write(`weft init: removed weft's ${programFor(family)} rules\n`);
      return 0;
    }
    await applyRules(o);
    const skips = [
      o.skipOutboundPorts.length ? `outbound ports ${o.skipOutboundPorts.join(',')} skipped` : '',
      o.skipInboundPorts.length ? `inbound ports ${o.skipInboundPorts.join(',')} skipped` : '',
    ].filter(Boolean);
    process.stdout.write(
      `weft init: outbound TCP → :${o.outboundPort} (uid ${o.proxyUid} exempt)` +
        (o.inbound ? `, inbound TCP → :${o.inboundPort}` : '') +
        (skips.length ? `; ${skips.join('; ')}` : '') +
        '\n',
    );
    return 0;
  } catch (e) {
    if (e instanceof InitError) {
      process.stderr.write(`weft init: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

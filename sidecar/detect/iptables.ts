// The iptables NAT rules of `weft init`: what the injector's init container
// runs in a pod's network namespace so that the app's TCP traffic reaches the
// sidecar without the app knowing.
//
//   nat OUTPUT     -p tcp -j WEFT_OUTPUT                 (outbound, from this pod)
//   WEFT_OUTPUT    uid 2102 → RETURN                     the sidecar's own traffic
//                  -o lo → RETURN; -d 127.0.0.0/8 → RETURN  loopback (app → itself)
//                  skipped ports / CIDRs → RETURN
//                  -p tcp → WEFT_REDIRECT_OUT → REDIRECT :7001
//   nat PREROUTING -p tcp -j WEFT_PREROUTING             (inbound, to this pod)
//   WEFT_PREROUTING  the sidecar's ports (7001, 7002, 7090) and skipped ports → RETURN
//                  -p tcp → WEFT_REDIRECT_IN → REDIRECT :7002
//
// The rule set is built by a pure function (tested with tables); apply and
// remove run it. Idempotent: weft's chains are created if missing and
// flushed, jump rules are added only when `-C` says they are absent.
import { spawn } from 'node:child_process';
import { PORTS, PROXY_UID } from '../../api/index.js';

export const CHAINS = {
  output: 'WEFT_OUTPUT',
  redirectOut: 'WEFT_REDIRECT_OUT',
  prerouting: 'WEFT_PREROUTING',
  redirectIn: 'WEFT_REDIRECT_IN',
} as const;

/** iptables' multiport match takes at most 15 ports per rule. */
const MULTIPORT_MAX = 15;

export interface InitOptions {
  /** uid whose traffic is never redirected (the sidecar). */
  proxyUid: number;
  /** Also exclude this gid (optional). */
  proxyGid?: number;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
  /** Outbound destination ports that bypass the sidecar ("3306" or "8000:8100"). */
  skipOutboundPorts: string[];
  /** Inbound destination ports that bypass the sidecar. */
  skipInboundPorts: string[];
  /** Outbound destination CIDRs that bypass the sidecar. */
  skipOutboundCidrs: string[];
  /** Inbound source CIDRs that bypass the sidecar. */
  skipInboundCidrs: string[];
  /** Redirect inbound traffic at all (false: outbound only). */
  inbound: boolean;
  /** ip6tables instead of iptables. */
  family: 4 | 6;
}

export function defaultInitOptions(over: Partial<InitOptions> = {}): InitOptions {
  return {
    proxyUid: PROXY_UID,
    outboundPort: PORTS.outbound,
    inboundPort: PORTS.inbound,
    adminPort: PORTS.admin,
    skipOutboundPorts: [],
    skipInboundPorts: [],
    skipOutboundCidrs: [],
    skipInboundCidrs: [],
    inbound: true,
    family: 4,
    ...over,
  };
}

/**
 * One iptables invocation (argv after the program name, `-t nat` and `-w`
 * included). `kind` tells apply how to treat it: 'new-chain' tolerates
 * "already exists", 'jump' is added only when `-C` finds it missing.
 */
export interface Step {
  kind: 'new-chain' | 'flush' | 'rule' | 'jump';
  args: string[];
}

export class InitError extends Error {
  override readonly name = 'InitError';
}

/** Checks the options; returns a message naming the bad field, or undefined. */
export function validateInitOptions(o: InitOptions): string | undefined {
  const port = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  for (const [k, v] of [
    ['outbound-port', o.outboundPort],
    ['inbound-port', o.inboundPort],
    ['admin-port', o.adminPort],
  ] as const) {
    if (!port(v)) return `${k}: ${v} is not a port (1..65535)`;
  }
  if (!Number.isInteger(o.proxyUid) || o.proxyUid < 0) return `proxy-uid: ${o.proxyUid} is not a uid`;
  if (o.proxyGid !== undefined && (!Number.isInteger(o.proxyGid) || o.proxyGid < 0)) return `proxy-gid: ${o.proxyGid} is not a gid`;
  for (const [k, list] of [
    ['skip-outbound-ports', o.skipOutboundPorts],
    ['skip-inbound-ports', o.skipInboundPorts],
  ] as const) {
    for (const p of list) {
      const m = /^(\d{1,5})(?::(\d{1,5}))?$/.exec(p);
      if (!m || !port(Number(m[1])) || (m[2] !== undefined && (!port(Number(m[2])) || Number(m[2]) < Number(m[1])))) {
        return `${k}: "${p}" is not a port or port range (N or N:M)`;
      }
    }
  }
  const cidr4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(\/(\d{1,2}))?$/;
  const cidr6 = /^[0-9a-fA-F:]+(\/\d{1,3})?$/;
  for (const [k, list] of [
    ['skip-outbound-cidrs', o.skipOutboundCidrs],
    ['skip-inbound-cidrs', o.skipInboundCidrs],
  ] as const) {
    for (const c of list) {
      if (o.family === 4) {
        const m = cidr4.exec(c);
        if (!m || [m[1], m[2], m[3], m[4]].some((x) => Number(x) > 255) || (m[6] !== undefined && Number(m[6]) > 32)) {
          return `${k}: "${c}" is not an IPv4 address or CIDR`;
        }
      } else if (!cidr6.test(c) || !c.includes(':')) {
        return `${k}: "${c}" is not an IPv6 address or CIDR`;
      }
    }
  }
  return undefined;
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** A multiport rule counts a range N:M as two ports. */
function portGroups(ports: string[]): string[] {
  const out: string[] = [];
  let cur: string[] = [];
  let weight = 0;
  for (const p of ports) {
    const w = p.includes(':') ? 2 : 1;
    if (weight + w > MULTIPORT_MAX) {
      out.push(cur.join(','));
      cur = [];
      weight = 0;
    }
    cur.push(p);
    weight += w;
  }
  if (cur.length) out.push(cur.join(','));
  return out;
}

const nat = (...args: string[]): string[] => ['-t', 'nat', ...args];
const comment = (c: string): string[] => ['-m', 'comment', '--comment', `weft/${c}`];

/** The chains' content and the jumps into them, in order. Pure. */
export function buildRules(o: InitOptions): Step[] {
  const bad = validateInitOptions(o);
  if (bad) throw new InitError(bad);
  const loopback = o.family === 4 ? '127.0.0.0/8' : '::1/128';
  const steps: Step[] = [];
  const chains = o.inbound
    ? [CHAINS.redirectOut, CHAINS.output, CHAINS.redirectIn, CHAINS.prerouting]
    : [CHAINS.redirectOut, CHAINS.output];
  for (const c of chains) steps.push({ kind: 'new-chain', args: nat('-N', c) });
  for (const c of chains) steps.push({ kind: 'flush', args: nat('-F', c) });

  // Outbound.
  const rule = (chain: string, ...args: string[]) => steps.push({ kind: 'rule', args: nat('-A', chain, ...args) });
  rule(CHAINS.redirectOut, '-p', 'tcp', ...comment('redirect-outbound'), '-j', 'REDIRECT', '--to-ports', String(o.outboundPort));
  rule(CHAINS.output, '-m', 'owner', '--uid-owner', String(o.proxyUid), ...comment('ignore-proxy-uid'), '-j', 'RETURN');
  if (o.proxyGid !== undefined) {
    rule(CHAINS.output, '-m', 'owner', '--gid-owner', String(o.proxyGid), ...comment('ignore-proxy-gid'), '-j', 'RETURN');
  }
  rule(CHAINS.output, '-o', 'lo', ...comment('ignore-loopback'), '-j', 'RETURN');
  rule(CHAINS.output, '-d', loopback, ...comment('ignore-loopback-destination'), '-j', 'RETURN');
  for (const g of portGroups(o.skipOutboundPorts)) {
    rule(CHAINS.output, '-p', 'tcp', '-m', 'multiport', '--dports', g, ...comment('skip-outbound-ports'), '-j', 'RETURN');
  }
  for (const c of o.skipOutboundCidrs) rule(CHAINS.output, '-d', c, ...comment('skip-outbound-cidrs'), '-j', 'RETURN');
  rule(CHAINS.output, '-p', 'tcp', ...comment('outbound'), '-j', CHAINS.redirectOut);

  // Inbound.
  if (o.inbound) {
    rule(CHAINS.redirectIn, '-p', 'tcp', ...comment('redirect-inbound'), '-j', 'REDIRECT', '--to-ports', String(o.inboundPort));
    const own = [...new Set([o.outboundPort, o.inboundPort, o.adminPort].map(String))];
    for (const g of portGroups([...own, ...o.skipInboundPorts.filter((p) => !own.includes(p))])) {
      rule(CHAINS.prerouting, '-p', 'tcp', '-m', 'multiport', '--dports', g, ...comment('skip-inbound-ports'), '-j', 'RETURN');
    }
    for (const c of o.skipInboundCidrs) rule(CHAINS.prerouting, '-s', c, ...comment('skip-inbound-cidrs'), '-j', 'RETURN');
    rule(CHAINS.prerouting, '-p', 'tcp', ...comment('inbound'), '-j', CHAINS.redirectIn);
  }

  steps.push({ kind: 'jump', args: nat('-A', 'OUTPUT', '-p', 'tcp', ...comment('install-output'), '-j', CHAINS.output) });
  if (o.inbound) {
    steps.push({ kind: 'jump', args: nat('-A', 'PREROUTING', '-p', 'tcp', ...comment('install-prerouting'), '-j', CHAINS.prerouting) });
  }
  return steps;
}

/**
 * What `weft init --remove` runs: delete the jumps (every copy), then flush
 * and delete weft's chains. Jumps are matched by target chain, so rules from
 * an older weft with other options go too (see removeRules).
 */
export function buildRemoval(): Step[] {
  const all = [CHAINS.output, CHAINS.redirectOut, CHAINS.prerouting, CHAINS.redirectIn];
  return [
    ...all.map((c): Step => ({ kind: 'flush', args: nat('-F', c) })),
    ...all.map((c): Step => ({ kind: 'rule', args: nat('-X', c) })),
  ];
}

/** Shell-quoted command line, for --dry-run and error messages. */
export function formatCommand(program: string, args: string[]): string {
  return [program, ...args].map((a) => (/^[A-Za-z0-9_./:,=+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The commands `weft init` would run, one per line (jumps shown as their `-C || -A` pair). */
export function dryRun(o: InitOptions, program = programFor(o.family)): string[] {
  return buildRules(o).map((s) => {
    const cmd = formatCommand(program, ['-w', ...s.args]);
    if (s.kind === 'new-chain') return `${cmd} 2>/dev/null || true`;
    if (s.kind === 'jump') {
      const check = formatCommand(program, ['-w', ...s.args.map((a) => (a === '-A' ? '-C' : a))]);
      return `${check} 2>/dev/null || ${cmd}`;
    }
    return cmd;
  });
}

export function programFor(family: 4 | 6): string {
  return family === 6 ? 'ip6tables' : 'iptables';
}

// ---- running iptables -----------------------------------------------------

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Runner = (program: string, args: string[]) => Promise<RunResult>;

/** Runs a program; ENOENT becomes an InitError saying iptables is missing. */
export const spawnRunner: Runner = (program, args) =>
  new Promise((resolve, reject) => {
    const p = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new InitError(`${program} not found in PATH: install it (Debian: apt-get install -y iptables) or use an image that has it`));
      } else reject(new InitError(`cannot run ${program}: ${e.message}`));
    });
    p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });

const PERMISSION = /Permission denied|Operation not permitted|you must be root|CAP_NET_ADMIN/i;

function failure(program: string, args: string[], r: RunResult): InitError {
  const msg = r.stderr.trim() || r.stdout.trim() || `exit code ${r.code}`;
  if (PERMISSION.test(msg)) {
    return new InitError(
      `${program} was refused (${msg.split('\n')[0]}): weft init needs the NET_ADMIN capability (run as root, or give the init container capabilities.add: [NET_ADMIN, NET_RAW])`,
    );
  }
  return new InitError(`${formatCommand(program, args)} failed: ${msg}`);
}

async function run(runner: Runner, program: string, args: string[]): Promise<RunResult> {
  return runner(program, ['-w', ...args]);
}

/**
 * Installs the rules (idempotent). Throws InitError with a clear message
 * when iptables is missing or refuses (no NET_ADMIN).
 */
export async function applyRules(o: InitOptions, runner: Runner = spawnRunner): Promise<void> {
  const program = programFor(o.family);
  for (const s of buildRules(o)) {
    if (s.kind === 'new-chain') {
      const r = await run(runner, program, s.args);
      if (r.code !== 0 && !/exists/i.test(r.stderr)) throw failure(program, s.args, r);
      continue;
    }
    if (s.kind === 'jump') {
      const check = s.args.map((a) => (a === '-A' ? '-C' : a));
      const c = await run(runner, program, check);
      if (c.code === 0) continue;
      if (PERMISSION.test(c.stderr)) throw failure(program, check, c);
    }
    const r = await run(runner, program, s.args);
    if (r.code !== 0) throw failure(program, s.args, r);
  }
}

/**
 * Removes every jump into weft's chains from OUTPUT and PREROUTING (whatever
 * options they were installed with), then flushes and deletes the chains.
 * Missing chains are not an error: removing twice is fine.
 */
export async function removeRules(family: 4 | 6 = 4, runner: Runner = spawnRunner): Promise<void> {
  const program = programFor(family);
  for (const [builtin, target] of [
    ['OUTPUT', CHAINS.output],
    ['PREROUTING', CHAINS.prerouting],
  ] as const) {
    const list = await run(runner, program, nat('-S', builtin));
    if (list.code !== 0) throw failure(program, nat('-S', builtin), list);
    for (const line of list.stdout.split('\n')) {
      if (!line.startsWith(`-A ${builtin} `) || !new RegExp(`-j ${target}(\\s|$)`).test(line)) continue;
      const args = nat('-D', ...splitRuleLine(line).slice(1));
      const r = await run(runner, program, args);
      if (r.code !== 0) throw failure(program, args, r);
    }
  }
  for (const s of buildRemoval()) {
    const r = await run(runner, program, s.args);
    if (r.code !== 0 && !/No chain|does not exist|not found/i.test(r.stderr)) throw failure(program, s.args, r);
  }
}

/** Splits an `iptables -S` line into argv, honouring double quotes. */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** `iptables -t nat -S` lines that mention weft's chains (for tests and `weft init --list`). */
export async function listRules(family: 4 | 6 = 4, runner: Runner = spawnRunner): Promise<string[]> {
  const program = programFor(family);
  const r = await run(runner, program, nat('-S'));
  if (r.code !== 0) throw failure(program, nat('-S'), r);
  return r.stdout.split('\n').filter((l) => /WEFT_/.test(l));
}

// `weft up`'s flags become one typed options value here, so every later step
// reads settled facts and every usage error is raised before anything starts.
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { DEFAULT_INBOUND_POLICIES, parseDrainTimeout, PORTS, type DefaultInboundPolicy } from '../api/index.js';
import { bool, int, parseFlags, parseHostPort, str, UsageError, type HostPort } from './args.js';
import { isPodIpPrefix } from './up-workloads.js';

export const UP_HELP = `usage: weft up DIR [flags]

Runs a local mesh from DIR: control (in this process), and for every
Workload (apiVersion local.weft.io/v1alpha1) replica a loopback pod IP, a
sidecar process and the app. Edit the YAML in DIR while it runs: routes
change within a second, Workload edits start, stop, scale or restart pods.

flags:
  --state-dir DIR          control's state: CA, bootstrap token (default DIR/.weft-state)
  --control-listen H:P     control's gRPC address (default <prefix>.0.1:${PORTS.controlGrpc})
  --control-admin H:P      control's admin/metrics address (default <prefix>.0.1:${PORTS.controlAdmin})
  --control H:P            use a control that is already running there instead of starting one
  --pod-ip-prefix 127.N    pods get 127.N.<workload>.<replica> (default 127.0)
  --interval SECONDS       refresh period of the traffic table (default 2)
  --quiet                  no traffic table
  --logs                   copy app and sidecar output to stderr, prefixed by pod
  --log-dir DIR            where each process's output is written (default STATE/logs,
                           or a temp dir when STATE is inside DIR)
  --default-inbound-policy P
                           mesh-wide default inbound policy: all-unauthenticated (default),
                           all-authenticated, deny or audit (see README "Authorization")

  --drain-timeout DURATION how long a stopping pod's sidecar drains (default 5s): a pod
                           removed by an edit or a scale-down drains its sidecar first
                           (endpoints withdrawn, in-flight requests answered), then its app
  --dashboard H:P|off      serve the web dashboard there (default <prefix>.0.1:7070,
                           i.e. http://127.0.0.1:7070/)
  --trace-collector URL    every sidecar exports spans over OTLP/HTTP there (mesh-wide;
                           a Workload's annotation weft.io/trace-collector wins)
  --trace-sampling RATE    share of new traces sampled, 0..1 (default 0.01)
`;

export interface UpOptions {
  /** The config directory (absolute). */
  dir: string;
  /** `127.N`: pods get 127.N.<workload>.<replica>. */
  prefix: string;
  stateDir: string;
  /** `--control` given: use that control, start none. */
  external: boolean;
  controlAddr: HostPort;
  adminAddr: HostPort;
  intervalS: number;
  defaultInboundPolicy: DefaultInboundPolicy | undefined;
  drainMs: number;
  /** SIGKILL only if a sidecar outlives its drain by this much. */
  sidecarStopMs: number;
  /** undefined: `--dashboard off`. */
  dashboardAddr: HostPort | undefined;
  /** The mesh-wide tracing flags every sidecar gets. */
  meshObserveArgs: string[];
  quiet: boolean;
  echoLogs: boolean;
  logDir: string;
}

/** argv → the options, or 'help' when --help was asked for; throws UsageError on bad input. */
export function parseUpFlags(argv: string[]): UpOptions | 'help' {
  const p = parseFlags(argv, {
    help: { type: 'boolean', short: 'h' },
    'state-dir': { type: 'string' },
    'control-listen': { type: 'string' },
    'control-admin': { type: 'string' },
    control: { type: 'string' },
    'pod-ip-prefix': { type: 'string' },
    interval: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    logs: { type: 'boolean' },
    'log-dir': { type: 'string' },
    'default-inbound-policy': { type: 'string' },

    'drain-timeout': { type: 'string' },
    dashboard: { type: 'string' },
    'trace-collector': { type: 'string' },
    'trace-sampling': { type: 'string' },
  });
  if (bool(p, 'help')) return 'help';
  if (p.positionals.length !== 1) throw new UsageError('expects exactly one DIR (see weft up --help)');
  const dir = resolve(p.positionals[0]!);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`${p.positionals[0]} is not a directory`);
  const prefix = str(p, 'pod-ip-prefix') ?? '127.0';
  if (!isPodIpPrefix(prefix)) throw new UsageError(`--pod-ip-prefix: "${prefix}" is not 127.N (N 0..255)`);
  const stateDir = resolve(str(p, 'state-dir') ?? join(dir, '.weft-state'));
  const external = str(p, 'control');
  const controlAddr: HostPort = external
    ? parseHostPort(external, '--control')
    : parseHostPort(str(p, 'control-listen') ?? `${prefix}.0.1:${PORTS.controlGrpc}`, '--control-listen');
  const adminAddr = parseHostPort(str(p, 'control-admin') ?? `${controlAddr.host}:${PORTS.controlAdmin}`, '--control-admin');
  const intervalS = int(p, 'interval', { min: 1, max: 3600 }) ?? 2;
  const defaultInboundPolicy = str(p, 'default-inbound-policy');
  if (defaultInboundPolicy !== undefined && !(DEFAULT_INBOUND_POLICIES as readonly string[]).includes(defaultInboundPolicy)) {
    throw new UsageError(`--default-inbound-policy: "${defaultInboundPolicy}" is not one of ${DEFAULT_INBOUND_POLICIES.join(', ')}`);
  }

  const drainFlag = parseDrainTimeout(str(p, 'drain-timeout') ?? '5s');
  if (!drainFlag.ok) throw new UsageError(drainFlag.error);
  const drainMs = drainFlag.ms;
  const dashboardFlag = str(p, 'dashboard') ?? `${prefix}.0.1:7070`;
  const dashboardAddr = dashboardFlag === 'off' ? undefined : parseHostPort(dashboardFlag, '--dashboard');
  const meshObserveArgs = [
    ...(str(p, 'trace-collector') ? ['--trace-collector', str(p, 'trace-collector')!] : []),
    ...(str(p, 'trace-sampling') ? ['--trace-sampling', str(p, 'trace-sampling')!] : []),
  ];
  return {
    dir,
    prefix,
    stateDir,
    external: Boolean(external),
    controlAddr,
    adminAddr,
    intervalS,
    defaultInboundPolicy: defaultInboundPolicy as DefaultInboundPolicy | undefined,
    drainMs,
    sidecarStopMs: drainMs + 2_000,
    dashboardAddr,
    meshObserveArgs,
    quiet: bool(p, 'quiet'),
    echoLogs: bool(p, 'logs'),
    logDir: logDirFor(dir, stateDir, str(p, 'log-dir')),
  };
}

/**
 * Log lines written inside DIR would wake control's file watcher (it
 * watches DIR recursively) many times a second; keep them outside.
 */
function logDirFor(dir: string, stateDir: string, flag: string | undefined): string {
  const stateInDir = !relative(dir, stateDir).startsWith('..');
  return resolve(
    flag ??
      (stateInDir
        ? join(tmpdir(), `weft-up-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`, 'logs')
        : join(stateDir, 'logs')),
  );
}

// weft sidecar: one sidecar for one workload replica, until SIGTERM/SIGINT
// or POST /shutdown, then a graceful drain. Kubernetes' downward API
// variables (POD_IP, POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT) are the
// defaults of the matching flags.
import { startSidecar, type SidecarHandle } from '../sidecar/index.js';
import { LIMITS, limitsFromFlags } from '../sidecar/limits.js';
import { bool, int, list, parseFlags, parseIntIn, parseLabels, str, UsageError } from './args.js';

const USAGE = `usage: weft sidecar --control HOST:PORT --state-dir STATE --pod-ip IP --namespace NS --workload NAME --service-account SA [options]

  --control HOST:PORT      control's gRPC (default $WEFT_CONTROL or 127.0.0.1:7443)
  --state-dir STATE        trust bundle and bootstrap token (local mode)
  --pod-ip IP              address to listen on (default $POD_IP)
  --pod-name NAME          (default $POD_NAME)
  --namespace NS           (default $POD_NAMESPACE)
  --workload NAME          workload name for metrics and registration
  --service-account SA     (default $SERVICE_ACCOUNT, else "default")
  --labels k=v,k=v         pod labels (local mode: endpoint selection)
  --app-ports 8080,9090    ports the app listens on
  --subscribe ns/svc,...   Services to subscribe to ahead of first use
  --strict                 refuse plaintext callers on the inbound port
  --trust-domain TD        SPIFFE trust domain (default cluster.local)
  --token-file PATH        credential for Certify (default STATE/bootstrap-token)
  --trust-bundle PATH      trust anchors (default STATE/trust-bundle.pem)
  --grace-ms MS            drain time on shutdown (default 5000)

limits (per workload; pod annotation config.weft.io/<flag> sets them when injected):
  --request-head-timeout D  a request head must arrive within D (default 10s): else 408
  --max-header-bytes N      largest request head (default 16Ki): else 431
  --max-headers N           most header fields (default 100): else 431
  --idle-timeout D          close a connection idle this long (default 300s)
  --max-connections N       connections per sidecar listener (default 16384)
  --max-concurrent-streams N  HTTP/2 streams per connection (default 250): else RST_STREAM
  --merge-slashes           path normalisation merges repeated slashes (default off)
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = process.env;
  let opts: Parameters<typeof startSidecar>[0];
  let graceMs: number;
  try {
    const p = parseFlags(
      argv,
      {
        control: { type: 'string' },
        'state-dir': { type: 'string' },
        'pod-ip': { type: 'string' },
        'pod-name': { type: 'string' },
        namespace: { type: 'string' },
        workload: { type: 'string' },
        'service-account': { type: 'string' },
        labels: { type: 'string' },
        'app-ports': { type: 'string', multiple: true },
        subscribe: { type: 'string', multiple: true },
        strict: { type: 'boolean' },
        'trust-domain': { type: 'string' },
        'token-file': { type: 'string' },
        'trust-bundle': { type: 'string' },
        'grace-ms': { type: 'string' },
        ...Object.fromEntries(Object.values(LIMITS).map((l) => [l.flag, { type: l.kind === 'boolean' ? ('boolean' as const) : ('string' as const) }])),
      },
      { positionals: false },
    );
    const need = (name: string, v: string | undefined): string => {
      if (!v) throw new UsageError(`--${name} is required`);
      return v;
    };
    const podName = str(p, 'pod-name') ?? env.POD_NAME;
    const limitFlags: Record<string, string | boolean | undefined> = {};
    for (const l of Object.values(LIMITS)) limitFlags[l.flag] = l.kind === 'boolean' ? (bool(p, l.flag) ? true : undefined) : str(p, l.flag);
    const { limits, errors: limitErrors } = limitsFromFlags(limitFlags);
    if (limitErrors.length > 0) throw new UsageError(limitErrors.join('; '));
    opts = {
      control: str(p, 'control') ?? env.WEFT_CONTROL ?? '127.0.0.1:7443',
      stateDir: need('state-dir', str(p, 'state-dir') ?? env.WEFT_STATE_DIR),
      podIP: need('pod-ip', str(p, 'pod-ip') ?? env.POD_IP),
      namespace: need('namespace', str(p, 'namespace') ?? env.POD_NAMESPACE),
      workload: need('workload', str(p, 'workload') ?? env.WEFT_WORKLOAD ?? podName?.replace(/-[a-z0-9]{5}$/, '').replace(/-[a-z0-9]{8,10}$/, '')),
      serviceAccount: str(p, 'service-account') ?? env.SERVICE_ACCOUNT ?? 'default',
      labels: parseLabels(str(p, 'labels') ?? ''),
      appPorts: list(p, 'app-ports').map((s) => parseIntIn(s, '--app-ports', { min: 1, max: 65535 })),
      subscribe: list(p, 'subscribe'),
      strict: bool(p, 'strict'),
      limits,
      ...(podName ? { podName } : {}),
      ...(str(p, 'trust-domain') ? { trustDomain: str(p, 'trust-domain') } : {}),
      ...(str(p, 'token-file') ? { tokenFile: str(p, 'token-file') } : {}),
      ...(str(p, 'trust-bundle') ? { trustBundleFile: str(p, 'trust-bundle') } : {}),
    };
    graceMs = int(p, 'grace-ms', { min: 0 }) ?? 5_000;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`weft sidecar: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  let handle: SidecarHandle;
  try {
    handle = await startSidecar({ ...opts, log });
  } catch (e) {
    process.stderr.write(`weft sidecar: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`sidecar: outbound ${handle.outboundAddress} inbound ${handle.inboundAddress} admin ${handle.adminAddress}\n`);
  void handle.ready.then(() => log('sidecar ready'));
  const h = handle;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      log(`sidecar: ${why}: draining for up to ${graceMs} ms`);
      h.close(graceMs).then(
        () => resolve(0),
        (e: unknown) => {
          log(`sidecar: shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // POST /shutdown closes the handle itself; exit once it has.
    void h.closed.then(() => resolve(0));
  });
}

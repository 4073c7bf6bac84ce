// weft sidecar: one sidecar for one workload replica, until SIGTERM/SIGINT
// or POST /shutdown, then a graceful drain. Kubernetes' downward API
// variables (POD_IP, POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT) are the
// defaults of the matching flags.
import { ACCESS_LOG_FORMATS, collectorUrl, DEFAULT_DRAIN_TIMEOUT_MS, parseDrainTimeout, parseFailureAccrual, parseMaxInFlight, startSidecar, type AccessLogFormat, type SidecarHandle } from '../sidecar/index.js';
import { parseAppProbes } from '../api/index.js';
import { LIMITS, limitsFromFlags } from '../sidecar/listen/limits.js';
import { bool, int, list, parseFlags, parseIntIn, parseLabels, str, UsageError } from './args.js';

const USAGE = `usage: weft sidecar --control HOST:PORT --state-dir STATE --pod-ip IP --namespace NS --workload NAME --service-account SA [options]

  --control HOST:PORT[,HOST:PORT...]
                           control's gRPC (default $WEFT_CONTROL or 127.0.0.1:7443);
                           several replicas: tried in turn, the next one after a failure
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
  --drain-timeout DURATION on SIGTERM/SIGINT: withdraw the endpoints, answer in-flight
                           requests, stop when idle or after this long (default 5s;
                           "1500ms", "10s"; Kubernetes: annotation config.weft.io/drain-timeout)
  --grace-ms MS            the same in milliseconds (older spelling)
  --app-probes JSON        the app's probes served on the admin port as /app-probe/...
                           (default $WEFT_APP_PROBES, which the injector sets)

limits (per workload; pod annotation config.weft.io/<flag> sets them when injected):
  --request-head-timeout D  a request head must arrive within D (default 10s): else 408
  --max-header-bytes N      largest request head (default 16Ki): else 431
  --max-headers N           most header fields (default 100): else 431
  --idle-timeout D          close a connection idle this long (default 300s)
  --max-connections N       connections per sidecar listener (default 16384)
  --max-concurrent-streams N  HTTP/2 streams per connection (default 250): else RST_STREAM
  --merge-slashes           path normalisation merges repeated slashes (default off)
  --failure-accrual N      consecutive failures that take an endpoint out of the
                           balancer (default 7, 0 turns it off; pod annotation
                           config.weft.io/failure-accrual, $WEFT_FAILURE_ACCRUAL)
  --max-in-flight N        requests in flight per backend before the sidecar sheds
                           with 503 overloaded (default 10000, 0: no bound;
                           config.weft.io/max-in-flight, $WEFT_MAX_IN_FLIGHT)
  --access-log json        one JSON line per request on stdout (default $WEFT_ACCESS_LOG;
                           the pod annotation weft.io/access-log: json)
  --access-log-path PATH   write the access log to PATH instead of stdout
  --trace-collector URL    export spans over OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/traces
                           (default $WEFT_TRACE_COLLECTOR; annotation weft.io/trace-collector)
  --trace-sampling RATE    share of new traces sampled, 0..1 (default $WEFT_TRACE_SAMPLING or 0.01;
                           a caller's sampled traceparent is always followed)
  --trace-encoding ENC     protobuf (default) or json
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const env = process.env;
  let opts: Parameters<typeof startSidecar>[0];
  let graceMs: number;
  const warnings: string[] = [];
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
        'drain-timeout': { type: 'string' },
        'app-probes': { type: 'string' },
        ...Object.fromEntries(Object.values(LIMITS).map((l) => [l.flag, { type: l.kind === 'boolean' ? ('boolean' as const) : ('string' as const) }])),
        'failure-accrual': { type: 'string' },
        'max-in-flight': { type: 'string' },
        'access-log': { type: 'string' },
        'access-log-path': { type: 'string' },
        'trace-collector': { type: 'string' },
        'trace-sampling': { type: 'string' },
        'trace-encoding': { type: 'string' },
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
    const drainFlag = str(p, 'drain-timeout') ?? env.WEFT_DRAIN_TIMEOUT;
    const drain = drainFlag === undefined ? undefined : parseDrainTimeout(drainFlag);
    if (drain && !drain.ok) throw new UsageError(drain.error);
    graceMs = (drain?.ok ? drain.ms : undefined) ?? int(p, 'grace-ms', { min: 0 }) ?? DEFAULT_DRAIN_TIMEOUT_MS;
    opts.drainTimeoutMs = graceMs;
    const probesJson = str(p, 'app-probes') ?? env.WEFT_APP_PROBES;
    if (probesJson) {
      const r = parseAppProbes(probesJson, str(p, 'app-probes') ? '--app-probes' : 'WEFT_APP_PROBES');
      if (!r.ok) throw new UsageError(r.error);
      opts.appProbes = r.probes;
    }
    // Empty values (an unset annotation through the downward API) mean the default.
    const accrual = str(p, 'failure-accrual') || env.WEFT_FAILURE_ACCRUAL || undefined;
    if (accrual !== undefined) {
      const v = parseFailureAccrual(accrual);
      if (typeof v !== 'number') throw new UsageError(`--failure-accrual: ${v.error}`);
      opts.failureAccrual = v;
    }
    const inflight = str(p, 'max-in-flight') || env.WEFT_MAX_IN_FLIGHT || undefined;
    if (inflight !== undefined) {
      const v = parseMaxInFlight(inflight);
      if (typeof v !== 'number') throw new UsageError(`--max-in-flight: ${v.error}`);
      opts.maxInFlight = v;
    }
    // A bad flag is a usage error; a bad annotation (read from the environment
    // the injector fills from it) is a warning and leaves that feature off:
    // a pod's annotation must not crash-loop its sidecar.
    const fromFlag = (k: string) => str(p, k) !== undefined;
    const problem = (flag: string, envName: string, msg: string): void => {
      if (fromFlag(flag)) throw new UsageError(`--${flag}: ${msg}`);
      warnings.push(`${envName} (pod annotation): ${msg}; ignored`);
    };
    const accessLog = str(p, 'access-log') ?? (env.WEFT_ACCESS_LOG || undefined);
    if (accessLog !== undefined && accessLog !== 'off') {
      if (!(ACCESS_LOG_FORMATS as readonly string[]).includes(accessLog)) problem('access-log', 'WEFT_ACCESS_LOG', `"${accessLog}" is not one of ${ACCESS_LOG_FORMATS.join(', ')} (or off)`);
      else {
        const path = str(p, 'access-log-path');
        opts.accessLog = { format: accessLog as AccessLogFormat, ...(path ? { path } : {}) };
      }
    }
    const collector = str(p, 'trace-collector') ?? (env.WEFT_TRACE_COLLECTOR || undefined);
    if (collector !== undefined && collector !== 'off') {
      const u = collectorUrl(collector);
      const rateText = str(p, 'trace-sampling') ?? (env.WEFT_TRACE_SAMPLING || '0.01');
      const sampling = Number(rateText);
      const encoding = str(p, 'trace-encoding') ?? 'protobuf';
      if (typeof u === 'string') problem('trace-collector', 'WEFT_TRACE_COLLECTOR', u);
      else if (!(rateText.trim() !== '' && sampling >= 0 && sampling <= 1)) problem('trace-sampling', 'WEFT_TRACE_SAMPLING', `"${rateText}" is not a number from 0 to 1`);
      else if (encoding !== 'protobuf' && encoding !== 'json') throw new UsageError(`--trace-encoding: "${encoding}" is not protobuf or json`);
      else opts.trace = { collector: u.href, sampling, encoding };
    }
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
  for (const w of warnings) log(`sidecar: ${w}`);
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
      h.close(graceMs, why).then(
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

// weft control --config-dir DIR --state-dir STATE [--listen 127.0.0.1:7443] [--admin 127.0.0.1:7091] [--trust-domain TD]
// Runs the local-mode control plane until SIGTERM or SIGINT, then shuts down
// gracefully (streams end with UNAVAILABLE so sidecars reconnect to the next one).
import { hostname } from 'node:os';
import { kubernetesExtension, startControl } from '../control/index.js';
import { bool, parseFlags, requireStr, str } from './args.js';
import { DEFAULT_INBOUND_POLICIES, type DefaultInboundPolicy } from '../api/index.js';

const USAGE = `usage: weft control --config-dir DIR --state-dir STATE [--listen HOST:PORT] [--admin HOST:PORT] [--trust-domain TD]
       weft control --kubernetes --issuer-dir DIR --state-dir STATE [--listen HOST:PORT] [--admin HOST:PORT]

  --config-dir DIR     directory of Service / Gateway API / Workload YAML, watched
  --state-dir STATE    local trust anchor, bootstrap token, registry (created if missing)
  --listen HOST:PORT   gRPC Discovery and Identity (default 127.0.0.1:7443)
  --admin HOST:PORT    /metrics /ready /live /resources /config (default 127.0.0.1:7091)
  --trust-domain TD    SPIFFE trust domain (default cluster.local)
  --kubernetes         read the cluster's API (in-cluster config, else KUBECONFIG), write route
                       status behind a Lease (identity: POD_NAME), certify sidecars with TokenReview;
                       endpoints come from EndpointSlices, not from connected sidecars
  --issuer-dir DIR     mounted issuer (tls.crt/tls.key of the issuer Secret, trust bundle) instead
                       of a local CA in STATE
  --lease-namespace NS namespace of the Lease (default: POD_NAMESPACE, else weft-system)
  --default-inbound-policy P
                       mesh-wide default inbound policy: all-unauthenticated (default),
                       all-authenticated, deny or audit; namespaces and pods override it
                       with the annotation weft.io/default-inbound-policy

  --replica-id NAME    local-mode HA: several controls share STATE and DIR; each keeps its
                       registry in STATE/registry-NAME.json and serves the others' sidecars
                       as endpoints too (sidecars: --control A,B)
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const p = parseFlags(
    argv,
    {
      'config-dir': { type: 'string' },
      'state-dir': { type: 'string' },
      listen: { type: 'string' },
      admin: { type: 'string' },
      'trust-domain': { type: 'string' },
      kubernetes: { type: 'boolean' },
      'issuer-dir': { type: 'string' },
      'lease-namespace': { type: 'string' },
      'default-inbound-policy': { type: 'string' },

      'replica-id': { type: 'string' },
    },
    { positionals: false },
  );
  const flags: Record<string, string | undefined> = {
    'config-dir': str(p, 'config-dir'),
    listen: str(p, 'listen'),
    admin: str(p, 'admin'),
    'trust-domain': str(p, 'trust-domain'),
  };
  const stateDir = requireStr(p, 'state-dir');
  const defaultInboundPolicy = str(p, 'default-inbound-policy') ?? process.env.WEFT_DEFAULT_INBOUND_POLICY;
  if (defaultInboundPolicy !== undefined && !(DEFAULT_INBOUND_POLICIES as readonly string[]).includes(defaultInboundPolicy)) {
    process.stderr.write(`weft control: --default-inbound-policy: "${defaultInboundPolicy}" is not one of ${DEFAULT_INBOUND_POLICIES.join(', ')}\n`);
    return 2;
  }
  const kubernetes = bool(p, 'kubernetes');
  const issuerDir = str(p, 'issuer-dir');
  const leaseNamespace = str(p, 'lease-namespace') ?? process.env.POD_NAMESPACE;
  const replicaId = str(p, 'replica-id');
  if (replicaId !== undefined && !/^[A-Za-z0-9._-]{1,63}$/.test(replicaId)) {
    process.stderr.write(`weft control: --replica-id: "${replicaId}" must be 1-63 letters, digits, ".", "_" or "-"\n`);
    return 2;
  }
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  let handle;
  try {
    handle = await startControl({
      stateDir,
      log,
      ...(flags['config-dir'] ? { configDir: flags['config-dir'] } : {}),
      ...(flags.listen ? { listen: flags.listen } : {}),
      ...(flags.admin ? { adminListen: flags.admin } : {}),
      ...(flags['trust-domain'] ? { trustDomain: flags['trust-domain'] } : {}),
      ...(issuerDir ? { issuerDir } : {}),
      ...(defaultInboundPolicy ? { defaultInboundPolicy: defaultInboundPolicy as DefaultInboundPolicy } : {}),

      ...(replicaId ? { replicaId } : {}),
      ...(kubernetes
        ? {
            registerWorkloads: false,
            extend: kubernetesExtension({
              identity: process.env.POD_NAME || hostname(),
              ...(leaseNamespace ? { leaseNamespace } : {}),
            }),
          }
        : {}),
    });
  } catch (e) {
    process.stderr.write(`weft control: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`control: grpc ${handle.grpcAddress} admin ${handle.adminAddress}\n`);
  const h = handle;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      log(`control: ${sig}: shutting down`);
      h.close().then(
        () => resolve(0),
        (e: unknown) => {
          log(`control: shutdown failed: ${(e as Error).message}`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

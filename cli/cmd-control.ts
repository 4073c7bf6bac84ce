// weft control --config-dir DIR --state-dir STATE [--listen 127.0.0.1:7443] [--admin 127.0.0.1:7091] [--trust-domain TD]
// Runs the local-mode control plane until SIGTERM or SIGINT, then shuts down
// gracefully (streams end with UNAVAILABLE so sidecars reconnect to the next one).
import { startControl } from '../control/index.js';

const USAGE = `usage: weft control --config-dir DIR --state-dir STATE [--listen HOST:PORT] [--admin HOST:PORT] [--trust-domain TD]

  --config-dir DIR     directory of Service / Gateway API / Workload YAML, watched
  --state-dir STATE    local trust anchor, bootstrap token, registry (created if missing)
  --listen HOST:PORT   gRPC Discovery and Identity (default 127.0.0.1:7443)
  --admin HOST:PORT    /metrics /ready /live /resources /config (default 127.0.0.1:7091)
  --trust-domain TD    SPIFFE trust domain (default cluster.local)
`;

export async function run(argv: string[]): Promise<number> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m) {
      process.stderr.write(`weft control: unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
      return 2;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) {
      process.stderr.write(`weft control: --${m[1]} needs a value\n`);
      return 2;
    }
    flags[m[1]!] = value;
  }
  const known = new Set(['config-dir', 'state-dir', 'listen', 'admin', 'trust-domain']);
  for (const k of Object.keys(flags)) {
    if (!known.has(k)) {
      process.stderr.write(`weft control: unknown flag --${k}\n${USAGE}`);
      return 2;
    }
  }
  const stateDir = flags['state-dir'];
  if (!stateDir) {
    process.stderr.write(`weft control: --state-dir is required\n${USAGE}`);
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

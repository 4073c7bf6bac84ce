// `weft inject -f FILE|-`: add the sidecar to the workloads of a YAML stream, offline.
// `weft inject --webhook ...`: serve the mutating admission webhook (what the injector Deployment runs).
import { readFileSync } from 'node:fs';
import { injectYaml, startInjector, type InjectOptions } from '../injector/index.js';
import { bool, parseFlags, parseHostPort, requireStr, str, UsageError, waitForSignal } from './args.js';

const HELP = `usage: weft inject -f FILE|- [--legacy-sidecar] [--image IMAGE] [--control HOST:PORT]
       weft inject --webhook --cert-file FILE --key-file FILE [--listen :8443] [--legacy-sidecar]

Adds weft-init and the weft-proxy native sidecar to the pod templates of
Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and Pods in a
YAML stream, and prints the stream; other documents pass through unchanged.
Pods that opt out (weft.io/inject: disabled), use hostNetwork, or are already
injected are left alone. A summary goes to stderr.

--legacy-sidecar  the proxy as a plain container with a start-up hold
                  (clusters older than Kubernetes 1.29)
`;

async function readInput(f: string): Promise<string> {
  if (f !== '-') return readFileSync(f, 'utf8');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const p = parseFlags(argv, {
    file: { type: 'string', short: 'f' },
    webhook: { type: 'boolean' },
    listen: { type: 'string' },
    'cert-file': { type: 'string' },
    'key-file': { type: 'string' },
    'legacy-sidecar': { type: 'boolean' },
    image: { type: 'string' },
    control: { type: 'string' },
  }, { positionals: false });
  const opts: InjectOptions = { nativeSidecar: !bool(p, 'legacy-sidecar') };
  const image = str(p, 'image');
  if (image) opts.image = image;
  const control = str(p, 'control');
  if (control) opts.controlAddress = control;

  if (bool(p, 'webhook')) {
    const { host, port } = parseHostPort(str(p, 'listen') ?? ':8443', '--listen', '0.0.0.0');
    const srv = await startInjector({ ...opts, host, port, certFile: requireStr(p, 'cert-file'), keyFile: requireStr(p, 'key-file') });
    process.stderr.write(`weft injector listening on https://${srv.address}:${srv.port} (POST /mutate, /mutate-pod-opt-in)\n`);
    await waitForSignal();
    await srv.close();
    return 0;
  }
  const file = str(p, 'file');
  if (!file) throw new UsageError('-f FILE (or -f - for stdin) is required');
  let result;
  try {
    result = injectYaml(await readInput(file), opts);
  } catch (e) {
    process.stderr.write(`weft inject: ${file === '-' ? 'stdin' : file}: ${(e as Error).message}\n`);
    return 1;
  }
  process.stdout.write(result.yaml);
  for (const r of result.report.results) {
    process.stderr.write(`${r.resource} ${r.injected ? 'injected' : `skipped: ${r.reason}`}\n`);
    for (const w of r.warnings) process.stderr.write(`  warning: ${w}\n`);
  }
  return 0;
}

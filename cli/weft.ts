#!/usr/bin/env node
// The `weft` command: dispatches `weft <cmd> ...` to ./cmd-<cmd>.js, whose
// `run(argv)` returns the exit code. Modules load on demand so that
// `weft sidecar` never loads control's code, and the reverse.
// Only node: modules are imported statically: the compile cache must be on
// before anything of weft (api/ loads grpc-js) is loaded.
import * as nodeModule from 'node:module';

/**
 * Commands that run as long-lived processes whose start-up counts (a pod's
 * sidecar is not ready until it is): they keep V8's compiled code of every
 * module in Node's on-disk compile cache (Node ≥ 22.1: the image's LTS), so
 * the next start skips compiling grpc-js, protobufjs and weft itself. On
 * Node 26 here, process start to a sidecar's /ready: median 250 → 222 ms and
 * 262 → 235 ms in two interleaved rounds of 7, ~35 ms less CPU. The
 * directory is NODE_COMPILE_CACHE (the image sets one it ships warm), else
 * Node's default under the OS temp dir; NODE_DISABLE_COMPILE_CACHE turns it
 * off. A cache that cannot be read or written only costs start-up time.
 */
const COMPILE_CACHED = new Set(['sidecar', 'control', 'up']);

function enableCompileCache(): void {
  const enable = (nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache;
  if (!enable || process.env.NODE_DISABLE_COMPILE_CACHE) return;
  try {
    enable();
  } catch {
    // Start-up without the cache: slower, same behaviour.
  }
}

const COMMANDS: Array<[string, string]> = [
  ['up', 'run a local mesh from a directory of YAML: control, sidecars and the apps it declares'],
  ['control', 'run the control plane (Discovery and Identity over gRPC)'],
  ['sidecar', 'run one sidecar (outbound 7001, inbound 7002, admin 7090)'],
  ['init', 'install the iptables rules that send a pod\'s traffic through its sidecar'],
  ['inject', 'add the sidecar to Kubernetes manifests'],
  ['install', 'print or apply the manifests that install weft into a cluster'],
  ['certs', 'create and inspect trust anchors, issuers and workload certificates'],
  ['check', 'check that the mesh is healthy'],
  ['get', 'list mesh resources and their status'],
  ['describe', 'explain how a Service\'s traffic is routed'],
  ['stat', 'live traffic per service, route or backend: RPS, success rate, latency'],
  ['tap', 'stream the live requests the sidecars see, one line each'],
  ['dashboard', 'serve the web dashboard: services, routes, backends, topology, identities'],
  ['conformance', 'run the Gateway API mesh conformance scenarios'],
  ['version', 'print the version'],
];

function usage(): string {
  const w = Math.max(...COMMANDS.map(([c]) => c.length));
  return [
    'usage: weft <command> [flags]',
    '',
    'commands:',
    ...COMMANDS.map(([c, d]) => `  ${c.padEnd(w)}  ${d}`),
    '',
    'Run `weft <command> --help` for the flags of one command.',
  ].join('\n');
}

interface CommandModule {
  run(argv: string[]): Promise<number>;
}

function isCommandModule(m: unknown): m is CommandModule {
  return typeof m === 'object' && m !== null && typeof (m as { run?: unknown }).run === 'function';
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    if (cmd === 'help' && rest[0]) return main([rest[0], '--help']);
    process.stdout.write(usage() + '\n');
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === 'version' || cmd === '--version' || cmd === '-v') {
    const { WEFT_VERSION } = await import('../api/index.js');
    process.stdout.write(`weft ${WEFT_VERSION} (node ${process.versions.node})\n`);
    return 0;
  }
  if (!COMMANDS.some(([c]) => c === cmd)) {
    process.stderr.write(`weft: unknown command "${cmd}"\n\n${usage()}\n`);
    return 2;
  }
  if (COMPILE_CACHED.has(cmd)) enableCompileCache();
  const url = new URL(`./cmd-${cmd}.js`, import.meta.url);
  let mod: unknown;
  try {
    mod = await import(url.href);
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { url?: string };
    // Only "this command's own module is missing" means not built; a missing
    // import deeper down is a real error and is reported as such below.
    if (err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(`cmd-${cmd}.js`)) {
      process.stderr.write(`weft: the "${cmd}" command is not available in this build\n`);
      return 2;
    }
    throw e;
  }
  if (!isCommandModule(mod)) {
    process.stderr.write(`weft: cmd-${cmd}.js does not export run(argv)\n`);
    return 2;
  }
  try {
    return await mod.run(rest);
  } catch (e) {
    if ((e as Error)?.name === 'UsageError') {
      process.stderr.write(`weft ${cmd}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Long-running commands return only after they stopped their servers;
    // whatever handle is left (a stray timer, a socket in TIME_WAIT cleanup)
    // must not keep the process alive past its exit code.
    setImmediate(() => process.exit(code)).unref();
  },
  (e: unknown) => {
    const err = e as Error;
    process.stderr.write(`weft: ${err?.message ?? String(e)}\n`);
    if (process.env.WEFT_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
    process.exit(1);
  },
);

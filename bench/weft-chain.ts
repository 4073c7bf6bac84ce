// weft as real processes: control and two sidecars (client and server pods on
// their own loopback addresses), the app behind the server's inbound side,
// reached through a Service with an HTTPRoute — the mesh's own path.
import { mkdirSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { start, stop, waitListening, httpGet, sleep, tail, type Proc } from './procs.js';
import { HOST_HEADER, checkChain, type Chain } from './chains.js';
import { SIDECAR_ENV, sidecarNodeOptions } from '../api/index.js';

export const WEFT = {
  control: '127.0.94.1',
  controlPort: 7443,
  controlAdmin: 7091,
  client: '127.0.94.2',
  server: '127.0.94.3',
  appPort: 8080,
  outbound: 7001,
  inbound: 7002,
  admin: 7090,
} as const;

export const CLI = join(process.cwd(), 'dist', 'cli', 'weft.js');

export const ROUTE_YAML = `apiVersion: v1
kind: Namespace
metadata:
  name: bench
---
apiVersion: v1
kind: Service
metadata:
  name: app
  namespace: bench
spec:
  selector:
    app: server
  ports:
  - name: http
    port: 80
    targetPort: ${WEFT.appPort}
    appProtocol: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: app
  namespace: bench
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: app
    port: 80
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /
    backendRefs:
    - name: app
      port: 80
`;

/** The gRPC Service and a GRPCRoute on it (own file: a problem there leaves the HTTP config alone). */
export const GRPC_YAML = `apiVersion: v1
kind: Service
metadata:
  name: grpc
  namespace: bench
spec:
  selector:
    app: server
  ports:
  - name: grpc
    port: 9090
    targetPort: 9090
    appProtocol: grpc
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc
  namespace: bench
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: grpc
    port: 9090
  rules:
  - matches:
    - method:
        service: bench.Echo
    backendRefs:
    - name: grpc
      port: 9090
`;

export interface WeftChain extends Chain {
  control: Proc;
  stateDir: string;
  configDir: string;
  dir: string;
}

export function startControl(dir: string, configDir: string, stateDir: string, nodeArgs: string[] = []): Proc {
  return start(
    'weft-control',
    process.execPath,
    [
      ...nodeArgs,
      CLI,
      'control',
      '--config-dir',
      configDir,
      '--state-dir',
      stateDir,
      '--listen',
      `${WEFT.control}:${WEFT.controlPort}`,
      '--admin',
      `${WEFT.control}:${WEFT.controlAdmin}`,
    ],
    join(dir, 'weft-control.log'),
  );
}

export interface SidecarSpec {
  podIP: string;
  workload: string;
  serviceAccount: string;
  labels: string;
  appPorts?: number[];
}

export function sidecarArgs(stateDir: string, s: SidecarSpec): string[] {
  const a = [
    CLI,
    'sidecar',
    '--control',
    `${WEFT.control}:${WEFT.controlPort}`,
    '--state-dir',
    stateDir,
    '--pod-ip',
    s.podIP,
    '--namespace',
    'bench',
    '--workload',
    s.workload,
    '--service-account',
    s.serviceAccount,
    '--labels',
    s.labels,
  ];
  if (s.appPorts && s.appPorts.length > 0) a.push('--app-ports', s.appPorts.join(','));
  return a;
}

/**
 * The environment a sidecar runs with: the image's (api/runtime.ts: NODE_OPTIONS
 * and MALLOC_ARENA_MAX, as the Dockerfile, the injector and `weft up` set them),
 * then BENCH_SIDECAR_NODE_OPTIONS in place of the image's NODE_OPTIONS when set
 * (e.g. "--max-semi-space-size=8"; "none" for no V8 flags), then extra — a
 * variant's env (WEFT_HOP=mux, NODE_OPTIONS=…), which wins.
 */
export function sidecarEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  const override = process.env.BENCH_SIDECAR_NODE_OPTIONS;
  const nodeOptions = override === undefined || override === '' ? sidecarNodeOptions(process.env.NODE_OPTIONS) : override === 'none' ? '' : override;
  return { ...process.env, ...SIDECAR_ENV, NODE_OPTIONS: nodeOptions, ...extra };
}

export function startSidecar(dir: string, stateDir: string, s: SidecarSpec, nodeArgs: string[] = [], tag = '', nodeBin = process.execPath, env: Readonly<Record<string, string>> = {}): Proc {
  return start(`weft-sidecar-${s.workload}${tag}`, nodeBin, [...nodeArgs, ...sidecarArgs(stateDir, s)], join(dir, `weft-sidecar-${s.workload}${tag}.log`), sidecarEnv(env));
}

/** Starts the chain's two sidecars (server first) with env added to sidecarEnv, and waits until both are ready. */
export async function startSidecarPair(dir: string, stateDir: string, nodeBin = process.execPath, env: Readonly<Record<string, string>> = {}, tag = ''): Promise<{ client: Proc; server: Proc }> {
  const server = startSidecar(dir, stateDir, SERVER, sidecarNodeArgs(), tag, nodeBin, env);
  const client = startSidecar(dir, stateDir, CLIENT, sidecarNodeArgs(), tag, nodeBin, env);
  try {
    await waitReady(server, WEFT.server);
    await waitReady(client, WEFT.client);
  } catch (e) {
    await shutdownSidecar(client, WEFT.client);
    await shutdownSidecar(server, WEFT.server);
    throw e;
  }
  return { client, server };
}

/** BENCH_SIDECAR_NODE_ARGS: extra node flags for the measured sidecars (e.g. GC sizing experiments). */
export function sidecarNodeArgs(): string[] {
  return (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
}

/** Polls the admin /ready until 200; returns ms since the process was spawned. */
export async function waitReady(p: Proc, podIP: string, timeoutMs = 15_000, pollMs = 5): Promise<number> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (p.exited) throw new Error(`${p.name} exited before /ready:\n${tail(p)}`);
    try {
      const r = await httpGet(podIP, WEFT.admin, '/ready', undefined, 1000);
      if (r.status === 200) return Number(process.hrtime.bigint() - p.startedAt) / 1e6;
    } catch {
      /* not listening yet */
    }
    await sleep(pollMs);
  }
  throw new Error(`${p.name}: /ready not 200 after ${timeoutMs} ms:\n${tail(p)}`);
}

export const CLIENT: SidecarSpec = { podIP: WEFT.client, workload: 'client', serviceAccount: 'client', labels: 'app=client' };
export const SERVER: SidecarSpec = { podIP: WEFT.server, workload: 'server', serviceAccount: 'server', labels: 'app=server', appPorts: [WEFT.appPort, 9090] };

/** nodeBin: the runtime of the two sidecars (the runtime matrix runs the chain once per Node); env: added to their sidecarEnv. */
export async function startWeft(dir: string, nodeBin = process.execPath, env: Readonly<Record<string, string>> = {}): Promise<WeftChain> {
  if (!existsSync(CLI)) throw new Error(`${CLI} not built (npm run build)`);
  const configDir = join(dir, 'weft-config');
  const stateDir = join(dir, 'weft-state');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(join(configDir, 'app.yaml'), ROUTE_YAML);
  writeFileSync(join(configDir, 'grpc.yaml'), GRPC_YAML);
  const control = startControl(dir, configDir, stateDir);
  await waitListening(control, WEFT.control, WEFT.controlPort, 15_000);
  let pair: { client: Proc; server: Proc };
  try {
    pair = await startSidecarPair(dir, stateDir, nodeBin, env);
  } catch (e) {
    await stop(control);
    throw e;
  }
  const { client, server } = pair;
  return {
    name: 'weft',
    host: WEFT.client,
    port: WEFT.outbound,
    hostHeader: HOST_HEADER,
    proxies: [
      { role: 'outbound', proc: client },
      { role: 'inbound', proc: server },
    ],
    control,
    stateDir,
    configDir,
    dir,
  };
}

/**
 * A sidecar is ready before it has heard of every peer: a fresh client can
 * answer 503 "no endpoints" until control has pushed the server pod's
 * endpoint. Retries the chain's check until it passes (not a measurement:
 * start-up is measured to /ready), throwing the last failure after timeoutMs.
 */
export async function waitRoutable(ch: Chain, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await checkChain(ch);
    } catch (e) {
      if (Date.now() >= until) throw e;
      await sleep(50);
    }
  }
}

/** Asks a sidecar to shut down (POST /shutdown), then signals it if it lingers. */
export async function shutdownSidecar(p: Proc, podIP: string): Promise<void> {
  if (p.exited) return;
  const gone = new Promise<void>((r) => (p.exited ? r() : p.child.once('exit', () => r())));
  await new Promise<void>((resolve) => {
    import('node:http').then(({ request }) => {
      const r = request({ host: podIP, port: WEFT.admin, path: '/shutdown', method: 'POST', agent: false }, (res) => {
        res.resume();
        resolve();
      });
      r.on('error', () => resolve());
      r.end();
    }, () => resolve());
  });
  const t = setTimeout(() => void stop(p, 'SIGTERM'), 5000);
  await gone;
  clearTimeout(t);
}

/**
 * The main thread's profile in profDir. --cpu-prof writes one file per thread,
 * CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; the main thread is id 0
 * (a sidecar's key-generation worker writes its own).
 */
export function newestProfile(profDir: string): string | undefined {
  if (!existsSync(profDir)) return undefined;
  const all = readdirSync(profDir).filter((n) => n.endsWith('.cpuprofile')).sort();
  const main = all.filter((n) => /\.\d+\.0\.\d+\.cpuprofile$/.test(n));
  const f = main.length > 0 ? main : all;
  return f.length > 0 ? join(profDir, f[f.length - 1]!) : undefined;
}

// What a local pod's two processes are started with — the sidecar's flags
// and env, the app's env — built from its Workload alone (pure), as the
// injector builds a Kubernetes pod's containers.
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PORTS, SIDECAR_ENV, sidecarNodeOptions } from '../api/index.js';
import { formatHostPort, formatLabels, type HostPort } from './args.js';
import type { LocalPod } from './up-workloads.js';

const WEFT_JS = fileURLToPath(new URL('./weft.js', import.meta.url));

/** The facts of `weft up` every sidecar's flags draw on. */
export interface SidecarMeshFacts {
  controlAddr: HostPort;
  stateDir: string;
  drainMs: number;
  meshObserveArgs: string[];
}

/** The env both processes of every pod start from, and the sidecar's own. */
export function podEnvs(env: NodeJS.ProcessEnv): { baseEnv: NodeJS.ProcessEnv; sidecarEnv: NodeJS.ProcessEnv } {
  // Node 22+ caches compiled modules here, which cuts a sidecar's start;
  // Node 20 ignores the variable.
  const baseEnv: NodeJS.ProcessEnv = {
    ...env,
    NODE_COMPILE_CACHE: env.NODE_COMPILE_CACHE ?? join(tmpdir(), 'weft-node-compile-cache'),
  };
  for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']) {
    delete baseEnv[k];
  }
  // The sidecar's V8 and allocator bounds (api/runtime.ts), as in the image and the injected container.
  const sidecarEnv: NodeJS.ProcessEnv = { ...baseEnv, ...SIDECAR_ENV, NODE_OPTIONS: sidecarNodeOptions(baseEnv.NODE_OPTIONS) };
  return { baseEnv, sidecarEnv };
}

/** `node weft.js sidecar …` for one pod: identity, ports, subscriptions, drain, resilience and observe flags. */
export function sidecarArgs(pod: LocalPod, m: SidecarMeshFacts): string[] {
  const w = pod.workload;
  const args = [
    WEFT_JS,
    'sidecar',
    '--control',
    formatHostPort(m.controlAddr),
    '--state-dir',
    m.stateDir,
    '--pod-ip',
    pod.ip,
    '--pod-name',
    pod.name,
    '--namespace',
    w.namespace,
    '--workload',
    w.name,
    '--service-account',
    w.serviceAccount,
  ];
  if (Object.keys(w.labels).length) args.push('--labels', formatLabels(w.labels));
  if (w.ports.length) args.push('--app-ports', w.ports.join(','));
  for (const c of w.calls) args.push('--subscribe', c);
  if (w.strict) args.push('--strict');
  if (w.sidecarFlags) args.push(...w.sidecarFlags);
  args.push('--drain-timeout', `${m.drainMs}ms`);
  args.push(...m.meshObserveArgs, ...(w.observeArgs ?? []));
  return args;
}

/** The app's env: the pod's facts (as the downward API gives them) and its sidecar as HTTP proxy. */
export function appEnv(pod: LocalPod, baseEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const w = pod.workload;
  const proxy = `http://${pod.ip}:${PORTS.outbound}`;
  return {
    ...baseEnv,
    POD_IP: pod.ip,
    POD_NAME: pod.name,
    POD_NAMESPACE: w.namespace,
    SERVICE_ACCOUNT: w.serviceAccount,
    WORKLOAD: w.name,
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    ...w.env,
  };
}

/** The app's command: `node` means this very Node binary. */
export function appCommand(pod: LocalPod): { command: string; args: string[] } {
  const [cmd0, ...rest] = pod.workload.command;
  return { command: cmd0 === 'node' ? process.execPath : cmd0!, args: rest };
}

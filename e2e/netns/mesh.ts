// A mesh on the netns test bed: control in the root namespace on the bridge
// address, and pods that each get `weft init`, a sidecar (uid 2102) and an
// app (uid 1000), exactly as the injector lays a pod out.
import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { APP_UID, PROXY_UID, WEFT, type Bed, type Pod, type Proc } from './bed.js';

export interface Control {
  proc: Proc;
  grpc: string;
  admin: string;
  stateDir: string;
  configDir: string;
}

/** Starts `weft control` on the bridge address with the given YAML files. */
export async function startControl(bed: Bed, files: Record<string, string>): Promise<Control> {
  const configDir = join(bed.dir, 'config');
  const stateDir = join(bed.dir, 'control-state');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(configDir, name), text);
  const grpc = `${bed.gateway}:7443`;
  const admin = `${bed.gateway}:7091`;
  const proc = bed.spawn('control', null, ['node', WEFT, 'control', '--config-dir', configDir, '--state-dir', stateDir, '--listen', grpc, '--admin', admin]);
  await bed.waitFor(proc, /control: grpc/, 60_000);
  for (let i = 0; i < 100 && !existsSync(join(stateDir, 'bootstrap-token')); i++) await new Promise((r) => setTimeout(r, 50));
  return { proc, grpc, admin, stateDir, configDir };
}

export interface MeshPodOptions {
  namespace: string;
  serviceAccount: string;
  workload?: string;
  labels: Record<string, string>;
  appPorts: number[];
  /** The app's argv (run as uid 1000 with POD_IP, POD_NAME, ... in env). */
  app: string[];
  appEnv?: Record<string, string>;
  /** A regexp the app prints once ready (default: wait for the port). */
  appReady?: RegExp;
  strict?: boolean;
  initArgs?: string[];
  /** No sidecar, no iptables: a pod outside the mesh. */
  unmeshed?: boolean;
}

export interface MeshPod {
  pod: Pod;
  sidecar?: Proc;
  app: Proc;
  /** Sidecar admin GET (from the root namespace). */
  admin(path: string): Promise<string>;
}

export async function startPod(bed: Bed, control: Control, name: string, o: MeshPodOptions): Promise<MeshPod> {
  const pod = bed.pods.get(name) ?? bed.addPod(name);
  const workload = o.workload ?? name;
  const env = {
    POD_IP: pod.ip,
    POD_NAME: `${name}-0`,
    POD_NAMESPACE: o.namespace,
    SERVICE_ACCOUNT: o.serviceAccount,
    WORKLOAD: workload,
    PORTS: o.appPorts.join(','),
    PORT: String(o.appPorts[0] ?? 8080),
    ...o.appEnv,
  };
  let sidecar: Proc | undefined;
  if (!o.unmeshed) {
    await bed.weftInit(pod, o.initArgs ?? []);
    const state = bed.sidecarStateDir(pod, control.stateDir);
    const labels = Object.entries(o.labels).map(([k, v]) => `${k}=${v}`).join(',');
    sidecar = bed.spawn(
      `${name}-sidecar`,
      pod,
      [
        'node', WEFT, 'sidecar',
        '--control', control.grpc,
        '--state-dir', state,
        '--pod-ip', pod.ip,
        '--pod-name', `${name}-0`,
        '--namespace', o.namespace,
        '--workload', workload,
        '--service-account', o.serviceAccount,
        ...(labels ? ['--labels', labels] : []),
        ...(o.appPorts.length ? ['--app-ports', o.appPorts.join(',')] : []),
        ...(o.strict ? ['--strict'] : []),
      ],
      { uid: PROXY_UID, env },
    );
  }
  const app = bed.spawn(`${name}-app`, pod, o.app, { uid: APP_UID, env });
  const mp: MeshPod = {
    pod,
    sidecar,
    app,
    admin: async (path: string) => {
      const r = await bed.run(null, ['curl', '-sS', '--max-time', '3', `http://${pod.ip}:7090${path}`]);
      if (r.code !== 0) throw new Error(`admin ${path} of ${name}: ${r.stderr}`);
      return r.stdout;
    },
  };
  if (o.appReady) await bed.waitFor(app, o.appReady, 60_000);
  if (sidecar) {
    const t0 = Date.now();
    for (;;) {
      const r = await bed.run(null, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${pod.ip}:7090/ready`]);
      if (r.stdout === '200') break;
      if (sidecar.child.exitCode !== null) throw new Error(`sidecar of ${name} exited:\n${sidecar.output()}`);
      if (Date.now() - t0 > 60_000) throw new Error(`sidecar of ${name} not ready in 60 s:\n${sidecar.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // iptables REDIRECT in OUTPUT lands on 127.0.0.1:<outbound port>, not on the pod IP.
    const probe = await bed.run(pod, ['node', '-e', "require('net').connect(7001,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',e=>{console.error(e.message);process.exit(1)})"], { uid: PROXY_UID });
    if (probe.code !== 0) {
      throw new Error(`sidecar of ${name} does not accept on 127.0.0.1:7001 (${probe.stderr.trim()}): redirected app connections land there, so it must listen on it (or 0.0.0.0) outside local mode`);
    }
  }
  return mp;
}

/** Samples of one metric from Prometheus text, as {labels, value}. */
export function samples(text: string, name: string): Array<{ labels: Record<string, string>; value: number }> {
  const out: Array<{ labels: Record<string, string>; value: number }> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

export function readIf(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}

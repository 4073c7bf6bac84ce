// Probes in strict mode on the network-namespace bed: a strict-mode pod
// (iptables from `weft init`, sidecar as uid 2102, app as uid 1000) whose
// probes the injector rewrote. The "kubelet" is a plaintext client in the
// root namespace, as on a node: its probes on the rewritten paths of the
// admin port succeed (HTTP, TCP), while a plaintext call to the app port is
// refused by strict mTLS.
import t from 'tap';
import { Bed } from './netns/bed.js';
import { startControl, startPod } from './netns/mesh.js';
import { rewriteProbes, type Container } from '../injector/index.js';

t.setTimeout(180_000);
const NS = 'demo';
const bed = Bed.create();
t.teardown(() => bed.destroy());

// What the injector does to the pod's app container, and hands the sidecar.
const app = {
  name: 'web',
  ports: [{ name: 'http', containerPort: 8080 }],
  livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 5 },
  readinessProbe: { tcpSocket: { port: 8080 } },
  startupProbe: { httpGet: { path: '/status/503', port: 8080 } },
} as unknown as Container;
const rewrite = rewriteProbes([app]);

const control = await startControl(bed, {
  'ns.yaml': `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS} }\n`,
  'web.yaml': `apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: ${NS} }\nspec:\n  selector: { app: web }\n  ports: [{ name: http, port: 80, targetPort: 8080 }]\n`,
});
const web = await startPod(bed, control, 'web', {
  namespace: NS,
  serviceAccount: 'web',
  labels: { app: 'web' },
  appPorts: [8080],
  app: ['node', 'examples/echo/echo.mjs'],
  appReady: /listening/,
  strict: true,
  appEnv: { WEFT_APP_PROBES: JSON.stringify(rewrite.table) },
});

/** The kubelet: plaintext HTTP from the node (root namespace); the status code, or the curl error. */
async function kubelet(url: string): Promise<{ code: number; status: string; stderr: string }> {
  const r = await bed.run(null, ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', url], { env: { http_proxy: '', HTTP_PROXY: '', no_proxy: '' } });
  return { code: r.code, status: r.stdout.trim(), stderr: r.stderr.trim() };
}

t.test('the kubelet probes a strict-mode pod through the rewritten paths; the app port itself refuses it', async (t) => {
  const ip = web.pod.ip;
  const paths = rewrite.containers.map((c) => (c.probe.httpGet as { path: string; port: number }));
  t.same(paths.map((p) => `${p.port} ${p.path}`), ['7090 /app-probe/web/livez', '7090 /app-probe/web/readyz', '7090 /app-probe/web/startupz'], 'the pod\'s probes point at the admin port');
  const live = await kubelet(`http://${ip}:7090/app-probe/web/livez`);
  t.equal(live.status, '200', `HTTP liveness through the sidecar: ${live.stderr}`);
  const ready = await kubelet(`http://${ip}:7090/app-probe/web/readyz`);
  t.equal(ready.status, '200', `TCP readiness through the sidecar: ${ready.stderr}`);
  const startup = await kubelet(`http://${ip}:7090/app-probe/web/startupz`);
  t.equal(startup.status, '503', 'the app\'s own failure (503) is what the kubelet sees');
  const direct = await kubelet(`http://${ip}:8080/healthz`);
  t.not(direct.code, 0, `a plaintext call to the app port is refused in strict mode (${direct.stderr})`);
  const other = await kubelet(`http://${ip}:7090/app-probe/web/anything-else`);
  t.equal(other.status, '404', 'the admin forwards only the listed probes');
});

// Issue 2: the data plane does not depend on control being up. Control runs
// as its own process (`weft control`); `weft up --control` runs the pods
// against it. Killing control leaves the sidecars routing with the last
// config; a restarted control takes them back without dropping a request.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  configDir,
  docs,
  echoWorkload,
  httpRequest,
  loopbackPrefix,
  meshGet,
  service,
  sleep,
  startControlProcess,
  startMesh,
  waitFor,
  writeConfig,
  type EchoResponse,
} from './helpers/mesh.js';

const NS = 'ops';
const route = (to: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: api, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: api, port: 80 }]
  rules:
    - backendRefs: [{ name: ${to}, port: 80 }]
`;

const dir = configDir(t, {
  'mesh.yaml': docs(
    service({ name: 'api', namespace: NS, selector: { app: 'api' } }),
    service({ name: 'api-v1', namespace: NS, selector: { app: 'api', version: 'v1' } }),
    service({ name: 'api-v2', namespace: NS, selector: { app: 'api', version: 'v2' } }),
    echoWorkload({ name: 'client', namespace: NS, calls: ['api'] }),
    echoWorkload({ name: 'api-v1', namespace: NS, serviceAccount: 'api', labels: { app: 'api', version: 'v1' } }),
    echoWorkload({ name: 'api-v2', namespace: NS, serviceAccount: 'api', labels: { app: 'api', version: 'v2' } }),
  ),
  'route.yaml': route('api-v1'),
});
const stateDir = mkdtempSync(join(tmpdir(), 'weft-state-'));
t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));

const prefix = await loopbackPrefix();
const listen = `${prefix}.0.1:7443`;
const adminListen = `${prefix}.0.1:7091`;
const controlOpts = { configDir: dir, stateDir, listen, adminListen };
let control = await startControlProcess(t, controlOpts);
const mesh = await startMesh(t, dir, { prefix, stateDir, control: listen });
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const who = async () => {
  const r = await meshGet(client.podIP, `http://api.${NS}/`, { timeoutMs: 3000 });
  if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body}`);
  return r.json<EchoResponse>().workload;
};
await waitFor('api-v1 serving', async () => (await who()) === 'api-v1');

/** Requests back to back until stopped; every outcome recorded. */
function steadyTraffic() {
  const outcomes: string[] = [];
  let running = true;
  const loops = Array.from({ length: 4 }, async () => {
    while (running) {
      try {
        outcomes.push(await who());
      } catch (e) {
        outcomes.push(`error: ${(e as Error).message}`);
      }
      await sleep(5);
    }
  });
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

t.test('killing control leaves the sidecars routing with the last config', async (t) => {
  const traffic = steadyTraffic();
  await sleep(300);
  await control.kill(); // SIGKILL: no goodbye to the streams
  await sleep(2500);
  const outcomes = await traffic.stop();
  const failed = outcomes.filter((o) => o.startsWith('error'));
  t.ok(outcomes.length > 100, `${outcomes.length} requests while control was gone`);
  t.same(failed, [], 'no request failed');
  t.same([...new Set(outcomes)], ['api-v1'], 'the last route still applies');
  const m = await httpRequest(`http://${client.podIP}:7090/ready`);
  t.equal(m.status, 200, 'the sidecar stays ready without control');
});

t.test('a restarted control reconnects the sidecars without dropping requests', async (t) => {
  const traffic = steadyTraffic();
  await sleep(200);
  const t0 = Date.now();
  control = await startControlProcess(t, controlOpts);
  // Reconnected once every sidecar is registered again.
  await waitFor(
    'every sidecar to reconnect',
    async () => {
      const r = await httpRequest(`http://${adminListen}/resources`);
      const reg = r.json<{ registered: Array<{ workload: { podIP: string }; connections: number }> }>().registered;
      const ips = new Set(reg.filter((x) => x.connections > 0).map((x) => x.workload.podIP));
      return mesh.pods.every((p) => ips.has(p.podIP));
    },
    { timeoutMs: 20_000, intervalMs: 100 },
  );
  t.comment(`sidecars re-registered ${Date.now() - t0} ms after control started again`);
  await sleep(1000);
  const outcomes = await traffic.stop();
  t.same(
    outcomes.filter((o) => o.startsWith('error')),
    [],
    `no request failed (${outcomes.length} sent across the restart)`,
  );

  // The new control is in charge: an edit reaches the sidecars.
  const t1 = Date.now();
  writeConfig(dir, 'route.yaml', route('api-v2'));
  await waitFor('the edit through the new control', async () => (await who()) === 'api-v2', { timeoutMs: 5000, intervalMs: 20 });
  t.comment(`edit after the restart propagated in ${Date.now() - t1} ms`);
});

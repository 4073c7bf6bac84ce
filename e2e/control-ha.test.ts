// Control in high availability, local mode: two `weft control` replicas
// share STATE and the config directory (--replica-id a / b); every sidecar
// is given both (--control A,B) and connects to A, the first. Under steady
// traffic A is killed (SIGKILL): every sidecar reconnects to B within 5 s,
// no request fails, and no sidecar applies a config change (B compiles the
// same content, so the same versions, and sends nothing the sidecars hold).
import t from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  configDir,
  docs,
  ECHO_APP,
  httpRequest,
  loopbackPrefix,
  metricSamples,
  service,
  sleep,
  waitFor,
  weft,
  type Proc,
  type TestLike,
} from './helpers/mesh.js';

const RATE = 100;

function startEcho(t: TestLike, ip: string, pod: string): void {
  const child = spawn(process.execPath, [ECHO_APP], {
    env: { ...process.env, POD_IP: ip, PORTS: '8080', POD_NAME: pod, POD_NAMESPACE: 'demo', WORKLOAD: 'web' },
    stdio: 'ignore',
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
}

async function controlReplica(t: TestLike, o: { dir: string; stateDir: string; ip: string; id: string }): Promise<Proc> {
  const proc = weft(t, ['control', '--config-dir', o.dir, '--state-dir', o.stateDir, '--listen', `${o.ip}:7443`, '--admin', `${o.ip}:7091`, '--replica-id', o.id]);
  await waitFor(`control ${o.id} ready`, async () => (await httpRequest(`http://${o.ip}:7091/ready`, { timeoutMs: 500 })).status === 200, { timeoutMs: 30_000 });
  return proc;
}

async function metric(url: string, name: string): Promise<number | undefined> {
  const r = await httpRequest(url, { timeoutMs: 2000 });
  return metricSamples(r.body, name)[0]?.value;
}

interface SidecarConfig {
  control: { connected: boolean };
  directory: { version: string } | null;
  services: Record<string, { version: string }>;
}

async function sidecarConfig(ip: string): Promise<SidecarConfig> {
  return JSON.parse((await httpRequest(`http://${ip}:7090/config`, { timeoutMs: 2000 })).body) as SidecarConfig;
}

const versionsOf = (c: SidecarConfig) => ({ directory: c.directory?.version, services: Object.fromEntries(Object.entries(c.services).map(([k, v]) => [k, v.version])) });

t.test('a control replica killed under load: its sidecars move to the other within 5 s, no request fails, no config changes', async (t) => {
  const prefix = await loopbackPrefix();
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-ha-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const dir = configDir(t, { 'web.yaml': docs(service({ name: 'web', namespace: 'demo', selector: { app: 'web' } })) });
  const a = { ip: `${prefix}.0.1`, id: 'a' };
  const b = { ip: `${prefix}.0.2`, id: 'b' };
  // A first: it creates the CA in STATE that B then shares.
  const controlA = await controlReplica(t, { dir, stateDir, ...a });
  await controlReplica(t, { dir, stateDir, ...b });
  const controls = `${a.ip}:7443,${b.ip}:7443`;

  const pods = [
    { ip: `${prefix}.1.1`, pod: 'web-1', workload: 'web', extra: ['--labels', 'app=web', '--app-ports', '8080'] },
    { ip: `${prefix}.1.2`, pod: 'web-2', workload: 'web', extra: ['--labels', 'app=web', '--app-ports', '8080'] },
    { ip: `${prefix}.2.1`, pod: 'client-0', workload: 'client', extra: ['--subscribe', 'demo/web'] },
  ];
  const sidecars: Proc[] = [];
  for (const p of pods) {
    if (p.workload === 'web') startEcho(t, p.ip, p.pod);
    sidecars.push(
      weft(t, ['sidecar', '--control', controls, '--state-dir', stateDir, '--pod-ip', p.ip, '--pod-name', p.pod, '--namespace', 'demo', '--workload', p.workload, '--service-account', p.workload, ...p.extra]),
    );
  }
  for (const p of pods) await waitFor(`${p.pod} ready`, async () => (await httpRequest(`http://${p.ip}:7090/ready`, { timeoutMs: 500 })).status === 200, { timeoutMs: 30_000 });
  await waitFor('all three sidecars on control a', async () => (await metric(`http://${a.ip}:7091/metrics`, 'weft_control_connected_sidecars')) === 3);

  const clientIP = pods[2]!.ip;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const call = (keepAlive: boolean): Promise<{ status: number; pod: string; error: string }> =>
    new Promise((resolve) => {
      const req = http.request({ host: clientIP, port: 7001, path: 'http://web.demo/ha', headers: { host: 'web.demo' }, agent: keepAlive ? agent : false, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          let pod = '';
          try {
            pod = (JSON.parse(body) as { pod: string }).pod;
          } catch {
            /* mesh-made */
          }
          resolve({ status: res.statusCode ?? 0, pod, error: res.statusCode === 200 ? '' : `${String(res.headers['weft-proxy-error'] ?? '')} ${body.slice(0, 120)}` });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: 0, pod: '', error: e.message }));
      req.end();
    });
  // Both web replicas are endpoints, as seen through control b's view too (a's registrations are b's endpoints).
  await waitFor('both replicas answering', async () => {
    const seen = new Set((await Promise.all([call(true), call(true), call(true), call(true), call(true), call(true)])).map((s) => s.pod));
    return seen.has('web-1') && seen.has('web-2');
  });
  await waitFor('control b lists the sidecars registered at a', async () => {
    const res = JSON.parse((await httpRequest(`http://${b.ip}:7091/config/demo/web?consumer=demo`, { timeoutMs: 2000 })).body) as { backends: Record<string, { endpoints: unknown[] }> };
    return Object.values(res.backends).some((x) => x.endpoints.length === 2);
  });

  const before = await Promise.all(pods.map((p) => sidecarConfig(p.ip)));
  const appliedBefore = await Promise.all(pods.map((p) => metric(`http://${p.ip}:7090/metrics`, 'weft_config_last_applied_timestamp_seconds')));

  const results: Array<Promise<{ status: number; pod: string; error: string }>> = [];
  let n = 0;
  const loadStart = Date.now();
  const load = setInterval(() => {
    const due = Math.floor(((Date.now() - loadStart) / 1000) * RATE);
    while (n < due) results.push(call(n++ % 2 === 0));
  }, 10);
  t.teardown(() => clearInterval(load));
  await sleep(1000);

  const killedAt = Date.now();
  await controlA.kill();
  await waitFor('every sidecar connected to control b', async () => (await metric(`http://${b.ip}:7091/metrics`, 'weft_control_connected_sidecars')) === 3, { timeoutMs: 15_000, intervalMs: 100 });
  const movedMs = Date.now() - killedAt;
  await waitFor('every sidecar reports its stream up', async () => (await Promise.all(pods.map((p) => sidecarConfig(p.ip)))).every((c) => c.control.connected));
  await sleep(Math.max(0, killedAt + 3000 - Date.now()));
  clearInterval(load);
  const done = await Promise.all(results);

  const after = await Promise.all(pods.map((p) => sidecarConfig(p.ip)));
  const appliedAfter = await Promise.all(pods.map((p) => metric(`http://${p.ip}:7090/metrics`, 'weft_config_last_applied_timestamp_seconds')));
  const failed = done.filter((s) => s.status !== 200);
  t.comment(`${done.length} requests; sidecars on control b ${movedMs} ms after control a was killed`);
  t.ok(movedMs < 5000, `sidecars reconnected to the other replica within 5 s (${movedMs} ms)`);
  t.equal(failed.length, 0, `no failed request (${failed.slice(0, 5).map((s) => `${s.status} ${s.error}`).join('; ')})`);
  t.same(after.map(versionsOf), before.map(versionsOf), 'every sidecar holds the same config versions');
  t.same(appliedAfter, appliedBefore, 'no sidecar applied anything after the move (no redundant push)');
  for (const s of sidecars) t.match(s.stderr(), new RegExp(`config stream connected to ${b.ip.replace(/\./g, '\\.')}:7443`), 'the sidecar logged its move to b');
});

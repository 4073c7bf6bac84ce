// Graceful drain, real processes: `weft control`, three `weft sidecar` +
// echo replicas of web, and a client sidecar the test drives like an app
// (absolute-form requests to its outbound port). Under steady traffic
// (~150 req/s, half on keep-alive connections, half on new ones) one
// replica's sidecar gets SIGTERM: no request fails, and a few seconds
// after the signal no request reaches that replica any more.
import t from 'tap';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  configDir,
  docs,
  echoWorkload,
  startMesh,
  writeConfig,
  ECHO_APP,
  httpRequest,
  loopbackPrefix,
  service,
  sleep,
  startControlProcess,
  waitFor,
  weft,
  type Proc,
  type TestLike,
} from './helpers/mesh.js';

const RATE = 150;

function startEcho(t: TestLike, ip: string, pod: string): void {
  const child = spawn(process.execPath, [ECHO_APP], {
    env: { ...process.env, POD_IP: ip, PORTS: '8080', POD_NAME: pod, POD_NAMESPACE: 'demo', WORKLOAD: 'web' },
    stdio: 'ignore',
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
}

function startSidecar(t: TestLike, o: { control: string; stateDir: string; ip: string; pod: string; workload: string; extra?: string[] }): Proc {
  return weft(t, [
    'sidecar', '--control', o.control, '--state-dir', o.stateDir, '--pod-ip', o.ip, '--pod-name', o.pod,
    '--namespace', 'demo', '--workload', o.workload, '--service-account', o.workload, ...(o.extra ?? []),
  ]);
}

async function ready(ip: string): Promise<void> {
  await waitFor(`sidecar ${ip} ready`, async () => (await httpRequest(`http://${ip}:7090/ready`, { timeoutMs: 500 })).status === 200, { timeoutMs: 30_000 });
}

interface Sample {
  sentAt: number;
  status: number;
  pod: string;
  error: string;
  keepAlive: boolean;
}

t.test('SIGTERM to one of three replicas under 150 req/s: zero failed requests, and it receives nothing soon after', async (t) => {
  const prefix = await loopbackPrefix();
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-drain-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const dir = configDir(t, { 'web.yaml': docs(service({ name: 'web', namespace: 'demo', selector: { app: 'web' } })) });
  const control = `${prefix}.0.1:7443`;
  await startControlProcess(t, { configDir: dir, stateDir, listen: control, adminListen: `${prefix}.0.1:7091` });

  const replicas = [1, 2, 3].map((i) => ({ ip: `${prefix}.1.${i}`, pod: `web-${i}` }));
  const sidecars = new Map<string, Proc>();
  for (const r of replicas) {
    startEcho(t, r.ip, r.pod);
    sidecars.set(r.pod, startSidecar(t, { control, stateDir, ip: r.ip, pod: r.pod, workload: 'web', extra: ['--labels', 'app=web', '--app-ports', '8080', '--drain-timeout', '5s'] }));
  }
  const clientIP = `${prefix}.2.1`;
  startSidecar(t, { control, stateDir, ip: clientIP, pod: 'client-0', workload: 'client', extra: ['--subscribe', 'demo/web'] });
  await Promise.all([...replicas.map((r) => ready(r.ip)), ready(clientIP)]);

  const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => keepAliveAgent.destroy());
  const call = (keepAlive: boolean): Promise<Sample> => {
    const sentAt = Date.now();
    return new Promise((resolve) => {
      const req = http.request(
        { host: clientIP, port: 7001, path: 'http://web.demo/drain', headers: { host: 'web.demo' }, agent: keepAlive ? keepAliveAgent : false, timeout: 10_000 },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            let pod = '';
            try {
              pod = (JSON.parse(body) as { pod: string }).pod;
            } catch {
              /* a mesh-made answer */
            }
            resolve({ sentAt, status: res.statusCode ?? 0, pod, error: res.statusCode === 200 ? '' : `${String(res.headers['weft-proxy-error'] ?? '')} ${body.slice(0, 120)}`, keepAlive });
          });
          res.on('error', (e) => resolve({ sentAt, status: 0, pod: '', error: e.message, keepAlive }));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ sentAt, status: 0, pod: '', error: e.message, keepAlive }));
      req.end();
    });
  };

  // Every replica is an endpoint before the load starts.
  const seen = new Set<string>();
  await waitFor('all three replicas answering', async () => {
    const s = await call(true);
    if (s.status === 200) seen.add(s.pod);
    return seen.size === 3;
  });

  const samples: Array<Promise<Sample>> = [];
  let n = 0;
  const loadStart = Date.now();
  const load = setInterval(() => {
    // 150 req/s on average even when a tick comes late (a busy machine): catch up
    // to the schedule, alternating keep-alive and fresh connections.
    const due = Math.floor(((Date.now() - loadStart) / 1000) * RATE);
    while (n < due) samples.push(call(n++ % 2 === 0));
  }, 10);
  t.teardown(() => clearInterval(load));

  // Traffic reaches web-2 under load, then its sidecar is told to stop.
  await waitFor('load reaching web-2', async () => (await Promise.all(samples.slice(-30))).some((s) => s.pod === 'web-2'));
  await sleep(1000);
  const victim = sidecars.get('web-2')!;
  const signalAt = Date.now();
  victim.child.kill('SIGTERM');
  // While it drains, web-2's own app still calls out through it.
  const ownCalls = [0, 150, 300, 450, 600].map((ms) =>
    sleep(ms).then(() => httpRequest('http://web.demo/own', { proxy: `${prefix}.1.2:7001`, keepAlive: false }).then((r) => r.status, (e: Error) => e.message)),
  );
  const exit = await victim.exited;
  const exitedAfterMs = Date.now() - signalAt;
  // Keep the load on for a while after the signal (what "soon after" is measured over).
  await sleep(Math.max(0, signalAt + 4000 - Date.now()));
  clearInterval(load);
  const results = await Promise.all(samples);

  const failed = results.filter((s) => s.status !== 200);
  const late = results.filter((s) => s.pod === 'web-2' && s.sentAt > signalAt + 2000);
  const after = results.filter((s) => s.sentAt > signalAt);
  const elapsedS = (results[results.length - 1]!.sentAt - results[0]!.sentAt) / 1000;
  t.comment(
    `${results.length} requests in ${elapsedS.toFixed(1)} s (${Math.round(results.length / elapsedS)} req/s), ${results.filter((s) => s.keepAlive).length} on keep-alive; ` +
      `web-2's sidecar exited ${exitedAfterMs} ms after SIGTERM (${exit.signal ?? exit.code}); ` +
      `answered by web-2 after the signal: ${after.filter((s) => s.pod === 'web-2').length}`,
  );
  t.equal(failed.length, 0, `no failed request (${failed.slice(0, 5).map((s) => `${s.status} ${s.error} sent ${s.sentAt - signalAt} ms after the signal${s.keepAlive ? ', keep-alive' : ''}`).join('; ')})`);
  t.equal(late.length, 0, 'no request sent 2 s or more after the signal reached web-2');
  t.ok(after.filter((s) => s.pod === 'web-1' || s.pod === 'web-3').length > 100, 'the other replicas took the traffic after the signal');
  t.same(await Promise.all(ownCalls), [200, 200, 200, 200, 200], "the draining sidecar keeps serving its own app's outbound calls");
  t.equal(exit.code, 0, 'the drained sidecar exits cleanly');
  t.ok(exitedAfterMs < 5000 + 1500, `it exits within the drain timeout (${exitedAfterMs} ms)`);
  t.match(victim.stderr(), /drain: SIGTERM: endpoints withdrawn/, 'the sidecar logged the drain');
  t.comment(victim.stderr().split('\n').filter((l) => /drain/.test(l)).join('\n'));
});

t.test('weft up: scaling a Workload down under load drains the removed pod\'s sidecar first — zero failed requests', async (t) => {
  const files = {
    'web.yaml': docs(service({ name: 'web', namespace: 'demo', selector: { app: 'web' } }), echoWorkload({ name: 'web', namespace: 'demo', replicas: 3 })),
    'client.yaml': echoWorkload({ name: 'client', namespace: 'demo', calls: ['demo/web'] }),
  };
  const dir = configDir(t, files);
  const mesh = await startMesh(t, dir, { args: ['--drain-timeout', '5s'] });
  const clientIP = mesh.pod('client-0').podIP;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());
  const call = (keepAlive: boolean): Promise<Sample> => {
    const sentAt = Date.now();
    return new Promise((resolve) => {
      const req = http.request({ host: clientIP, port: 7001, path: 'http://web.demo/scale', headers: { host: 'web.demo' }, agent: keepAlive ? agent : false, timeout: 10_000 }, (res) => {
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
          resolve({ sentAt, status: res.statusCode ?? 0, pod, error: res.statusCode === 200 ? '' : `${String(res.headers['weft-proxy-error'] ?? '')} ${body.slice(0, 120)}`, keepAlive });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ sentAt, status: 0, pod: '', error: e.message, keepAlive }));
      req.end();
    });
  };
  const seen = new Set<string>();
  await waitFor('all three replicas answering', async () => {
    const s = await call(true);
    if (s.status === 200) seen.add(s.pod);
    return seen.size === 3;
  });
  const samples: Array<Promise<Sample>> = [];
  let n = 0;
  const loadStart = Date.now();
  const load = setInterval(() => {
    const due = Math.floor(((Date.now() - loadStart) / 1000) * 100);
    while (n < due) samples.push(call(n++ % 2 === 0));
  }, 10);
  t.teardown(() => clearInterval(load));
  await sleep(1000);
  const editAt = Date.now();
  writeConfig(dir, 'web.yaml', docs(service({ name: 'web', namespace: 'demo', selector: { app: 'web' } }), echoWorkload({ name: 'web', namespace: 'demo', replicas: 2 })));
  await waitFor('weft up to stop web-2', () => /demo\/web: 3 → 2 replicas/.test(mesh.proc.stderr() + mesh.proc.stdout()), { timeoutMs: 15_000 });
  await sleep(Math.max(0, editAt + 6000 - Date.now()));
  clearInterval(load);
  const results = await Promise.all(samples);
  const failed = results.filter((s) => s.status !== 200);
  const late = results.filter((s) => s.pod === 'web-2' && s.sentAt > editAt + 4000);
  t.comment(`${results.length} requests; answered by web-2 after the edit: ${results.filter((s) => s.pod === 'web-2' && s.sentAt > editAt).length}`);
  t.equal(failed.length, 0, `no failed request (${failed.slice(0, 5).map((s) => `${s.status} ${s.error} at +${s.sentAt - editAt} ms`).join('; ')})`);
  t.equal(late.length, 0, 'nothing reaches the removed replica a few seconds after the edit');
  t.ok(results.filter((s) => s.sentAt > editAt + 4000).every((s) => s.pod === 'web-0' || s.pod === 'web-1'), 'the remaining replicas serve');
});

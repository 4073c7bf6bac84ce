// Issue 14 end to end: requests survive failing endpoints. A real local mesh
// (`weft up`): real control, real sidecars, real apps (e2e/helpers/flaky-app.mjs
// fails on purpose and records every try it sees), a real @grpc/grpc-js
// server and client. The test plays the client apps through their pods'
// outbound sidecars, and asks the apps directly (at their pod IPs) what
// reached them.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { echoClient, unary, type EchoClient } from './helpers/grpc-echo.js';
import {
  REPO,
  configDir,
  docs,
  echoWorkload,
  httpRequest,
  meshGet,
  metricSamples,
  service,
  startMesh,
  waitFor,
  weft,
  writeConfig,
  type HttpResult,
  type PodInfo,
} from './helpers/mesh.js';

const NS = 'res';
const FLAKY_APP = join(REPO, 'e2e', 'helpers', 'flaky-app.mjs');
const GRPC_PORT = 7070;

function flakyWorkload(o: { name: string; replicas?: number; grpc?: boolean }): string {
  return [
    'apiVersion: local.weft.io/v1alpha1',
    'kind: Workload',
    'metadata:',
    `  name: ${o.name}`,
    `  namespace: ${NS}`,
    'spec:',
    `  command: [node, ${JSON.stringify(FLAKY_APP)}]`,
    `  serviceAccount: ${o.name}`,
    `  labels: { app: ${o.name} }`,
    `  replicas: ${o.replicas ?? 1}`,
    `  ports: [8080${o.grpc ? `, ${GRPC_PORT}` : ''}]`,
    `  env: { PORTS: "8080"${o.grpc ? `, GRPC_PORT: "${GRPC_PORT}"` : ''} }`,
    '',
  ].join('\n');
}

// One replica: the flaky app counts tries per replica, so "fail the first n" holds for the request as a whole.
const soloRoute = (codes: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: solo, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: solo, port: 80 }]
  rules:
    - backendRefs: [{ name: solo, port: 80 }]
      retry: { codes: [${codes}], attempts: 2, backoff: 100ms }
`;

const webRoute = (codes: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /sticky } }]
      backendRefs: [{ name: web, port: 80 }]
      sessionPersistence: { sessionName: res-session, type: Cookie }
    - matches: [{ path: { type: PathPrefix, value: /fail } }]
      backendRefs: [{ name: web, port: 80 }]
      retry: { codes: [${codes}], attempts: 2, backoff: 100ms }
    - backendRefs: [{ name: web, port: 80 }]
`;

const dir = configDir(t, {
  'services.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    service({ name: 'sink', namespace: NS, selector: { app: 'sink' } }),
    service({ name: 'solo', namespace: NS, selector: { app: 'solo' } }),
    service({ name: 'heal', namespace: NS, selector: { app: 'heal' } }),
    `apiVersion: v1
kind: Service
metadata: { name: grpc, namespace: ${NS} }
spec:
  selector: { app: grpc }
  ports: [{ name: grpc, port: ${GRPC_PORT}, targetPort: ${GRPC_PORT}, appProtocol: grpc }]
`,
  ),
  'web-route.yaml': webRoute('503'),
  'solo-route.yaml': soloRoute('503'),
  'sink.yaml': docs(
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: sink, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: sink, port: 80 }]
  rules:
    - backendRefs: [{ name: sink, port: 80 }]
      retry: { codes: [503], attempts: 3, backoff: 1ms }
`,
    `apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XBackendTrafficPolicy
metadata: { name: sink-budget, namespace: ${NS} }
spec:
  targetRefs: [{ group: "", kind: Service, name: sink }]
  retryConstraint:
    budget: { percent: 20, interval: 10s }
    minRetryRate: { count: 1, interval: 1s }
`,
  ),
  'grpc-route.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: grpc
  namespace: ${NS}
  annotations:
    retry.weft.io/grpc: unavailable
    retry.weft.io/limit: "2"
    retry.weft.io/timeout: 2s
spec:
  parentRefs: [{ group: "", kind: Service, name: grpc, port: ${GRPC_PORT} }]
  rules:
    - backendRefs: [{ name: grpc, port: ${GRPC_PORT} }]
`,
  'workloads.yaml': docs(
    flakyWorkload({ name: 'web', replicas: 3 }),
    flakyWorkload({ name: 'sink' }),
    flakyWorkload({ name: 'solo' }),
    flakyWorkload({ name: 'heal', replicas: 2 }),
    flakyWorkload({ name: 'grpc', grpc: true }),
    echoWorkload({ name: 'client', namespace: NS, calls: ['web', 'sink', 'heal', 'grpc', 'solo'] }),
    echoWorkload({ name: 'small', namespace: NS, calls: ['web'] }).replace('metadata:\n', 'metadata:\n  annotations: { config.weft.io/max-in-flight: "2" }\n'),
  ),
});

const mesh = await startMesh(t, dir, { timeoutMs: 90_000 });
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const call = (path: string, o: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {}, host = 'web') =>
  meshGet(client.podIP, `http://${host}.${NS}${path}`, { timeoutMs: 10_000, ...o });
const podsOf = (w: string) => mesh.pods.filter((p) => p.workload === w);
const direct = (p: PodInfo, path: string, method = 'GET') => httpRequest(`http://${p.podIP}:8080${path}`, { method, timeoutMs: 5000 });
interface Try {
  at: number;
  method: string;
  bodyBytes: number;
  bodySha256: string;
  pod: string;
}
async function triesOf(w: string, id: string): Promise<Try[]> {
  const all: Try[] = [];
  for (const p of podsOf(w)) all.push(...(await direct(p, `/tries/${id}`)).json<Try[]>());
  return all.sort((a, b) => a.at - b.at);
}
async function clientMetric(name: string, pod: PodInfo = client): Promise<Array<{ labels: Record<string, string>; value: number }>> {
  const r = await httpRequest(`${pod.adminUrl}/metrics`, { timeoutMs: 5000 });
  return metricSamples(r.body, name);
}
const podOf = (r: HttpResult) => (r.status === 200 ? r.json<{ pod: string }>().pod : `(${r.status} ${r.headers['weft-proxy-error'] ?? ''})`);

await waitFor(
  'every web, heal and grpc replica is reachable through the mesh',
  async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add(podOf(await call('/warm')));
    for (let i = 0; i < 20; i++) seen.add(podOf(await call('/warm', {}, 'heal')));
    return podsOf('web').every((p) => seen.has(p.pod)) && podsOf('heal').every((p) => seen.has(p.pod));
  },
  { timeoutMs: 60_000 },
);

let seq = 0;
const id = (what: string) => `${what}-${process.pid}-${++seq}`;

t.test('HTTPRoute retry: a listed code is retried, the app sees 1 + attempts tries at most', async (t) => {
  const a = id('listed');
  const r = await call(`/fail/${a}?n=1`, {}, 'solo');
  t.equal(r.status, 200, 'one 503, then a success: the caller sees the success');
  t.equal((await triesOf('solo', a)).length, 2);
  const a2 = id('listed');
  t.equal((await call(`/fail/${a2}?n=2`, {}, 'solo')).status, 200, 'two 503s, then a success');
  t.equal((await triesOf('solo', a2)).length, 3);

  const b = id('always');
  const r2 = await call(`/fail/${b}?n=99`);
  t.equal(r2.status, 503, 'still failing after every try: the caller gets the failure');
  const tries = await triesOf('web', b);
  t.equal(tries.length, 3, '1 + attempts (2) tries');
  // GEP-1731: "not retried before the configured minimum duration" (100ms).
  for (let i = 1; i < tries.length; i++) t.ok(tries[i]!.at - tries[i - 1]!.at >= 95, `gap ${i}: ${(tries[i]!.at - tries[i - 1]!.at).toFixed(1)} ms ≥ backoff 100ms`);
  t.ok(new Set(tries.map((x) => x.pod)).size >= 2, `retries went to other endpoints (${tries.map((x) => x.pod).join(', ')})`);

  const c = id('unlisted');
  const r3 = await call(`/fail/${c}?n=99&code=500`);
  t.equal(r3.status, 500);
  t.equal((await triesOf('web', c)).length, 1, 'an unlisted code is not retried');
});

t.test('HTTPRoute retry: a 48 KiB POST body arrives identical on every try', async (t) => {
  const body = randomBytes(36 * 1024).toString('base64'); // 48 KiB of text
  t.equal(body.length, 48 * 1024);
  const sha = createHash('sha256').update(body).digest('hex');
  const a = id('body');
  const r = await call(`/fail/${a}?n=2`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } }, 'solo');
  t.equal(r.status, 200);
  const tries = await triesOf('solo', a);
  t.equal(tries.length, 3);
  for (const [i, x] of tries.entries()) {
    t.equal(x.method, 'POST');
    t.equal(x.bodyBytes, body.length, `try ${i + 1}: all ${body.length} bytes`);
    t.equal(x.bodySha256, sha, `try ${i + 1}: the same bytes`);
  }
  const big = randomBytes(72 * 1024).toString('base64');
  const b = id('bigbody');
  const r2 = await call(`/fail/${b}?n=1`, { method: 'POST', body: big }, 'solo');
  t.equal(r2.status, 503, 'a body over 64 KiB is not kept, so not retried');
  t.equal((await triesOf('solo', b)).length, 1);
  const skipped = (await clientMetric('weft_retries_skipped_total')).filter((s) => s.labels.reason === 'body_too_large');
  t.ok(skipped.some((s) => s.value >= 1), 'and that is counted');
});

t.test('an invalid retry value rejects only that route; its last good version keeps serving', async (t) => {
  writeConfig(dir, 'solo-route.yaml', soloRoute('503, 700'));
  const admin = mesh.controlAdmin.replace('http://', '');
  await waitFor('control reports the bad field', async () => {
    const p = weft(t, ['get', 'routes', '-n', NS, '--control-admin', admin]);
    await p.exited;
    return /HTTPRoute res\/solo: spec\.rules\[0\]\.retry\.codes\[1\]: Invalid value: 700/.test(p.stdout() + p.stderr());
  }, { timeoutMs: 15_000 });
  const a = id('lastgood');
  const r = await call(`/fail/${a}?n=1`, {}, 'solo');
  t.equal(r.status, 200, 'the previous version still retries');
  t.equal((await triesOf('solo', a)).length, 2);
  const s = await call(`/fail/${id('other')}?n=99`);
  t.equal(s.status, 503, 'other routes are untouched');
  writeConfig(dir, 'solo-route.yaml', soloRoute('503'));
});

t.test('gRPC retry on UNAVAILABLE with a real grpc-js server', async (t) => {
  const c: EchoClient = echoClient(`${client.podIP}:7001`, `grpc.${NS}:${GRPC_PORT}`);
  t.teardown(() => c.close());
  await waitFor('grpc answers', async () => (await unary(c, 'Echo', { text: 'ping' }, { deadlineMs: 3000 }).then(() => true, () => false)), { timeoutMs: 20_000 });
  const a = id('g');
  const r = await unary(c, 'Echo', { text: `fail:2:${a}` }, { deadlineMs: 10_000 });
  t.equal(r.text, `fail:2:${a}`, 'two UNAVAILABLE, then OK: the caller sees OK');
  t.equal((await triesOf('grpc', `grpc-${a}`)).length, 3);
  const b = id('g');
  const err = await unary(c, 'Echo', { text: `fail:9:${b}` }, { deadlineMs: 10_000 }).then(() => undefined, (e: { code?: number }) => e);
  t.equal(err?.code, 14, 'still UNAVAILABLE after 1 + limit tries');
  t.equal((await triesOf('grpc', `grpc-${b}`)).length, 3);
  const retried = (await clientMetric('weft_retries_total')).filter((s) => s.labels.reason === 'grpc_status' && s.labels.dst_service === 'grpc');
  t.ok(retried.some((s) => s.value >= 4), 'counted by reason');
});

t.test('budget: a backend that always fails sees at most (1 + budget) × the requests plus the minimum rate', async (t) => {
  const sink = podsOf('sink')[0]!;
  await direct(sink, '/reset', 'POST');
  const started = Date.now();
  let sent = 0;
  let failed = 0;
  const worker = async () => {
    while (Date.now() - started < 4000) {
      const r = await call('/always/503', {}, 'sink');
      sent++;
      if (r.status !== 503) failed++;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const seconds = (Date.now() - started) / 1000;
  const seen = (await direct(sink, '/count')).json<{ requests: number }>().requests;
  // percent 20 of the requests, plus minRetryRate 1/s (and its first token).
  const bound = Math.floor(sent * 1.2 + 1 * seconds + 2);
  t.comment(`${sent} requests in ${seconds.toFixed(1)} s; the app saw ${seen} tries (bound ${bound}; without a budget up to ${sent * 4})`);
  t.ok(sent >= 50, `enough load (${sent})`);
  t.equal(failed, 0, 'every caller got the failure (503)');
  t.ok(seen <= bound, `${seen} ≤ ${bound}`);
  t.ok(seen > sent, 'some retries were made');
  const skipped = (await clientMetric('weft_retries_skipped_total')).filter((s) => s.labels.reason === 'budget' && s.labels.dst_service === 'sink');
  t.ok(skipped.some((s) => s.value > 0), 'retries past the budget are counted');
});

t.test('failure accrual: an endpoint that fails leaves the balancer, is probed, and comes back when it heals; weft stat shows it', async (t) => {
  const [bad, good] = podsOf('heal') as [PodInfo, PodInfo];
  const endpoint = `${bad.podIP}:8080`;
  await direct(bad, '/mode?fail=500', 'POST');
  await direct(bad, '/reset', 'POST');
  // Traffic until the failing endpoint is ejected (P2C may favour the other one for a while: its latency estimate is lower).
  await waitFor('the failing endpoint leaves the balancer', async () => {
    for (let i = 0; i < 10; i++) await call('/x', {}, 'heal');
    return (await clientMetric('weft_endpoint_ejected')).some((s) => s.labels.endpoint === endpoint && s.value === 1);
  }, { timeoutMs: 90_000 });
  t.pass(`${endpoint} is out of the balancer`);
  const before = (await direct(bad, '/count')).json<{ requests: number }>().requests;
  t.ok(before >= 7 && before <= 12, `the failing endpoint got ${before} requests: 7 failures in a row eject it (then rare probes)`);
  const results: string[] = [];
  for (let i = 0; i < 30; i++) results.push(podOf(await call('/x', {}, 'heal')));
  t.ok(results.filter((p) => p !== good.pod).length <= 1, `once ejected, requests go to the healthy endpoint (at most a probe elsewhere: ${results.join(',')})`);
  const desc = weft(t, ['describe', 'service', 'heal', '-n', NS, '--control-admin', mesh.controlAdmin.replace('http://', '')]);
  t.equal((await desc.exited).code, 0, desc.stderr());
  t.match(desc.stdout(), new RegExp(`${endpoint.replace(/\./g, '\\.')} (EJECTED|PROBING) by ${NS}/client-0: \\d+ consecutive failures`), 'weft describe service shows it');
  // While it keeps failing, each probe (after 1 s, 2 s, 4 s...) ejects it again: weft stat sees ejections in its window.
  const stat = weft(t, ['stat', 'backends', 'heal', '-n', NS, '--control-admin', mesh.controlAdmin.replace('http://', ''), '--window', '5s', '-o', 'json']);
  let statDone = false;
  void stat.exited.then(() => (statDone = true));
  while (!statDone) await call('/x', {}, 'heal');
  const { code } = await stat.exited;
  t.equal(code, 0, stat.stderr());
  const rows = (JSON.parse(stat.stdout()) as { rows: Array<{ backend: string; ejections: number }> }).rows;
  t.ok(rows.some((r) => r.backend === `${NS}/heal` && r.ejections >= 1), `weft stat shows the ejection: ${stat.stdout()}`);

  await direct(bad, '/mode?fail=0', 'POST');
  await waitFor('the healed endpoint is back in the balancer', async () => {
    for (let i = 0; i < 10; i++) await call('/x', {}, 'heal');
    return (await clientMetric('weft_endpoint_ejected')).some((s) => s.labels.endpoint === endpoint && s.value === 0);
  }, { timeoutMs: 20_000 });
  await direct(bad, '/reset', 'POST');
  for (let i = 0; i < 40; i++) await call('/x', {}, 'heal');
  const after = (await direct(bad, '/count')).json<{ requests: number }>().requests;
  t.ok(after >= 1, `it serves again (${after} of 40; P2C between two endpoints favours the one with the lower latency estimate)`);
});

t.test('load shedding: past the in-flight bound the sidecar answers 503 overloaded at once; weft stat shows it', async (t) => {
  const small = mesh.pod('small-0');
  const burst = () => Promise.all(Array.from({ length: 8 }, () => meshGet(small.podIP, `http://web.${NS}/slow?delay=800`, { timeoutMs: 5000 })));
  const rs = await burst();
  const shed = rs.filter((r) => r.status === 503 && r.headers['weft-proxy-error'] === 'overloaded');
  t.equal(rs.filter((r) => r.status === 200).length, 2, 'config.weft.io/max-in-flight: "2" lets two through');
  t.equal(shed.length, 6, 'the rest are shed with weft-proxy-error: overloaded');
  const m = await clientMetric('weft_requests_shed_total', small);
  t.ok(m.some((s) => s.labels.backend === `${NS}/web` && s.value >= 6), 'counted');
  const stat = weft(t, ['stat', 'services', 'web', '-n', NS, '--admin', small.adminUrl, '--window', '3s', '-o', 'json']);
  let statDone = false;
  void stat.exited.then(() => (statDone = true));
  while (!statDone) await burst();
  t.equal((await stat.exited).code, 0, stat.stderr());
  const rows = (JSON.parse(stat.stdout()) as { rows: Array<{ service: string; shed: number }> }).rows;
  t.ok(rows.some((r) => r.service === `${NS}/web` && r.shed >= 6), `weft stat shows shed requests: ${stat.stdout()}`);
});

t.test('weft stat shows retries', async (t) => {
  const stat = weft(t, ['stat', 'services', 'solo', '-n', NS, '--control-admin', mesh.controlAdmin.replace('http://', ''), '--window', '3s']);
  const until = Date.now() + 3500;
  while (Date.now() < until) await call(`/fail/${id('stat')}?n=1`, {}, 'solo');
  await stat.exited;
  t.match(stat.stdout(), /RETRIES\s+SHED\s+EJECTIONS/);
  const row = stat.stdout().split('\n').find((l) => l.startsWith(`${NS}/solo`));
  t.ok(row, stat.stdout());
  const cols = row!.trim().split(/\s+/);
  t.ok(Number(cols[cols.length - 3]) > 0, `RETRIES per second > 0: ${row}`);
});

t.test('three replicas at ~500 req/s, one SIGKILLed (app and sidecar): zero failed requests; its pinned session moves with a new cookie', async (t) => {
  // A session pinned to the victim.
  const start = await call('/sticky/start');
  const setCookie = (r: HttpResult) => [r.headers['set-cookie'] ?? []].flat().find((c) => c.startsWith('res-session='));
  let cookie = setCookie(start)!.split(';')[0]!;
  const victimName = podOf(start);
  const victim = mesh.pod(victimName);
  t.ok(podsOf('web').some((p) => p.pod === victimName));
  const pinned = await call('/sticky/x', { headers: { cookie } });
  t.equal(podOf(pinned), victimName, 'the cookie pins');

  let stop = false;
  const failures: string[] = [];
  let sent = 0;
  const t0 = Date.now();
  const worker = async (w: number) => {
    // 8 workers, each paced to ~62 req/s: ~500 req/s in all.
    for (let i = 0; !stop; i++) {
      const due = t0 + (i * 8 + w) * 2;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      try {
        const r = await call(`/load/${w}/${i}`, { timeoutMs: 10_000 });
        if (r.status !== 200) failures.push(`${r.status} ${r.headers['weft-proxy-error'] ?? ''}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
      sent++;
    }
  };
  const sessionFailures: string[] = [];
  const servedBy: string[] = [];
  const cookies = new Set([cookie]);
  const sessionWorker = async () => {
    while (!stop) {
      try {
        const r = await call('/sticky/x', { headers: { cookie }, timeoutMs: 10_000 });
        if (r.status !== 200) sessionFailures.push(`${r.status} ${r.headers['weft-proxy-error'] ?? ''}`);
        else servedBy.push(podOf(r));
        const c = setCookie(r);
        if (c) {
          cookie = c.split(';')[0]!;
          cookies.add(cookie);
        }
      } catch (e) {
        sessionFailures.push((e as Error).message);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const load = Promise.all([...Array.from({ length: 8 }, (_, w) => worker(w)), sessionWorker()]);
  await new Promise((r) => setTimeout(r, 2500));
  const killedAt = servedBy.length;
  for (const pid of [victim.appPid, victim.sidecarPid]) if (pid) process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 5000));
  stop = true;
  await load;
  const seconds = (Date.now() - t0) / 1000;
  t.comment(`${sent} requests in ${seconds.toFixed(1)} s (${Math.round(sent / seconds)} req/s); session: ${servedBy.length} requests`);
  t.ok(sent / seconds >= 250, `load held (${Math.round(sent / seconds)} req/s on a shared machine)`);
  t.same(failures.slice(0, 10), [], 'zero failed requests');
  t.equal(failures.length, 0);
  t.same(sessionFailures.slice(0, 10), [], 'the pinned session saw zero failures');
  const afterKill = servedBy.slice(killedAt + 5);
  t.ok(afterKill.length > 0 && afterKill.every((p) => p !== victimName), `after the kill the session is served elsewhere (${[...new Set(afterKill)].join(', ')})`);
  t.ok(cookies.size >= 2, 'and carries a new cookie');
  const retried = (await clientMetric('weft_retries_total')).filter((s) => s.labels.dst_service === 'web');
  t.comment(`retries by reason: ${retried.map((s) => `${s.labels.reason}=${s.value}`).join(', ')}`);
});

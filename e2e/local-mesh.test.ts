// Issue 2, end to end with real processes: `weft up` runs control, one
// sidecar per pod and the echo app; the test plays the client app and sends
// proxy-style requests to the client pod's outbound sidecar.
import t from 'tap';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTrustAnchor, createIssuer, issueCert, spiffeId } from '../certs/index.js';
import {
  configDir,
  docs,
  echoWorkload,
  httpRequest,
  meshGet,
  service,
  sleep,
  startMesh,
  waitFor,
  writeConfig,
  type EchoResponse,
} from './helpers/mesh.js';

const NS = 'demo';

const route = (defaultWeights: [number, number], pathType = 'PathPrefix') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: ${NS}
spec:
  parentRefs:
    - { group: "", kind: Service, name: web, port: 80 }
  rules:
    - matches:
        - path: { type: ${pathType}, value: /v2 }
      backendRefs:
        - { name: web-b, port: 80 }
    - backendRefs:
        - { name: web-a, port: 80, weight: ${defaultWeights[0]} }
        - { name: web-b, port: 80, weight: ${defaultWeights[1]} }
`;

const dir = configDir(t, {
  'services.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    service({ name: 'web-a', namespace: NS, selector: { app: 'web', version: 'a' } }),
    service({ name: 'web-b', namespace: NS, selector: { app: 'web', version: 'b' } }),
  ),
  'workloads.yaml': docs(
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['web'] }),
    echoWorkload({ name: 'web-a', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'a' } }),
    echoWorkload({ name: 'web-b', namespace: NS, serviceAccount: 'web', labels: { app: 'web', version: 'b' } }),
  ),
  'route.yaml': route([90, 10]),
});

const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const call = (path: string, headers: Record<string, string> = {}) =>
  meshGet(client.podIP, `http://web.${NS}${path}`, { headers, timeoutMs: 3000 });
const whoAnswers = async (path: string): Promise<string> => {
  const r = await call(path);
  if (r.status !== 200) throw new Error(`${path}: status ${r.status}: ${r.body}`);
  return r.json<EchoResponse>().workload;
};

if (mesh.coldStartMs) {
  t.comment(
    `sidecar cold start (process start → /ready): median ${mesh.coldStartMs.median} ms, max ${mesh.coldStartMs.max} ms; all ${mesh.pods.length} pods ready in ${mesh.coldStartMs.readyMs} ms`,
  );
}

// Endpoints arrive as sidecars register; wait until both backends serve.
await waitFor('both backends reachable', async () => (await whoAnswers('/v2/warmup')) === 'web-b' && (await whoAnswers('/warm')) !== '', {
  timeoutMs: 20_000,
});

t.test('a path prefix rule wins over the default rule and reaches the backend it names', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 30; i++) seen.add(await whoAnswers(`/v2/item/${i}`));
  t.same([...seen], ['web-b'], '/v2/* goes to web-b only');
  // Every Host spelling of the Service routes the same way.
  for (const host of ['web', `web.${NS}`, `web.${NS}.svc`, `web.${NS}.svc.cluster.local`, `web.${NS}:80`]) {
    const r = await meshGet(client.podIP, `http://${host}/v2/x`);
    t.equal(r.json<EchoResponse>().workload, 'web-b', `Host ${host}`);
  }
});

t.test('weights 90/10 send 80-97% of 300 requests to the first backend', async (t) => {
  const counts: Record<string, number> = {};
  for (let i = 0; i < 300; i += 20) {
    const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => whoAnswers(`/split/${i + j}`)));
    for (const w of batch) counts[w] = (counts[w] ?? 0) + 1;
  }
  t.comment(`300 requests: ${JSON.stringify(counts)}`);
  t.equal((counts['web-a'] ?? 0) + (counts['web-b'] ?? 0), 300, 'every request answered by a route backend');
  t.ok((counts['web-a'] ?? 0) >= 240 && (counts['web-a'] ?? 0) <= 291, `web-a got ${counts['web-a']} of 300`);
});

t.test('the hop is mTLS: the inbound sees the caller SPIFFE ID', async (t) => {
  const r = await call('/v2/identity');
  const body = r.json<EchoResponse>();
  t.same(body.headers['x-weft-peer-identity'], [spiffeId(NS, 'client')]);
  t.equal(body.serviceAccount, 'web');
});

t.test('a client without a mesh certificate is refused at 7002', async (t) => {
  const target = mesh.pod('web-a-0');
  const attempt = (opts: tls.ConnectionOptions): Promise<{ response: string; error?: string }> =>
    new Promise((resolve) => {
      let response = '';
      const s = tls.connect({
        host: target.podIP,
        port: 7002,
        servername: `8080.web.${NS}.weft`,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
        ...opts,
      });
      s.setTimeout(5000, () => s.destroy(new Error('timeout')));
      s.on('secureConnect', () => s.write(`GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n`));
      s.on('data', (c: Buffer) => (response += c.toString('latin1')));
      s.on('error', (e) => resolve({ response, error: e.message }));
      s.on('close', () => resolve({ response }));
    });
  const none = await attempt({});
  t.notMatch(none.response, /^HTTP\/1\.1 \d/, 'no certificate: no HTTP response');
  t.comment(`without a certificate: ${none.error ?? 'closed'}`);

  // A certificate with the right shape from a CA the mesh does not trust.
  const anchor = createTrustAnchor();
  const foreign = issueCert(createIssuer(anchor), { spiffeId: spiffeId(NS, 'client') });
  const wrong = await attempt({ cert: foreign.certPem, key: foreign.keyPem });
  t.notMatch(wrong.response, /^HTTP\/1\.1 \d/, 'foreign CA: no HTTP response');
  t.comment(`with a foreign certificate: ${wrong.error ?? 'closed'}`);
});

t.test('editing the route file re-routes within one second', async (t) => {
  const before = await Promise.all(Array.from({ length: 20 }, () => whoAnswers('/edit')));
  t.ok(before.includes('web-a'), 'web-a serves before the edit');
  const t0 = Date.now();
  writeConfig(dir, 'route.yaml', route([0, 1]));
  // Propagated once 20 requests in a row land on web-b.
  await waitFor(
    'the edit to take effect',
    async () => {
      const seen = await Promise.all(Array.from({ length: 20 }, () => whoAnswers('/edit')));
      return seen.every((w) => w === 'web-b');
    },
    { timeoutMs: 5000, intervalMs: 10 },
  );
  const ms = Date.now() - t0;
  t.comment(`config edit propagation (file write → traffic moved): ${ms} ms`);
  t.ok(ms < 1000, `re-routed in ${ms} ms`);
  writeConfig(dir, 'route.yaml', route([90, 10]));
  await waitFor('restored', async () => (await Promise.all(Array.from({ length: 20 }, () => whoAnswers('/x')))).includes('web-a'));
});

t.test('bad YAML and an invalid field are reported with file, resource and field; routing is unchanged', async (t) => {
  // Send the default rule to web-b only first (never true by chance under
  // 90/10), so that the invalid version — which says web-a — would show.
  writeConfig(dir, 'route.yaml', route([0, 1]));
  await waitFor('all on web-b', async () => (await Promise.all(Array.from({ length: 20 }, () => whoAnswers('/d')))).every((w) => w === 'web-b'));

  const before = mesh.proc.stderr().length;
  writeConfig(dir, 'broken.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: x, namespace: demo\n  ports: [\n');
  writeConfig(dir, 'route.yaml', route([1, 0], 'Bogus'));
  const admin = `${mesh.controlAdmin}/resources`;
  const errs = await waitFor(
    'both errors to be reported',
    async () => {
      const r = await httpRequest(admin);
      const e = r.json<{ errors: Array<{ source: string; resource: string; field: string; message: string }> }>().errors;
      const yaml = e.find((x) => x.source.endsWith('broken.yaml'));
      const bogus = e.find((x) => x.source.endsWith('route.yaml'));
      return yaml && bogus ? { yaml, bogus } : undefined;
    },
    { timeoutMs: 3000 },
  );
  t.match(errs.bogus, { resource: `HTTPRoute ${NS}/web`, field: 'spec.rules[0].matches[0].path.type' });
  t.match(errs.bogus.message, /Bogus/);
  t.match(errs.yaml.message, /YAML/i);
  const log = mesh.proc.stderr().slice(before);
  t.match(log, /broken\.yaml/, 'weft up prints the YAML error with its file');
  t.match(log, /route\.yaml.*HTTPRoute demo\/web.*spec\.rules\[0\]\.matches\[0\]\.path\.type/, 'and the invalid field with file, resource and field');

  // The last good route keeps serving: everything still goes to web-b.
  await sleep(500);
  const seen = await Promise.all(Array.from({ length: 40 }, (_, i) => whoAnswers(`/still/${i}`)));
  t.same([...new Set(seen)], ['web-b'], 'default rule unchanged');
  t.equal(await whoAnswers('/v2/still'), 'web-b', 'prefix rule unchanged');

  writeConfig(dir, 'broken.yaml', '# fixed\n');
  writeConfig(dir, 'route.yaml', route([90, 10]));
  await waitFor('errors cleared', async () => (await httpRequest(admin)).json<{ errors: unknown[] }>().errors.length === 0, { timeoutMs: 3000 });
});

t.test('weft up records its pods and their sidecars serve /config', async (t) => {
  const pods = JSON.parse(readFileSync(join(mesh.stateDir, 'local-pods.json'), 'utf8')) as { pods: Array<{ pod: string; podIP: string }> };
  t.same(pods.pods.map((p) => p.pod).sort(), ['client-0', 'web-a-0', 'web-b-0']);
  const ips = new Set(pods.pods.map((p) => p.podIP));
  t.equal(ips.size, 3, 'every pod has its own IP');
  t.notOk(ips.has('127.0.0.1'));
  const cfg = await httpRequest(`http://${client.podIP}:7090/config`);
  t.equal(cfg.status, 200);
  t.doesNotThrow(() => JSON.parse(cfg.body));
});

// Issue 5 end to end: pods as network namespaces, `weft init` in each, the
// real control and sidecars, real curl and redis. The app knows nothing of the
// mesh: no proxy setting, only /etc/hosts names for the Services.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { Bed, APP_UID, PROXY_UID } from './netns/bed.js';
import { samples, startControl, startPod, type MeshPod } from './netns/mesh.js';

const suiteStart = performance.now();
// Seven pods, six sidecars and control start on a shared 2-core machine.
t.setTimeout(300_000);
const NS = 'demo';
const bed = Bed.create();
let destroyed = false;
t.teardown(async () => {
  if (!destroyed) await bed.destroy();
});

const ip = {
  echo: bed.clusterIp(),
  echoV1: bed.clusterIp(),
  echoV2: bed.clusterIp(),
  redis: bed.clusterIp(),
  greeter: bed.clusterIp(),
  locked: bed.clusterIp(),
  secure: bed.clusterIp(),
};
bed.addServiceHosts(ip.echo, 'echo', NS);
bed.addServiceHosts(ip.redis, 'redis', NS);
bed.addServiceHosts(ip.greeter, 'greeter', NS);
bed.addServiceHosts(ip.locked, 'locked', NS);
bed.addServiceHosts(ip.secure, 'secure', NS);
// The app's own TLS server (openssl s_server): the mesh must carry its TLS untouched.
execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=secure.${NS}`, '-keyout', `${bed.dir}/secure.key`, '-out', `${bed.dir}/secure.crt`], { stdio: 'ignore' });
execFileSync('chmod', ['a+r', `${bed.dir}/secure.key`, `${bed.dir}/secure.crt`]);

const svc = (name: string, clusterIP: string, selector: Record<string, string>, ports: Array<{ port: number; targetPort: number; appProtocol?: string; name?: string }>) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${NS} }
spec:
  clusterIP: ${clusterIP}
  selector: ${JSON.stringify(selector)}
  ports:
${ports.map((p) => `    - { name: ${p.name ?? `p${p.port}`}, port: ${p.port}, targetPort: ${p.targetPort}${p.appProtocol ? `, appProtocol: ${p.appProtocol}` : ''} }`).join('\n')}
`;

const control = await startControl(bed, {
  'ns.yaml': `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS} }\n`,
  'services.yaml': [
    svc('echo', ip.echo, { app: 'echo' }, [{ port: 80, targetPort: 8080 }]),
    svc('echo-v1', ip.echoV1, { app: 'echo', version: 'v1' }, [{ port: 80, targetPort: 8080 }]),
    svc('echo-v2', ip.echoV2, { app: 'echo', version: 'v2' }, [{ port: 80, targetPort: 8080 }]),
    svc('redis', ip.redis, { app: 'redis' }, [{ port: 6379, targetPort: 6379 }]),
    svc('greeter', ip.greeter, { app: 'greeter' }, [
      { port: 25, targetPort: 2525, name: 'smtp' },
      { port: 26, targetPort: 2525, name: 'smtp-declared', appProtocol: 'tcp' },
    ]),
    svc('locked', ip.locked, { app: 'locked' }, [{ port: 80, targetPort: 8080 }]),
    svc('secure', ip.secure, { app: 'secure' }, [{ port: 443, targetPort: 8443 }]),
  ].join('---\n'),
  'route.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-split, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /v2 } }]
      backendRefs: [{ name: echo-v2, port: 80 }]
    - backendRefs: [{ name: echo-v1, port: 80 }]
`,
});

const echoApp = ['node', 'examples/echo/echo.mjs'];
const pods: Record<string, MeshPod> = {};
const setupStart = performance.now();
const started = await Promise.all([
  startPod(bed, control, 'client', { namespace: NS, serviceAccount: 'client', labels: { app: 'client' }, appPorts: [8080], app: echoApp, appReady: /listening/ }),
  startPod(bed, control, 'echo-v1', { namespace: NS, serviceAccount: 'echo', labels: { app: 'echo', version: 'v1' }, appPorts: [8080], app: echoApp, appReady: /listening/ }),
  startPod(bed, control, 'echo-v2', { namespace: NS, serviceAccount: 'echo', labels: { app: 'echo', version: 'v2' }, appPorts: [8080], app: echoApp, appReady: /listening/ }),
  startPod(bed, control, 'redis', {
    namespace: NS, serviceAccount: 'redis', labels: { app: 'redis' }, appPorts: [6379], appReady: /Ready to accept connections/,
    app: ['redis-server', '--port', '6379', '--bind', '0.0.0.0', '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', '/tmp'],
  }),
  startPod(bed, control, 'greeter', { namespace: NS, serviceAccount: 'greeter', labels: { app: 'greeter' }, appPorts: [2525], app: ['node', 'e2e/netns/greeter.mjs'], appReady: /ready/ }),
  startPod(bed, control, 'locked', { namespace: NS, serviceAccount: 'locked', labels: { app: 'locked' }, appPorts: [8080], app: echoApp, appReady: /listening/, strict: true }),
  startPod(bed, control, 'secure', {
    namespace: NS, serviceAccount: 'secure', labels: { app: 'secure' }, appPorts: [8443], appReady: /ACCEPT/,
    app: ['openssl', 's_server', '-accept', '8443', '-www', '-cert', `${bed.dir}/secure.crt`, '-key', `${bed.dir}/secure.key`],
  }),
  startPod(bed, control, 'outside', { namespace: NS, serviceAccount: 'none', labels: {}, appPorts: [8080], app: echoApp, appReady: /listening/, unmeshed: true }),
]);
for (const p of started) pods[p.pod.name] = p;
t.comment(`bed with ${bed.pods.size} pods, control and 7 sidecars ready in ${(performance.now() - setupStart).toFixed(0)} ms`);

const client = pods.client!.pod;
const curl = (pod = client, url: string, extra: string[] = []) =>
  bed.run(pod, ['curl', '-sS', '--max-time', '5', ...extra, url], { uid: APP_UID, env: { http_proxy: '', HTTP_PROXY: '', no_proxy: '' } });
const echoJson = async (url: string, extra: string[] = []) => {
  const r = await curl(client, url, extra);
  if (r.code !== 0) throw new Error(`curl ${url}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { workload: string; path: string; host: string; headers: Record<string, string[]> };
};
const clientId = `spiffe://cluster.local/ns/${NS}/sa/client`;

t.test('curl to a Service name and to its ClusterIP is routed by the HTTPRoute, no proxy setting', async (t) => {
  const v1 = await echoJson(`http://echo.${NS}.svc.cluster.local/`);
  t.equal(v1.workload, 'echo-v1');
  t.same(v1.headers['x-weft-peer-identity'], [clientId], 'the inbound reports the client SPIFFE ID');
  const v2 = await echoJson(`http://echo.${NS}.svc.cluster.local/v2/x`);
  t.equal(v2.workload, 'echo-v2');
  t.equal(v2.path, '/v2/x');
  t.equal((await echoJson(`http://echo.${NS}/v2`)).workload, 'echo-v2', 'short name');
  t.equal((await echoJson(`http://${ip.echo}/`)).workload, 'echo-v1', 'ClusterIP');
  const odd = await echoJson(`http://${ip.echo}/v2/y`, ['-H', 'Host: somewhere-else.example']);
  t.equal(odd.workload, 'echo-v2', 'the ClusterIP decides the Service, whatever the Host header says');
});

t.test('Redis through the mesh: SET and GET over an mTLS hop', async (t) => {
  const cli = (...args: string[]) => bed.run(client, ['redis-cli', '-h', `redis.${NS}.svc.cluster.local`, '-p', '6379', ...args], { uid: APP_UID });
  const set = await cli('SET', 'greeting', 'hello-mesh');
  t.equal(set.stdout.trim(), 'OK', set.stderr);
  const get = await cli('GET', 'greeting');
  t.equal(get.stdout.trim(), 'hello-mesh');
  const ping = await cli('PING');
  t.equal(ping.stdout.trim(), 'PONG');
  t.comment(`redis-cli PING through the mesh: ${ping.ms.toFixed(1)} ms (process start included)`);
  const m = await pods.redis!.admin('/metrics');
  const opened = samples(m, 'weft_tcp_connections_opened_total').filter((s) => s.labels.direction === 'inbound' && s.labels.tls === 'true' && s.labels.peer === clientId);
  t.ok(opened.length > 0 && opened[0]!.value >= 3, `redis inbound counted mTLS connections from the client: ${JSON.stringify(opened)}`);
  const plain = samples(m, 'weft_tcp_connections_opened_total').filter((s) => s.labels.direction === 'inbound' && s.labels.tls === 'false');
  t.equal(plain.reduce((a, s) => a + s.value, 0), 0, 'no plaintext connection reached redis: nothing leaked around the mesh');
});

t.test('TLS from the app is carried as opaque bytes inside the mesh\'s mTLS', async (t) => {
  const r = await curl(client, `https://secure.${NS}/`, ['--cacert', `${bed.dir}/secure.crt`]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /s_server/, 'the app\'s own TLS server answered, its certificate verified end to end');
  const m = await pods.secure!.admin('/metrics');
  const hop = samples(m, 'weft_tcp_connections_opened_total').filter((s) => s.labels.direction === 'inbound' && s.labels.tls === 'true' && s.labels.peer === clientId);
  t.ok(hop.length > 0 && hop[0]!.value >= 1, 'the inbound saw it arrive over mTLS from the client');
  const det = samples(await pods.client!.admin('/metrics'), 'weft_protocol_detections_total').filter((s) => s.labels.protocol === 'tls');
  t.ok(det.length > 0 && det[0]!.value >= 1, 'the outbound detected TLS');
});

t.test('a server-first protocol does not hang: first byte after the detection timeout, or at once with appProtocol', async (t) => {
  const first = async (port: number) => {
    const r = await bed.run(client, ['node', 'e2e/netns/first-byte.mjs', ip.greeter, String(port)], { uid: APP_UID });
    t.equal(r.code, 0, r.stdout + r.stderr);
    return JSON.parse(r.stdout) as { ms: number; text: string };
  };
  const sniffed = [];
  const declared = [];
  for (let i = 0; i < 5; i++) {
    sniffed.push(await first(25));
    declared.push(await first(26));
  }
  for (const r of [...sniffed, ...declared]) t.match(r.text, /^220 greeter-0 ready\r\n250 HELO x\r\n221 bye\r\n$/);
  const med = (xs: Array<{ ms: number }>) => xs.map((x) => x.ms).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const s = med(sniffed);
  const d = med(declared);
  t.ok(s < 1000, `sniffed port: first byte after ${s.toFixed(1)} ms (median of 5)`);
  t.ok(d < s, `appProtocol: tcp: first byte after ${d.toFixed(1)} ms (median of 5)`);
  t.comment(`detection adds ${(s - d).toFixed(1)} ms to the first byte of a server-first protocol`);
});

t.test('opaque TCP keeps half-close across the hop: the client\'s FIN arrives after its bytes, the answers still come back', async (t) => {
  const code = `const s=require('net').connect(25,'${ip.greeter}');let d='';s.setEncoding('utf8');s.on('data',x=>d+=x);s.end('HELO a\\r\\nHELO b\\r\\n');s.on('close',()=>console.log(JSON.stringify(d)));setTimeout(()=>{console.log(JSON.stringify('timeout:'+d));process.exit(1)},5000).unref()`;
  const r = await bed.run(client, ['node', '-e', code], { uid: APP_UID });
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout), '220 greeter-0 ready\r\n250 HELO a\r\n250 HELO b\r\n');
});

t.test('permissive inbound serves callers outside the mesh; strict refuses them', async (t) => {
  const v1 = pods['echo-v1']!.pod;
  const r = await curl(pods.outside!.pod, `http://${v1.ip}:8080/plain`);
  t.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout);
  t.equal(body.workload, 'echo-v1');
  t.notOk(body.headers['x-weft-peer-identity'], 'no identity without mTLS');
  const locked = pods.locked!.pod;
  const refused = await curl(pods.outside!.pod, `http://${locked.ip}:8080/`);
  t.not(refused.code, 0, `strict refuses plaintext: ${refused.stderr.trim()}`);
  const meshed = await echoJson(`http://locked.${NS}/`);
  t.equal(meshed.workload, 'locked', 'a meshed caller still gets through over mTLS');
  const m = await pods['echo-v1']!.admin('/metrics');
  const plain = samples(m, 'weft_requests_total').filter((s) => s.labels.direction === 'inbound' && s.labels.tls === 'false');
  t.ok(plain.length > 0, 'the plaintext request was counted tls="false"');
});

t.test('another pod cannot borrow a sidecar\'s identity through its outbound port', async (t) => {
  // The outbound listener takes the app's redirected calls only (127.0.0.1:7001);
  // reachable on the pod IP it would be an open proxy that speaks as this workload.
  const r = await curl(pods.outside!.pod, `http://${client.ip}:7001/`, ['-H', `Host: echo.${NS}.svc.cluster.local`]);
  t.not(r.code, 0, `refused: ${r.stderr.trim()}`);
  t.notMatch(r.stdout, /echo-v1/);
});

t.test('the sidecar\'s own traffic is not looped back into itself', async (t) => {
  const r = await bed.run(client, ['iptables', '-t', 'nat', '-L', 'WEFT_OUTPUT', '-v', '-x', '-n']);
  const uidLine = r.stdout.split('\n').find((l) => l.includes(`owner UID match ${PROXY_UID}`));
  const packets = Number(uidLine?.trim().split(/\s+/)[0] ?? 0);
  t.ok(packets > 0, `uid ${PROXY_UID} connections (control, peers) went around the redirect: ${packets}`);
  // The sidecar can reach a peer directly (as it does for the hop), the app cannot skip the mesh.
  const asProxy = await bed.run(client, ['curl', '-sS', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${pods['echo-v1']!.pod.ip}:7090/ready`], { uid: PROXY_UID });
  t.equal(asProxy.stdout, '200');
  const out = await pods.client!.admin('/metrics');
  const loops = samples(out, 'weft_requests_total').filter((s) => s.labels.direction === 'outbound' && /7001|7002/.test(s.labels.dst_port ?? ''));
  t.same(loops, [], 'no request addressed to a sidecar port');
});

t.test('AuthorizationPolicy: a plaintext caller outside the mesh is unauthenticated (HTTP refused 403, opaque closed); meshed callers pass', async (t) => {
  const { writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const file = join(control.configDir, 'authz.yaml');
  const greeterIp = pods.greeter!.pod.ip;
  const greet = `const s=require('net').connect(2525,'${greeterIp}');let d='';s.setEncoding('utf8');s.on('data',x=>{d+=x;s.end()});s.on('error',()=>{});s.on('close',()=>console.log(JSON.stringify(d)));setTimeout(()=>{console.log(JSON.stringify('timeout:'+d));process.exit(0)},4000).unref()`;
  const before = await bed.run(pods.outside!.pod, ['node', '-e', greet], { uid: APP_UID });
  t.match(JSON.parse(before.stdout), /^220 greeter-0 ready/, 'before the policy: the plaintext caller reaches the opaque app (permissive)');
  writeFileSync(file, `apiVersion: policy.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: only-client, namespace: ${NS} }
spec:
  targetRefs:
    - { group: "", kind: Pod, selector: { matchLabels: { app: echo, version: v1 } } }
    - { group: "", kind: Pod, selector: { matchLabels: { app: greeter } } }
  action: ALLOW
  rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: client } }] }]
`);
  t.teardown(() => rmSync(file, { force: true }));
  const v1 = pods['echo-v1']!.pod;
  const outside = pods.outside!.pod;
  let code = '';
  for (let i = 0; i < 100 && code !== '403'; i++) {
    code = (await bed.run(outside, ['curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${v1.ip}:8080/plain`], { uid: APP_UID })).stdout;
    if (code !== '403') await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(code, '403', 'plaintext HTTP from outside the mesh: 403');
  const hdr = await bed.run(outside, ['curl', '-sS', '--max-time', '5', '-D', '-', '-o', '/dev/null', `http://${v1.ip}:8080/plain`], { uid: APP_UID });
  t.match(hdr.stdout, /weft-proxy-error: forbidden: AuthorizationPolicy demo\/only-client does not allow an unauthenticated \(plaintext\) caller on port 8080/i);
  t.equal((await echoJson(`http://echo.${NS}/v1-still`)).workload, 'echo-v1', 'the meshed client still gets through');
  const plain = await bed.run(outside, ['node', '-e', greet], { uid: APP_UID });
  t.equal(JSON.parse(plain.stdout), '', 'plaintext opaque TCP from outside: closed before the app says a word');
  const viaMesh = `const s=require('net').connect(25,'${ip.greeter}');let d='';s.setEncoding('utf8');s.on('data',x=>{d+=x;s.end()});s.on('close',()=>console.log(JSON.stringify(d)));setTimeout(()=>{console.log(JSON.stringify('timeout:'+d));process.exit(1)},5000).unref()`;
  const meshed = await bed.run(client, ['node', '-e', viaMesh], { uid: APP_UID });
  t.match(JSON.parse(meshed.stdout), /^220 greeter-0 ready/, 'the meshed client still reaches the opaque app');
});

t.test('tear-down leaves no namespace, veth, process or iptables rule behind', async (t) => {
  const names = [...bed.pods.values()].map((p) => p.ns);
  await bed.destroy();
  destroyed = true;
  t.same(bed.leftovers(), []);
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of names) t.notOk(netns.includes(n), `${n} gone`);
  t.notMatch(execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' }), /WEFT_/);
  t.comment(`intercept-mesh suite: ${((performance.now() - suiteStart) / 1000).toFixed(1)} s`);
});

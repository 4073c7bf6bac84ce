// Interception in real network namespaces, without the full sidecar: `weft
// init`'s rules, SO_ORIGINAL_DST, detection and the plaintext inbound,
// exercised by curl and node programs running as the app (uid 1000) and as
// the proxy (uid 2102). A stand-in sidecar (netns/redirect-probe.mjs) uses
// the real dist/sidecar/ code for all of it.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { Bed, APP_UID, PROXY_UID, WEFT, bedUnavailable, type Pod } from './netns/bed.js';

t.setTimeout(240_000);
const bed = Bed.create();
let destroyed = false;
t.teardown(async () => {
  if (!destroyed) await bed.destroy();
});

const probe = 'e2e/netns/redirect-probe.mjs';
const tinyApp = 'e2e/netns/tiny-app.mjs';

// client: meshed (init applied), with a stand-in sidecar.
// server: meshed, permissive stand-in sidecar, app on 8080 and 9999.
// strict: meshed, strict stand-in sidecar, app on 8080.
// outside: no mesh at all.
const client = bed.addPod('client');
const server = bed.addPod('server');
const strict = bed.addPod('strict');
const outside = bed.addPod('outside');
const echoIp = bed.clusterIp();
bed.addServiceHosts(echoIp, 'echo', 'demo');

async function startPod(pod: Pod, opts: { strict?: boolean; app?: boolean } = {}) {
  const env = { POD_IP: pod.ip, POD_NAME: pod.name, STRICT: opts.strict ? '1' : '0', PORTS: '8080,9999' };
  const side = bed.spawn(`${pod.name}-sidecar`, pod, ['node', probe], { uid: PROXY_UID, env });
  await bed.waitFor(side, /ready/);
  if (opts.app) {
    const app = bed.spawn(`${pod.name}-app`, pod, ['node', tinyApp], { uid: APP_UID, env });
    await bed.waitFor(app, /ready/);
  }
  return side;
}

const curl = (pod: Pod, url: string, uid = APP_UID, extra: string[] = []) =>
  bed.run(pod, ['curl', '-sS', '--noproxy', '*', '--max-time', '5', ...extra, url], { uid, env: { http_proxy: '', HTTP_PROXY: '' } });

t.before(async () => {
  for (const p of [client, server, strict]) await bed.weftInit(p, ['--skip-outbound-ports', '9999']);
  await startPod(client, { app: true });
  await startPod(server, { app: true });
  await startPod(strict, { strict: true, app: true });
  await startPod(outside, { app: true });
});

t.test('the bed refuses to start without iptables, saying so', async (t) => {
  const path = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    t.equal(bedUnavailable(), 'the netns test bed needs iptables (apt-get install -y iptables)');
  } finally {
    process.env.PATH = path;
  }
  t.equal(bedUnavailable(), undefined, 'root and iptables here');
});

t.test('weft init twice leaves one set of rules; --dry-run prints them', async (t) => {
  await bed.weftInit(client, ['--skip-outbound-ports', '9999']);
  const rules = await bed.run(client, ['iptables', '-t', 'nat', '-S']);
  t.equal(rules.stdout.match(/-A OUTPUT .*-j WEFT_OUTPUT/g)?.length, 1, 'one OUTPUT jump');
  t.equal(rules.stdout.match(/-A PREROUTING .*-j WEFT_PREROUTING/g)?.length, 1, 'one PREROUTING jump');
  t.equal(rules.stdout.match(/REDIRECT --to-ports 7001/g)?.length, 1);
  const dry = await bed.run(client, ['node', WEFT, 'init', '--dry-run']);
  t.equal(dry.code, 0);
  t.match(dry.stdout, /iptables -w -t nat -A WEFT_REDIRECT_OUT -p tcp .* -j REDIRECT --to-ports 7001/);
});

t.test('the app\'s call to a service name reaches the outbound listener with its original destination', async (t) => {
  const r = await curl(client, 'http://echo.demo.svc.cluster.local/hello');
  t.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout);
  t.same(body.dst, { address: echoIp, port: 80 });
  t.equal(body.protocol, 'http1');
  t.equal(body.uid, PROXY_UID, 'answered by the sidecar user');
  t.equal(body.reason, 'sniffed', `HTTP recognised from its first bytes, not by the timeout (${body.detectMs.toFixed(2)} ms)`);
  t.comment(`detection of a client-first HTTP request: ${body.detectMs.toFixed(2)} ms from accept to decision (the request's own arrival included)`);
  const short = JSON.parse((await curl(client, 'http://echo.demo:8080/')).stdout);
  t.same(short.dst, { address: echoIp, port: 8080 }, 'short name, other port');
  const byIp = JSON.parse((await curl(client, `http://${server.ip}:8080/`)).stdout);
  t.same(byIp.dst, { address: server.ip, port: 8080 }, 'a pod IP too');
});

t.test('not intercepted: the sidecar user, loopback, skipped ports', async (t) => {
  const asProxy = JSON.parse((await curl(client, `http://${server.ip}:8080/`, PROXY_UID)).stdout);
  t.equal(asProxy.app, 'server', 'uid 2102 is not sent to its own outbound listener (no loop)');
  t.equal(asProxy.remote, server.ip, '...and still enters the server pod through its inbound listener');
  const loop = JSON.parse((await curl(client, 'http://127.0.0.1:8080/')).stdout);
  t.equal(loop.app, 'client', 'loopback reaches the local app');
  const own = JSON.parse((await curl(client, `http://${client.ip}:8080/`)).stdout);
  t.equal(own.app, 'client', 'own pod IP goes over lo: not intercepted');
  const skipped = await curl(client, `http://${outside.ip}:9999/`);
  t.equal(JSON.parse(skipped.stdout).app, 'outside', '--skip-outbound-ports 9999');
});

t.test('inbound: a caller outside the mesh reaches a permissive pod, is refused by a strict one', async (t) => {
  const ok = await curl(outside, `http://${server.ip}:8080/x`);
  t.equal(ok.code, 0, ok.stderr);
  const body = JSON.parse(ok.stdout);
  t.equal(body.app, 'server');
  t.equal(body.remote, server.ip, 'forwarded by the inbound listener from the pod IP');
  const refused = await curl(outside, `http://${strict.ip}:8080/x`);
  // The strict inbound resets the connection as soon as it accepts it. How
  // curl words that depends on when the RST lands: during its connect check
  // (exit 7, "Couldn't connect to server" — the reset beat curl's own
  // SO_ERROR read, common on a loaded machine), before the request was sent
  // (55) or while waiting for the answer (52, 56). Each is a refusal; a 0 or
  // a timeout (28) is not.
  t.ok([7, 52, 55, 56].includes(refused.code), `strict refuses plaintext: curl exit ${refused.code}: ${refused.stderr.trim()}`);
  const direct = JSON.parse((await curl(outside, `http://${server.ip}:7002/`)).stdout);
  t.same(direct, { listener: 'inbound', direct: true }, 'a dial to 7002 itself is not redirected (the mesh hop)');
  const admin = JSON.parse((await curl(outside, `http://${strict.ip}:7090/`)).stdout);
  t.equal(admin.listener, 'admin', 'the admin port is never redirected');
  t.equal(admin.counts.refused, 1, 'strict counted one refusal');
});

t.test('server-first over the redirect: detection gives up after the timeout, greeting arrives', async (t) => {
  // A TCP client that only reads: the probe answers after detection times out (150 ms).
  const code = `const s=require('net').connect(6379,'${echoIp}');const t0=Date.now();s.on('data',d=>{console.log(JSON.stringify({ms:Date.now()-t0,body:String(d).split('\\r\\n\\r\\n')[1]}));s.destroy()})`;
  const r = await bed.run(client, ['node', '-e', code], { uid: APP_UID });
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  const body = JSON.parse(out.body);
  t.equal(body.protocol, 'opaque');
  t.equal(body.reason, 'timeout');
  t.same(body.dst, { address: echoIp, port: 6379 });
  t.ok(out.ms >= 140 && out.ms < 2000, `first byte after ${out.ms} ms (detection timeout 150 ms)`);
});

t.test('weft init --remove, then tear-down leaves nothing behind', async (t) => {
  await bed.run(client, ['node', WEFT, 'init', '--remove']);
  const after = await bed.run(client, ['iptables', '-t', 'nat', '-S']);
  t.notMatch(after.stdout, /WEFT_/);
  const direct = await curl(client, `http://${outside.ip}:8080/`);
  t.equal(JSON.parse(direct.stdout).app, 'outside', 'without rules the call goes straight to the pod');
  await bed.destroy();
  destroyed = true;
  t.same(bed.leftovers(), []);
  const root = execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' });
  t.notMatch(root, /WEFT_/, 'root namespace untouched');
});

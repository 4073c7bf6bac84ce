// Control end to end over real gRPC and TLS: a fake sidecar certifies with the
// bootstrap token, streams, subscribes, ACKs; file edits push within a second;
// bad files keep the old config; identities are checked; STATE survives restarts.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceConfig } from '../../api/index.js';
import { startControl, type ControlHandle } from '../index.js';
import { certify, FakeSidecar, readState, updateOf, directoryOf, type MeshCert } from './helpers/fake-sidecar.js';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const podIP = (n: number) => `127.${ip.split('.')[1]}.${ip.split('.')[2]}.${(Number(ip.split('.')[3]) + n) % 250 + 1}`;

const services = `apiVersion: v1
kind: Service
metadata: { name: smiley, namespace: faces }
spec:
  selector: { app: smiley }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: smiley-v1, namespace: faces }
spec:
  selector: { app: smiley, version: v1 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: smiley-v2, namespace: faces }
spec:
  selector: { app: smiley, version: v2 }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: color, namespace: faces }
spec:
  selector: { app: color }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

const route = (w1: number, w2: number, pathType = 'PathPrefix') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: smiley-split, namespace: faces }
spec:
  parentRefs: [{ group: "", kind: Service, name: smiley, port: 80 }]
  rules:
    - matches: [{ path: { type: ${pathType}, value: / } }]
      backendRefs:
        - { name: smiley-v1, port: 80, weight: ${w1} }
        - { name: smiley-v2, port: 80, weight: ${w2} }
`;

const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
const stateDir = mkdtempSync(join(tmpdir(), 'weft-state-'));
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'services.yaml'), services);
writeFileSync(join(dir, 'route.yaml'), route(90, 10));

const logs: string[] = [];
const start = () =>
  startControl({
    configDir: dir,
    stateDir,
    listen: `${ip}:0`,
    adminListen: `${ip}:0`,
    log: (l) => logs.push(l),
    registrationGraceMs: 500,
  });

let control: ControlHandle = await start();
t.teardown(() => control.close());
const sidecars: FakeSidecar[] = [];
t.teardown(() => sidecars.forEach((s) => s.close()));
const { token, bundle } = readState(stateDir);

const weights = (cfg: ServiceConfig): number[] => cfg.ports[0]!.rules.flatMap((r) => r.backends.map((b) => b.weight));
const parse = (b: Buffer): ServiceConfig => JSON.parse(Buffer.from(b).toString('utf8')) as ServiceConfig;

async function sidecar(
  ns: string,
  sa: string,
  hello: Record<string, unknown> = {},
  cert?: MeshCert,
): Promise<{ s: FakeSidecar; cert: MeshCert }> {
  const c = cert ?? (await certify(control.grpcAddress, bundle, { token, namespace: ns, serviceAccount: sa }));
  const s = new FakeSidecar(control.grpcAddress, bundle, c, { namespace: ns, service_account: sa, ...hello });
  sidecars.push(s);
  return { s, cert: c };
}

async function admin(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${control.adminAddress}${path}`);
  return { status: res.status, body: await res.text() };
}

let smileyV1: { s: FakeSidecar; cert: MeshCert };

t.test('a sidecar certifies with the bootstrap token and gets a 24 h SPIFFE leaf', async (t) => {
  const c = await certify(control.grpcAddress, bundle, { token, namespace: 'faces', serviceAccount: 'smiley' });
  const { X509Certificate } = await import('node:crypto');
  const x = new X509Certificate(c.certPem);
  t.match(x.subjectAltName ?? '', /URI:spiffe:\/\/cluster\.local\/ns\/faces\/sa\/smiley/);
  const life = c.notAfter - Date.now();
  t.ok(life > 23 * 3600_000 && life <= 24 * 3600_000 + 60_000, 'about 24 h');
  t.equal(c.chain.length, 1, 'chain holds the issuer');
  t.equal(c.bundle, bundle, 'trust bundle as in STATE');
  t.ok(x.verify(new X509Certificate(c.chain[0]!).publicKey), 'leaf signed by the issuer');
});

t.test('a wrong bootstrap token is refused', async (t) => {
  await t.rejects(certify(control.grpcAddress, bundle, { token: 'nope', namespace: 'faces', serviceAccount: 'smiley' }), {
    code: grpc.status.UNAUTHENTICATED,
  });
  await t.rejects(certify(control.grpcAddress, bundle, { token, namespace: 'faces', serviceAccount: 'x', csrPem: 'garbage' }), {
    code: grpc.status.INVALID_ARGUMENT,
  });
});

t.test('a sidecar streams: directory, registration as an endpoint, subscribed view, ACKs', async (t) => {
  smileyV1 = await sidecar('faces', 'smiley', {
    workload: 'smiley-v1',
    pod_name: 'smiley-v1-0',
    pod_ip: podIP(1),
    labels: { app: 'smiley', version: 'v1' },
    app_ports: [8080],
  });
  const face = await sidecar('faces', 'face', {
    workload: 'face',
    pod_name: 'face-0',
    pod_ip: podIP(2),
    labels: { app: 'face' },
    app_ports: [8080],
    subscribe: ['smiley'],
  });
  const dm = await face.s.next((m) => !!directoryOf(m));
  const d = directoryOf(dm)!;
  t.same(
    d.services.map((s) => `${s.namespace}/${s.name}`),
    ['faces/color', 'faces/smiley', 'faces/smiley-v1', 'faces/smiley-v2'],
  );
  t.equal(d.trust_bundle, bundle);
  // Registration of smiley-v1 reaches the view subscribed by face.
  const um = await face.s.next((m) => {
    const u = updateOf(m);
    return !!u && u.service === 'faces/smiley' && !u.removed && JSON.stringify(parse(u.config_json)).includes(podIP(1));
  });
  const cfg = parse(updateOf(um)!.config_json);
  t.equal(cfg.service, 'faces/smiley');
  t.equal(cfg.consumerNamespace, 'faces');
  t.same(weights(cfg), [90, 10]);
  const v1 = cfg.backends['faces/smiley-v1:80'];
  t.ok(v1, 'backend smiley-v1');
  t.same(
    v1!.endpoints.map((e) => [e.ip, e.port, e.identity?.serviceAccount]),
    [[podIP(1), 8080, 'smiley']],
    'endpoint = the registered sidecar at podIP:targetPort',
  );
  const res = JSON.parse((await admin('/resources')).body);
  t.ok(res.registered.some((r: { workload: { podIP: string } }) => r.workload.podIP === podIP(1)));
  t.equal((await admin('/ready')).status, 200);
  const metrics = (await admin('/metrics')).body;
  t.match(metrics, /weft_control_connected_sidecars 2/);
  t.match(metrics, /weft_control_certificates_signed_total [1-9]/);
  face.s.close();
});

t.test('a route edit pushes a new version within a second, only to subscribers, and the ACKs close the push', async (t) => {
  const a = await sidecar('faces', 'face', { subscribe: ['faces/smiley'] });
  const b = await sidecar('faces', 'face', { subscribe: ['faces/smiley'] });
  const other = await sidecar('faces', 'color', { subscribe: ['faces/color'] });
  const first = await a.s.next((m) => updateOf(m)?.service === 'faces/smiley');
  await b.s.next((m) => updateOf(m)?.service === 'faces/smiley');
  await other.s.next((m) => updateOf(m)?.service === 'faces/color');
  await sleep(100);
  const na = a.s.messages.length;
  const nb = b.s.messages.length;
  const no = other.s.messages.length;
  const t0 = Date.now();
  const pushed = new Promise<{ durationMs: number }>((resolve) => control.engine.once('pushed', resolve));
  writeFileSync(join(dir, 'route.yaml'), route(10, 90));
  const um = await a.s.next((m) => updateOf(m)?.service === 'faces/smiley', 1000, na);
  const took = Date.now() - t0;
  t.ok(took < 1000, `edit reached the sidecar in ${took} ms`);
  const u = updateOf(um)!;
  t.same(weights(parse(u.config_json)), [10, 90]);
  t.not(u.version, updateOf(first)!.version, 'a new content, a new version');
  t.match(u.version, /^[0-9a-f]{16}$/, 'versions are content hashes');
  const ub = updateOf(await b.s.next((m) => updateOf(m)?.service === 'faces/smiley', 1000, nb))!;
  t.equal(ub.version, u.version, 'one version per (service, consumer namespace)');
  t.ok(Buffer.from(ub.config_json).equals(Buffer.from(u.config_json)), 'same bytes for every subscriber');
  const report = await pushed;
  t.ok(report.durationMs < 1000, `change → last ACK ${report.durationMs.toFixed(1)} ms`);
  await sleep(200);
  t.same(
    other.s.messages.slice(no).filter((m) => updateOf(m)),
    [],
    'a sidecar not subscribed to smiley got no update',
  );
  t.match((await admin('/metrics')).body, /weft_control_push_duration_seconds_count [1-9]/);
  a.s.close();
  b.s.close();
  other.s.close();
});

t.test('a bad file keeps the old config and reports file, resource and field', async (t) => {
  const s = await sidecar('faces', 'face', { subscribe: ['faces/smiley'] });
  const cur = await s.s.next((m) => updateOf(m)?.service === 'faces/smiley');
  const before = parse(updateOf(cur)!.config_json);
  const n = s.s.messages.length;
  writeFileSync(join(dir, 'route.yaml'), route(50, 50, 'Bogus'));
  await sleep(600);
  t.same(s.s.messages.slice(n).filter((m) => updateOf(m)), [], 'nothing pushed');
  const errs = control.errors();
  const e = errs.find((x) => x.field === 'spec.rules[0].matches[0].path.type');
  t.ok(e, 'error names the field');
  t.equal(e?.source, join(dir, 'route.yaml'));
  t.equal(e?.resource, 'HTTPRoute faces/smiley-split');
  const view = JSON.parse((await admin('/config/faces/smiley?consumer=faces')).body) as ServiceConfig;
  t.same(weights(view), weights(before), 'still serving the last good route');
  const res = JSON.parse((await admin('/resources')).body);
  t.ok(res.errors.some((x: { field: string }) => x.field === 'spec.rules[0].matches[0].path.type'));
  t.match((await admin('/metrics')).body, /weft_control_config_errors [1-9]/);
  writeFileSync(join(dir, 'route.yaml'), 'kind: [broken\n');
  await sleep(400);
  t.ok(control.errors().some((x) => x.source === join(dir, 'route.yaml') && /YAML/.test(x.message)));
  t.same(weights(JSON.parse((await admin('/config/faces/smiley?consumer=faces')).body)), weights(before));
  // Fixing the file moves on.
  const m = s.s.messages.length;
  writeFileSync(join(dir, 'route.yaml'), route(30, 70));
  const u = await s.s.next((x) => updateOf(x)?.service === 'faces/smiley', 1000, m);
  t.same(weights(parse(updateOf(u)!.config_json)), [30, 70]);
  t.same(control.errors(), []);
  s.s.close();
});

t.test('subscriptions to unknown services are remembered and served when they appear', async (t) => {
  const s = await sidecar('faces', 'face', { subscribe: ['faces/later'] });
  const first = updateOf(await s.s.next((m) => updateOf(m)?.service === 'faces/later'))!;
  t.equal(first.removed, true, 'unknown for now');
  const n = s.s.messages.length;
  writeFileSync(
    join(dir, 'later.yaml'),
    `apiVersion: v1\nkind: Service\nmetadata: { name: later, namespace: faces }\nspec:\n  selector: { app: later }\n  ports: [{ port: 80, targetPort: 9090 }]\n`,
  );
  const u = updateOf(await s.s.next((m) => updateOf(m)?.service === 'faces/later', 1000, n))!;
  t.equal(u.removed, false);
  t.equal(parse(u.config_json).name, 'later');
  s.s.close();
});

t.test('NACKs are logged and counted by reason', async (t) => {
  const s = await sidecar('faces', 'face');
  s.s.autoAck = false;
  s.s.subscribe(['faces/color']);
  const u = updateOf(await s.s.next((m) => updateOf(m)?.service === 'faces/color'))!;
  s.s.ack('service:faces/color', u.version, 'invalid config: ports[0].rules: bad');
  await sleep(100);
  t.ok(logs.some((l) => /NACK .*faces\/color.*invalid config/.test(l)));
  t.match((await admin('/metrics')).body, /weft_control_nacks_total\{reason="invalid_config"\} 1/);
  s.s.close();
});

t.test('streams without a mesh certificate, or whose certificate names someone else, are refused', async (t) => {
  const c = await certify(control.grpcAddress, bundle, { token, namespace: 'faces', serviceAccount: 'color' });
  const liar = new FakeSidecar(control.grpcAddress, bundle, c, { namespace: 'faces', service_account: 'smiley', pod_ip: podIP(9) });
  sidecars.push(liar);
  const st = await liar.ended;
  t.equal(st.code, grpc.status.PERMISSION_DENIED);
  t.match(st.details, /does not match/);
  t.notOk(control.registry.list().some((w) => w.podIP === podIP(9)), 'not registered');
  const c2 = await certify(control.grpcAddress, bundle, { token, namespace: 'faces', serviceAccount: 'smiley' });
  const badIP = new FakeSidecar(control.grpcAddress, bundle, c2, { namespace: 'faces', service_account: 'smiley', pod_ip: 'not-an-ip' });
  sidecars.push(badIP);
  const st2 = await badIP.ended;
  t.equal(st2.code, grpc.status.INVALID_ARGUMENT);
  t.match(st2.details, /pod_ip/);
  const anon = new FakeSidecar(control.grpcAddress, bundle, undefined, { namespace: 'faces', service_account: 'smiley' });
  sidecars.push(anon);
  t.equal((await anon.ended).code, grpc.status.UNAUTHENTICATED);
});

t.test('restarting control with the same STATE keeps endpoints while sidecars reconnect', async (t) => {
  await control.close();
  t.equal((await smileyV1.s.ended).code, grpc.status.UNAVAILABLE, 'open streams end with UNAVAILABLE: sidecars reconnect');
  control = await start();
  // Before any sidecar reconnected, the view still holds smiley-v1's endpoint.
  const view = JSON.parse((await admin('/config/faces/smiley?consumer=faces')).body) as ServiceConfig;
  t.same(
    view.backends['faces/smiley-v1:80']?.endpoints.map((e) => e.ip),
    [podIP(1)],
    'registered endpoint reloaded from STATE',
  );
  t.equal((await admin('/ready')).status, 200);
  // The sidecar reconnects with its existing certificate (same anchor) and becomes connected again.
  const again = await sidecar(
    'faces',
    'smiley',
    { workload: 'smiley-v1', pod_name: 'smiley-v1-0', pod_ip: podIP(1), labels: { app: 'smiley', version: 'v1' }, app_ports: [8080] },
    smileyV1.cert,
  );
  await again.s.next((m) => !!directoryOf(m));
  await sleep(50);
  t.equal(control.registry.all().find((e) => e.workload.podIP === podIP(1))?.state, 'connected');
  again.s.close();
  await sleep(700);
  t.notOk(control.registry.list().some((w) => w.podIP === podIP(1)), 'gone after the grace period');
});

t.test('Goodbye (draining): the endpoint leaves the subscribers\' views at once while the stream stays open; a draining reconnect is not registered', async (t) => {
  const hello = { workload: 'smiley-v2', pod_name: 'smiley-v2-0', pod_ip: podIP(20), labels: { app: 'smiley', version: 'v2' }, app_ports: [8080] };
  const leaving = await sidecar('faces', 'smiley', hello);
  const face = await sidecar('faces', 'face', { workload: 'face', pod_name: 'face-9', pod_ip: podIP(21), labels: { app: 'face' }, app_ports: [8080], subscribe: ['smiley-v2'] });
  const has = (m: Parameters<typeof updateOf>[0], ip: string) => {
    const u = updateOf(m);
    return !!u && u.service === 'faces/smiley-v2' && !u.removed && JSON.stringify(parse(u.config_json)).includes(ip);
  };
  await face.s.next((m) => has(m, podIP(20)));
  const from = face.s.messages.length;
  leaving.s.goodbye('SIGTERM');
  const gone = await face.s.next((m) => {
    const u = updateOf(m);
    return !!u && u.service === 'faces/smiley-v2' && !JSON.stringify(parse(u.config_json)).includes(podIP(20));
  }, 3000, from);
  t.ok(gone, 'the subscriber got a view without the draining endpoint');
  t.notOk(control.registry.list().some((w) => w.podIP === podIP(20)), 'no longer registered, though its stream is open');
  t.match(logs.join('\n'), /faces\/smiley-v2-0 \(.*\) is draining \(SIGTERM\)/, 'control logs the drain');
  // The draining sidecar still gets config on its open stream (its app's outbound calls).
  const n = leaving.s.messages.length;
  leaving.s.subscribe(['color']);
  await leaving.s.next((m) => updateOf(m)?.service === 'faces/color', 3000, n);
  // A draining sidecar that reconnects (control restarted, another replica) is not registered again.
  leaving.s.close();
  const back = await sidecar('faces', 'smiley', { ...hello, draining: true }, leaving.cert);
  await back.s.next((m) => !!directoryOf(m));
  await sleep(100);
  t.notOk(control.registry.list().some((w) => w.podIP === podIP(20)), 'a Hello with draining does not register');
  back.s.close();
  face.s.close();
});

t.test('content versions: a sidecar that reconnects saying what it holds is sent nothing it has; a changed view still comes', async (t) => {
  const hello = { workload: 'face', pod_name: 'face-7', pod_ip: podIP(30), labels: { app: 'face' }, app_ports: [8080], subscribe: ['smiley', 'color'] };
  const first = await sidecar('faces', 'face', hello);
  const d = directoryOf(await first.s.next((m) => !!directoryOf(m)))!;
  const smiley = updateOf(await first.s.next((m) => updateOf(m)?.service === 'faces/smiley'))!;
  const color = updateOf(await first.s.next((m) => updateOf(m)?.service === 'faces/color'))!;
  first.s.close();
  // Same content, same versions: a reconnect (to this replica or another) holding them gets no push.
  const again = await sidecar('faces', 'face', { ...hello, versions: { directory: d.version, 'service:faces/smiley': smiley.version, 'service:faces/color': color.version } }, first.cert);
  await sleep(500);
  t.same(again.s.messages.length, 0, 'nothing re-sent');
  again.s.close();
  // Holding an outdated view: only that one comes.
  const stale = await sidecar('faces', 'face', { ...hello, versions: { directory: d.version, 'service:faces/smiley': 'feedfacefeedface', 'service:faces/color': color.version } }, first.cert);
  const u = updateOf(await stale.s.next((m) => !!updateOf(m)))!;
  t.equal(u.service, 'faces/smiley');
  t.equal(u.version, smiley.version, 'the current version, the same as before');
  await sleep(300);
  t.equal(stale.s.messages.length, 1, 'only the view that differed');
  stale.s.close();
});

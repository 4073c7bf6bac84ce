// Issue 17 item 1, end to end with real processes: `weft up` runs control,
// the sidecars and the apps; the test keeps HTTP (keep-alive and a new
// connection per request) and gRPC (one long-lived channel and a new channel
// per call) flowing through the client's sidecar while
// `weft certs rotate anchor|issuer|finish --state-dir STATE` run, and asserts
// that no request fails, that every sidecar's GET /identity shows the new
// bundle (within 5 s) and the new issuer (within a minute) with the
// fingerprints openssl prints, and that after `finish` the inbound refuses a
// leaf of the old issuer and accepts one of the new.
import t, { type Test } from 'tap';
import tls from 'node:tls';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCert, spiffeId, type Pem } from '../certs/index.js';
import { configDir, docs, echoWorkload, httpRequest, meshGet, metricSamples, startMesh, waitFor, weft, writeConfig, type EchoResponse, type PodInfo } from './helpers/mesh.js';
import { echoClient, GRPC_ECHO_APP, unary, type EchoClient } from './helpers/grpc-echo.js';

// The issuer step waits for every sidecar's spread-out renewal (up to 30 s), on a shared machine.
t.setTimeout(300_000);

const NS = 'demo';

const meshYaml = (webReplicas: number) =>
  docs(
    `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS} }\n`,
    `apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${NS} }
spec:
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: grpc, port: 7070, targetPort: 7070, appProtocol: grpc }
`,
    `apiVersion: local.weft.io/v1alpha1
kind: Workload
metadata: { name: web, namespace: ${NS} }
spec:
  command: [node, ${JSON.stringify(GRPC_ECHO_APP)}]
  serviceAccount: web
  labels: { app: web }
  replicas: ${webReplicas}
  ports: [8080, 7070]
  env: { PORTS: "8080", GRPC_PORT: "7070" }
`,
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['web'] }),
  );
const dir = configDir(t, { 'mesh.yaml': meshYaml(2) });

const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const STATE = mesh.stateDir;
const state = (f: string) => join(STATE, f);

/** What openssl says: `openssl x509 -noout -fingerprint -sha256`, colons removed, lower case. */
const tmp = mkdtempSync(join(tmpdir(), 'weft-rot-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
function opensslSha256(pem: string): string {
  const f = join(tmp, `c${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(f, pem);
  const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', f], { encoding: 'utf8' });
  return /=([0-9A-F:]+)/.exec(out)![1]!.replace(/:/g, '').toLowerCase();
}

interface IdentityDoc {
  spiffeId: string;
  leaf: { notBefore: string; notAfter: string; sha256: string; issuerSha256: string };
  trustBundle: { subject: string; notAfter: string; sha256: string }[];
}
const identityOf = async (p: PodInfo): Promise<IdentityDoc> => (await httpRequest(`${p.adminUrl}/identity`, { keepAlive: false })).json<IdentityDoc>();
const allIdentities = () => Promise.all(mesh.pods.map(identityOf));
/** The anchors a sidecar's weft_certificate_expiry_timestamp_seconds{kind="anchor"} names. */
const anchorSeries = async (p: PodInfo): Promise<string[]> =>
  metricSamples((await httpRequest(`${p.adminUrl}/metrics`, { keepAlive: false })).body, 'weft_certificate_expiry_timestamp_seconds')
    .filter((s) => s.labels['kind'] === 'anchor')
    .map((s) => s.labels['identity']!)
    .sort();

/** One TLS handshake to a pod's inbound (7002) with a client leaf; the HTTP status line, or what went wrong. */
function inboundWith(target: PodInfo, leaf: Pem | undefined, issuerPem: string): Promise<{ status?: number; peerPem?: string; error?: string }> {
  return new Promise((resolve) => {
    let response = '';
    let peerPem: string | undefined;
    const s = tls.connect({
      host: target.podIP,
      port: 7002,
      servername: `8080.web.${NS}.weft`,
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
      ...(leaf ? { cert: leaf.certPem + issuerPem, key: leaf.keyPem } : {}),
    });
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('secureConnect', () => {
      const raw = s.getPeerCertificate().raw;
      if (raw) peerPem = `-----BEGIN CERTIFICATE-----\n${raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
      s.write(`GET /probe HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n`);
    });
    s.on('data', (c: Buffer) => (response += c.toString('latin1')));
    const done = (error?: string) => {
      const m = /^HTTP\/1\.1 (\d+)/.exec(response);
      resolve({ ...(m ? { status: Number(m[1]) } : {}), ...(peerPem ? { peerPem } : {}), ...(error && !m ? { error } : {}) });
    };
    s.on('error', (e) => done(e.message));
    s.on('close', () => done());
  });
}

const readIssuer = (): Pem => ({ certPem: readFileSync(state('ca/issuer.pem'), 'utf8'), keyPem: readFileSync(state('ca/issuer.key'), 'utf8') });
const clientLeaf = (issuer: Pem): Pem => issueCert(issuer, { spiffeId: spiffeId(NS, 'client'), lifetimeMs: 3_600_000 });

// ---- steady traffic for the whole test ---------------------------------------------

interface Loop { name: string; ok: number; failed: string[] }
let running = true;
const loops: Loop[] = [];
function loop(name: string, once: () => Promise<void>, pauseMs = 0): Promise<void> {
  const l: Loop = { name, ok: 0, failed: [] };
  loops.push(l);
  return (async () => {
    while (running) {
      try {
        await once();
        l.ok++;
      } catch (e) {
        l.failed.push(`${new Date().toISOString()} ${(e as Error).message}`);
      }
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
}
const expectEcho = async (p: Promise<{ status: number; body: string }>) => {
  const r = await p;
  if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body.slice(0, 200)}`);
};
const grpcChannel: EchoClient = echoClient(`${client.podIP}:7001`, `web.${NS}:7070`);
t.teardown(() => grpcChannel.close());
let seq = 0;
const traffic = [
  loop('http keep-alive', () => expectEcho(meshGet(client.podIP, `http://web.${NS}/keep-alive`, { timeoutMs: 5000 }))),
  loop('http new connection', () => expectEcho(httpRequest(`http://web.${NS}/new`, { proxy: `${client.podIP}:7001`, keepAlive: false, timeoutMs: 5000 })), 20),
  loop('grpc channel', async () => {
    const r = await unary(grpcChannel, 'Echo', { text: 'hi', seq: ++seq }, { deadlineMs: 5000 });
    if (!r.pod) throw new Error('no pod in the answer');
  }),
  loop('grpc new channel', async () => {
    const c = echoClient(`${client.podIP}:7001`, `web.${NS}:7070`);
    try {
      await unary(c, 'Echo', { text: 'new', seq: ++seq }, { deadlineMs: 5000 });
    } finally {
      c.close();
    }
  }, 50),
];
const stopTraffic = async () => {
  running = false;
  await Promise.all(traffic);
};

// ---- the steps -----------------------------------------------------------------------

const originalIssuer = readIssuer();
const oldAnchorSha = opensslSha256(readFileSync(state('ca/anchor.pem'), 'utf8'));

async function rotate(t: Test, step: string): Promise<number> {
  const p = weft(t, ['certs', 'rotate', step, '--state-dir', STATE]);
  const x = await p.exited;
  if (x.code !== 0) throw new Error(`weft certs rotate ${step} exited ${x.code}: ${p.stdout()}${p.stderr()}`);
  t.comment(p.stdout().trim());
  return Date.now();
}

async function checkSays(t: Test, re: RegExp): Promise<void> {
  const p = weft(t, ['check', '--state-dir', STATE]);
  await p.exited;
  t.match(p.stdout(), re, 'weft check names the step');
}

t.test('before: /identity fingerprints are what openssl prints', async (t) => {
  await waitFor('some traffic', () => loops.every((l) => l.ok > 3), { timeoutMs: 20_000 });
  const ids = await allIdentities();
  const issuerSha = opensslSha256(originalIssuer.certPem);
  for (const [i, id] of ids.entries()) {
    const p = mesh.pods[i]!;
    t.equal(id.spiffeId, spiffeId(p.namespace, p.serviceAccount), `${p.pod} spiffeId`);
    t.equal(id.leaf.issuerSha256, issuerSha, `${p.pod} issuerSha256 = openssl of STATE/ca/issuer.pem`);
    t.same(id.trustBundle.map((a) => a.sha256), [oldAnchorSha], `${p.pod} bundle = openssl of STATE/ca/anchor.pem`);
    t.ok(Date.parse(id.leaf.notAfter) > Date.parse(id.leaf.notBefore));
  }
  // The leaf the inbound presents, read off a real handshake.
  const web = mesh.pod('web-0');
  const hs = await inboundWith(web, clientLeaf(originalIssuer), originalIssuer.certPem);
  t.equal(hs.status, 200, `a current leaf is accepted (${hs.error ?? ''})`);
  t.equal(opensslSha256(hs.peerPem!), ids[mesh.pods.indexOf(web)]!.leaf.sha256, 'leaf.sha256 = openssl of the certificate the inbound presents');
  await checkSays(t, /√ rotation: no rotation in progress/);
});

t.test('rotate anchor: every sidecar trusts old + new within 5 s; the issuer is unchanged', async (t) => {
  const at = await rotate(t, 'anchor');
  const newAnchorSha = opensslSha256(readFileSync(state('ca/anchor.pem'), 'utf8'));
  t.not(newAnchorSha, oldAnchorSha);
  await waitFor('every bundle to hold both anchors', async () => (await allIdentities()).every((id) => id.trustBundle.length === 2 && id.trustBundle.some((a) => a.sha256 === newAnchorSha) && id.trustBundle.some((a) => a.sha256 === oldAnchorSha)), { timeoutMs: 15_000, intervalMs: 100 });
  const ms = Date.now() - at;
  t.comment(`anchor: rotate → every sidecar's /identity shows both anchors: ${ms} ms`);
  t.ok(ms <= 5000, `within 5 s (${ms} ms)`);
  for (const id of await allIdentities()) t.equal(id.leaf.issuerSha256, opensslSha256(originalIssuer.certPem), 'leaf still from the old issuer');
  t.same(await anchorSeries(client), [oldAnchorSha, newAnchorSha].sort(), 'an expiry series per trusted anchor');
  await checkSays(t, /rotation: bundle has 2 anchors; issuer signed by the old anchor → run `weft certs rotate issuer --state-dir/);
});

t.test('rotate issuer: every sidecar renews from the new issuer within a minute, spread out', async (t) => {
  const at = await rotate(t, 'issuer');
  const newIssuerSha = opensslSha256(readFileSync(state('ca/issuer.pem'), 'utf8'));
  t.not(newIssuerSha, opensslSha256(originalIssuer.certPem));
  const renewedAt = new Map<string, number>();
  await waitFor('every leaf from the new issuer', async () => {
    const ids = await allIdentities();
    ids.forEach((id, i) => {
      if (id.leaf.issuerSha256 === newIssuerSha && !renewedAt.has(mesh.pods[i]!.pod)) renewedAt.set(mesh.pods[i]!.pod, Date.now() - at);
    });
    return renewedAt.size === mesh.pods.length;
  }, { timeoutMs: 75_000, intervalMs: 250 });
  const times = [...renewedAt.values()].sort((a, b) => a - b);
  t.comment(`issuer: rotate → each sidecar's leaf from the new issuer: ${[...renewedAt].map(([p, ms]) => `${p} ${ms} ms`).join(', ')}`);
  t.ok(times[times.length - 1]! <= 65_000, `all within a minute of control noticing (${times[times.length - 1]} ms)`);
  t.ok(times[times.length - 1]! - times[0]! > 0, 'not all at the same instant');
  await checkSays(t, /rotation: bundle has 2 anchors; issuer signed by the new anchor → .*run `weft certs rotate finish --state-dir/);
});

t.test('rotate finish: every sidecar trusts the new anchor alone within 5 s', async (t) => {
  const at = await rotate(t, 'finish');
  const newAnchorSha = opensslSha256(readFileSync(state('ca/anchor.pem'), 'utf8'));
  await waitFor('every bundle to hold the new anchor alone', async () => (await allIdentities()).every((id) => id.trustBundle.length === 1 && id.trustBundle[0]!.sha256 === newAnchorSha), { timeoutMs: 15_000, intervalMs: 100 });
  const ms = Date.now() - at;
  t.comment(`finish: rotate → every sidecar's /identity shows the new anchor alone: ${ms} ms`);
  t.ok(ms <= 5000, `within 5 s (${ms} ms)`);
  t.same(await anchorSeries(client), [newAnchorSha], 'the old anchor\'s expiry series is gone');
  await checkSays(t, /√ rotation: no rotation in progress/);
});

t.test('after finish: the inbound refuses a leaf of the old issuer and accepts one of the new', async (t) => {
  const web = mesh.pod('web-1');
  const old = await inboundWith(web, clientLeaf(originalIssuer), originalIssuer.certPem);
  t.notOk(old.status, `old issuer's leaf: no HTTP response (${old.error ?? 'closed'})`);
  const current = readIssuer();
  const fresh = await inboundWith(web, clientLeaf(current), current.certPem);
  t.equal(fresh.status, 200, `new issuer's leaf: served (${fresh.error ?? ''})`);
  const ids = await allIdentities();
  t.equal(opensslSha256(fresh.peerPem!), ids[mesh.pods.indexOf(web)]!.leaf.sha256, 'the inbound presents the leaf /identity names');
});

t.test('no request failed across the three steps', async (t) => {
  // Some traffic after the last step, then stop.
  const base = loops.map((l) => l.ok);
  await waitFor('traffic after finish', () => loops.every((l, i) => l.ok > base[i]! + 3), { timeoutMs: 20_000 });
  await stopTraffic();
  for (const l of loops) {
    t.comment(`${l.name}: ${l.ok} ok, ${l.failed.length} failed`);
    t.same(l.failed, [], `${l.name}: no failures`);
    t.ok(l.ok > 20, `${l.name}: traffic flowed (${l.ok})`);
  }
});

// After the traffic loops stopped: a pod starting under load gets requests
// before its app listens (503 upstream connection refused), which is start-up
// ordering, not rotation.
t.test('after finish: a new replica joins (control serves from the new issuer) and takes traffic over a new hop', async (t) => {
  writeConfig(dir, 'mesh.yaml', meshYaml(3));
  const pods = () => (JSON.parse(readFileSync(state('local-pods.json'), 'utf8')) as { pods: PodInfo[] }).pods;
  const web2 = await waitFor('web-2 to start', () => pods().find((p) => p.pod === 'web-2'), { timeoutMs: 30_000 });
  await waitFor('web-2 ready', async () => (await httpRequest(`${web2.adminUrl}/ready`, { keepAlive: false })).status === 200, { timeoutMs: 30_000 });
  const id = await identityOf(web2);
  t.equal(id.leaf.issuerSha256, opensslSha256(readFileSync(state('ca/issuer.pem'), 'utf8')), 'its leaf is from the new issuer');
  t.same(id.trustBundle.map((a) => a.sha256), [opensslSha256(readFileSync(state('ca/anchor.pem'), 'utf8'))], 'it trusts the new anchor alone');
  await waitFor('web-2 to answer through the client sidecar', async () => {
    const rs = await Promise.all(Array.from({ length: 6 }, () => meshGet(client.podIP, `http://web.${NS}/who`, { timeoutMs: 3000 })));
    return rs.some((r) => r.status === 200 && r.json<EchoResponse>().pod === 'web-2');
  }, { timeoutMs: 30_000 });
  t.pass('web-2 serves requests from the client');
});

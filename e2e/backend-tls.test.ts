// Issue 8, BackendTLSPolicy end to end: `weft up` with a client pod; the
// backend is an HTTPS server outside the mesh (this test process, a
// certificate for backend.example.test from a test CA) behind a
// selector-less Service with an EndpointSlice. Once a BackendTLSPolicy names
// the CA ConfigMap and the hostname, the client's plain HTTP request is
// originated as TLS by its sidecar; a wrong hostname or CA fails closed with
// 503, and an invalid policy says why in `weft get/describe policies`.
import t from 'tap';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { createTrustAnchor, issueCert } from '../certs/index.js';
import { configDir, docs, echoWorkload, loopbackPrefix, meshGet, service, startMesh, waitFor, weft, writeConfig } from './helpers/mesh.js';

const NS = 'tlsdemo';
const HOST = 'backend.example.test';
const ca = createTrustAnchor({ commonName: 'weft e2e backend CA' });
const otherCa = createTrustAnchor({ commonName: 'an unrelated CA' });
const leaf = issueCert(ca, { dnsNames: [HOST], commonName: HOST });

const prefix = await loopbackPrefix();
const BACKEND_IP = `${prefix}.222.${2 + Math.floor(Math.random() * 200)}`;

const seen: Array<{ url: string; sni: string | false }> = [];
const server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
  seen.push({ url: req.url!, sni: (req.socket as TLSSocket).servername });
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ from: 'https-backend', url: req.url }));
});
await new Promise<void>((r) => server.listen(8443, BACKEND_IP, r));
t.teardown(() => {
  server.closeAllConnections();
  server.close();
});

const indent = (pem: string, n: number) => pem.trim().split('\n').map((l) => ' '.repeat(n) + l).join('\n');
const configMap = (name: string, pem: string) => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: ${NS}
data:
  ca.crt: |
${indent(pem, 4)}
`;
const policy = (o: { name?: string; target?: string; hostname?: string; caRef?: string }) => `apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata:
  name: ${o.name ?? 'ext-tls'}
  namespace: ${NS}
spec:
  targetRefs:
    - { group: "", kind: Service, name: ${o.target ?? 'ext'} }
  validation:
    caCertificateRefs:
      - { group: "", kind: ConfigMap, name: ${o.caRef ?? 'backend-ca'} }
    hostname: ${o.hostname ?? HOST}
`;

const dir = configDir(t, {
  'base.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    `apiVersion: v1
kind: Service
metadata:
  name: ext
  namespace: ${NS}
spec:
  ports:
    - { name: web, port: 443, targetPort: 8443 }
`,
    `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ext-1
  namespace: ${NS}
  labels: { kubernetes.io/service-name: ext }
addressType: IPv4
endpoints:
  - addresses: ["${BACKEND_IP}"]
    conditions: { ready: true }
ports:
  - { name: web, port: 8443, protocol: TCP }
`,
    configMap('backend-ca', ca.certPem),
    configMap('other-ca', otherCa.certPem),
    service({ name: 'echo', namespace: NS, selector: { app: 'echo' } }),
    echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['ext', 'echo'] }),
    echoWorkload({ name: 'echo', namespace: NS, serviceAccount: 'echo' }),
  ),
  'policy.yaml': policy({}),
});

const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const call = (path: string) => meshGet(client.podIP, `http://ext.${NS}:443${path}`, { timeoutMs: 8000 });
const admin = mesh.controlAdmin.replace('http://', '');
const cli = async (tt: typeof t, args: string[]) => {
  const p = weft(tt, [...args, '--control-admin', admin]);
  await p.exited;
  return p.stdout() + p.stderr();
};

t.test('with the CA and hostname the backend is reached over TLS through the mesh', async (t) => {
  await waitFor('the HTTPS backend to answer through the mesh', async () => (await call('/warm')).status === 200, { timeoutMs: 20_000 });
  for (let i = 0; i < 20; i++) {
    const r = await call(`/tls/${i}`);
    t.equal(r.status, 200, String(r.headers['weft-proxy-error'] ?? ''));
    if (i === 0) t.same(JSON.parse(r.body), { from: 'https-backend', url: '/tls/0' });
  }
  t.ok(seen.length >= 20 && seen.every((s) => s.sni === HOST), 'SNI is the policy hostname');
  const out = await cli(t, ['get', 'policies', '-n', NS]);
  t.match(out, /ext-tls\s+BackendTLSPolicy\s+Service\/ext\s+True/);
});

t.test('a wrong hostname fails closed with 503; the sidecar says why', async (t) => {
  writeConfig(dir, 'policy.yaml', policy({ hostname: 'wrong.example.test' }));
  let last = { status: 0, why: '' };
  await waitFor('the wrong hostname to apply', async () => {
    const r = await call('/probe-host');
    return r.status === 503;
  }, { timeoutMs: 20_000 });
  for (let i = 0; i < 5; i++) {
    const r = await call('/wrong-host');
    last = { status: r.status, why: String(r.headers['weft-proxy-error'] ?? '') };
    t.equal(r.status, 503);
  }
  t.match(last.why, /BackendTLSPolicy tlsdemo\/ext-tls: TLS to wrong\.example\.test .*failed/);
  t.notOk(seen.some((s) => s.url === '/wrong-host'), 'the backend never answered the request');
  t.equal(seen.filter((s) => s.sni === 'wrong.example.test').length, 0, 'no request was sent on a connection for the wrong name');
});

t.test('a wrong CA fails closed with 503', async (t) => {
  writeConfig(dir, 'policy.yaml', policy({ caRef: 'other-ca' }));
  let why = '';
  await waitFor('the wrong CA to apply', async () => {
    const r = await call('/probe-ca');
    const w = String(r.headers['weft-proxy-error'] ?? '');
    return r.status === 503 && /ext-tls/.test(w) && !/wrong\.example/.test(w);
  }, { timeoutMs: 20_000 });
  for (let i = 0; i < 5; i++) {
    const r = await call('/wrong-ca');
    why = String(r.headers['weft-proxy-error'] ?? '');
    t.equal(r.status, 503);
  }
  t.match(why, /certificate|issuer/i);
  t.notOk(seen.some((s) => s.url === '/wrong-ca'));
});

t.test('an invalid policy (missing ConfigMap) fails closed and its status says why', async (t) => {
  writeConfig(dir, 'policy.yaml', policy({ caRef: 'no-such-ca' }));
  let why = '';
  await waitFor('the invalid policy to apply', async () => {
    const r = await call('/probe-invalid');
    return r.status === 503 && /not found/.test(String(r.headers['weft-proxy-error'] ?? ''));
  }, { timeoutMs: 20_000 });
  const r = await call('/invalid');
  t.equal(r.status, 503);
  why = String(r.headers['weft-proxy-error'] ?? '');
  t.match(why, /ConfigMap tlsdemo\/no-such-ca not found/);
  t.notOk(seen.some((s) => s.url === '/invalid'));
  const get = await cli(t, ['get', 'policies', '-n', NS]);
  t.match(get, /ext-tls\s+BackendTLSPolicy\s+Service\/ext\s+False/);
  const desc = await cli(t, ['describe', 'policy', 'ext-tls', '-n', NS]);
  t.match(desc, /no-such-ca not found/);
  t.comment(desc.trim().split('\n').filter((l) => /Reason|Message|not found|Status/.test(l)).join('\n'));
});

t.test('a policy on a meshed Service is reported as not applicable and changes nothing', async (t) => {
  writeConfig(dir, 'policy.yaml', docs(policy({}), policy({ name: 'on-meshed', target: 'echo' })));
  await waitFor('the good policy to be back', async () => (await call('/back')).status === 200, { timeoutMs: 20_000 });
  const r = await meshGet(client.podIP, `http://echo.${NS}/plain`, { timeoutMs: 5000 });
  t.equal(r.status, 200, 'meshed traffic keeps using mesh mTLS');
  const desc = await cli(t, ['describe', 'policy', 'on-meshed', '-n', NS]);
  t.comment(desc.trim().split('\n').filter((l) => /Reason|Message|Status|mesh/i.test(l)).join('\n'));
  t.match(desc, /mesh/i, 'status explains the target is in the mesh');
});

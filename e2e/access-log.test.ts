// Access logs end to end, opt-in per workload: the client and web Workloads
// carry the annotation `weft.io/access-log: json`, the other client does
// not. Requests through real sidecars leave one JSON line per request in the
// annotated sidecars' output (the log files of `weft up`): outbound at the
// client with the destination Service, route, backend and endpoint, inbound
// at web with the caller's identity, both with the trace id of the caller's
// traceparent; a request the mesh answers itself carries its
// weft-proxy-error reason. The unannotated sidecar writes none.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configDir, docs, echoWorkload, loopbackPrefix, meshGet, randomLoopback, service, startMesh, waitFor } from './helpers/mesh.js';

const NS = 'logs';
const prefix = await loopbackPrefix();
const annotate = (yaml: string, ann: Record<string, string>) => yaml.replace(/^metadata:\n/m, `metadata:\n  annotations: ${JSON.stringify(ann)}\n`);
const json = { 'weft.io/access-log': 'json' };

const dir = configDir(t, {
  'mesh.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    // A Service whose only endpoint refuses connections: the mesh answers.
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: down\n  namespace: ${NS}\nspec:\n  ports:\n    - { name: http, port: 80, targetPort: 9 }\n`,
    `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: down-1
  namespace: ${NS}
  labels: { kubernetes.io/service-name: down }
addressType: IPv4
endpoints:
  - addresses: ["${prefix}.250.9"]
    conditions: { ready: true }
ports:
  - { name: http, port: 9, protocol: TCP }
`,
    // A Service whose only route matches /only: any other path is the mesh's 404, answered before dispatch.
    service({ name: 'routed', namespace: NS, selector: { app: 'web' } }),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: routed-only, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: routed, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /only } }]
      backendRefs: [{ name: routed, port: 80 }]
`,
    annotate(echoWorkload({ name: 'client', namespace: NS, serviceAccount: 'client', calls: ['web', 'down', 'routed'] }), json),
    annotate(echoWorkload({ name: 'web', namespace: NS, serviceAccount: 'web' }), json),
    echoWorkload({ name: 'quiet', namespace: NS, serviceAccount: 'quiet', calls: ['web', 'guarded'] }),
    // Only the client's ServiceAccount may call guarded: quiet's call is denied at guarded's inbound (403).
    service({ name: 'guarded', namespace: NS, selector: { app: 'guarded' } }),
    annotate(echoWorkload({ name: 'guarded', namespace: NS, serviceAccount: 'guarded' }), json),
    `apiVersion: policy.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: guarded-client-only, namespace: ${NS} }
spec:
  targetRefs:
    - { group: "", kind: Pod, selector: { matchLabels: { app: guarded } } }
  action: ALLOW
  rules:
    - sources: [{ type: ServiceAccount, serviceAccount: { name: client } }]
`,
  ),
});
const mesh = await startMesh(t, dir, { prefix, args: ['--dashboard', 'off'] });
t.teardown(() => mesh.stop());

const logOf = (pod: string) => join(mesh.stateDir, 'logs', `${NS}.${pod}.sidecar.log`);
const accessLines = (pod: string): Array<Record<string, any>> =>
  existsSync(logOf(pod))
    ? readFileSync(logOf(pod), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>)
    : [];
const TRACE = '5e0c63257de34c92bf9efcd03927272e';

t.test('one JSON line per request at each annotated sidecar, with identities, destination and trace id', async (t) => {
  const client = mesh.pod('client-0');
  const web = mesh.pod('web-0');
  const r = await waitFor('web through the mesh', async () => {
    const x = await meshGet(client.podIP, `http://web.${NS}/hello?x=1`, { headers: { traceparent: `00-${TRACE}-a0b1c2d3e4f5a6b7-01` } });
    return x.status === 200 ? x : undefined;
  });
  t.equal(r.status, 200);
  const out = await waitFor('the client sidecar to log the request', () => accessLines('client-0').find((l) => l.traceId === TRACE && l.direction === 'outbound'));
  t.match(out, {
    direction: 'outbound',
    source: `spiffe://cluster.local/ns/${NS}/sa/client`,
    destination: { service: `${NS}/web`, route: '', backend: `${NS}/web`, endpoint: `${web.podIP}:8080`, workload: `${NS}/web` },
    method: 'GET',
    authority: `web.${NS}`,
    path: '/hello?x=1',
    status: 200,
    grpcStatus: '',
    proxyError: '',
    traceId: TRACE,
  });
  t.ok(Date.parse(out.time) > Date.now() - 120_000, `time is an ISO timestamp: ${out.time}`);
  t.ok(out.durationMs > 0 && out.upstreamMs > 0 && out.upstreamMs <= out.durationMs, `durations ${out.durationMs} ≥ ${out.upstreamMs} > 0`);
  t.ok(out.bytesOut > 0, `bytes out ${out.bytesOut}`);
  t.equal(out.bytesIn, 0);
  const inbound = await waitFor('the web sidecar to log it', () => accessLines('web-0').find((l) => l.traceId === TRACE));
  const post = await meshGet(client.podIP, `http://web.${NS}/upload`, { method: 'POST', body: 'abcdefghij', headers: { 'content-type': 'text/plain' } });
  t.equal(post.status, 200);
  const up = await waitFor('the POST in the client log', () => accessLines('client-0').find((l) => l.path === '/upload'));
  t.equal(up.method, 'POST');
  t.equal(up.bytesIn, 10, 'the request body');
  t.match(inbound, { direction: 'inbound', source: `spiffe://cluster.local/ns/${NS}/sa/client`, destination: { workload: `${NS}/web`, endpoint: `${web.podIP}:8080` }, method: 'GET', path: '/hello?x=1', status: 200 });
});

t.test('a request the mesh answers itself logs its weft-proxy-error reason', async (t) => {
  const client = mesh.pod('client-0');
  const r = await meshGet(client.podIP, `http://down.${NS}/`);
  t.ok(r.status >= 500, `status ${r.status}`);
  const reason = String(r.headers['weft-proxy-error'] ?? '');
  t.not(reason, '', 'the answer says why');
  const line = await waitFor('the failed request in the client log', () => accessLines('client-0').find((l) => l.destination?.service === `${NS}/down`));
  t.equal(line.status, r.status);
  t.equal(line.proxyError, reason);
  t.equal(line.destination.endpoint, `${prefix}.250.9:9`);
});

t.test('an answer the mesh makes before dispatch (no route matches: 404) is logged too, with its reason and trace id', async (t) => {
  const client = mesh.pod('client-0');
  const trace = '7a0c63257de34c92bf9efcd03927272f';
  const ok = await waitFor('routed through the mesh', async () => {
    const x = await meshGet(client.podIP, `http://routed.${NS}/only`);
    return x.status === 200 ? x : undefined;
  });
  t.equal(ok.status, 200);
  const r = await meshGet(client.podIP, `http://routed.${NS}/elsewhere?q=1`, { headers: { traceparent: `00-${trace}-a0b1c2d3e4f5a6b7-01` } });
  t.equal(r.status, 404);
  const reason = String(r.headers['weft-proxy-error'] ?? '');
  t.not(reason, '');
  const line = await waitFor('the 404 in the client log', () => accessLines('client-0').find((l) => l.path === '/elsewhere?q=1'));
  t.match(line, { direction: 'outbound', destination: { service: `${NS}/routed`, endpoint: '' }, status: 404, proxyError: reason, traceId: trace, upstreamMs: 0 });
});

t.test('a call to a host outside the mesh is logged as external, with the address it went to', async (t) => {
  const host = randomLoopback();
  const outside = http.createServer((_q, s) => s.end('outside'));
  await new Promise<void>((r) => outside.listen(0, host, r));
  t.teardown(() => new Promise<void>((r) => outside.close(() => r())));
  const port = (outside.address() as AddressInfo).port;
  const r = await meshGet(mesh.pod('client-0').podIP, `http://${host}:${port}/ext`);
  t.equal(r.body, 'outside');
  const line = await waitFor('the external call in the client log', () => accessLines('client-0').find((l) => l.path === '/ext'));
  t.match(line, { direction: 'outbound', destination: { service: 'external', endpoint: `${host}:${port}`, workload: '' }, status: 200, bytesOut: Number });
});

t.test('a workload without the annotation writes no access log', async (t) => {
  const quiet = mesh.pod('quiet-0');
  const r = await meshGet(quiet.podIP, `http://web.${NS}/from-quiet`);
  t.equal(r.status, 200);
  // The web sidecar logs it (inbound), so the request went through; quiet's own log has no line.
  await waitFor('the web sidecar to log the quiet request', () => accessLines('web-0').find((l) => l.path === '/from-quiet'));
  t.same(accessLines('quiet-0'), []);
});

t.test('a request denied by authorization is logged at the inbound that denied it (403, its reason, the caller)', async (t) => {
  const quiet = mesh.pod('quiet-0');
  const r = await waitFor('the policy to deny quiet', async () => {
    const x = await meshGet(quiet.podIP, `http://guarded.${NS}/denied`);
    return x.status === 403 ? x : undefined;
  });
  const reason = String(r.headers['weft-proxy-error'] ?? '');
  t.not(reason, '', 'the answer says why');
  const line = await waitFor('the denial in the guarded log', () => accessLines('guarded-0').find((l) => l.path === '/denied' && l.status === 403));
  t.match(line, { direction: 'inbound', source: `spiffe://cluster.local/ns/${NS}/sa/quiet`, status: 403, proxyError: reason, destination: { workload: `${NS}/guarded` } });
});

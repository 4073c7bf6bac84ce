// Gateway API v1.1 mesh conformance, the two scenarios that need real
// ClusterIP interception: MeshFrontendHostname (conformance/tests/
// mesh-frontend-hostname.go: the Service parent is chosen by the original
// destination IP, never by the Host header) and MeshFrontend
// (mesh-frontend.go: a route on a Service applies to its frontend, not to
// traffic sent straight to a pod IP). Same manifests, requests and expected
// responses as upstream, run in the network-namespace test bed: the client is
// the echo-v1 pod's app calling plain http://echo-v2 with no proxy setting.
// Each case must pass 3 times in a row within 10 s (like AwaitConvergence).
import t, { type Test } from 'tap';
import { Bed, APP_UID } from './netns/bed.js';
import { startControl, startPod } from './netns/mesh.js';

const NS = 'gateway-conformance-mesh';
t.setTimeout(240_000);
const bed = Bed.create();
t.teardown(() => bed.destroy());

const cip = { echo: bed.clusterIp(), v1: bed.clusterIp(), v2: bed.clusterIp() };
for (const [name, addr] of [['echo', cip.echo], ['echo-v1', cip.v1], ['echo-v2', cip.v2]] as const) {
  // The pods live in NS: the short name resolves like the cluster DNS search path would.
  bed.addHosts(addr, [name, `${name}.${NS}`, `${name}.${NS}.svc`, `${name}.${NS}.svc.cluster.local`]);
}

// conformance/mesh/manifests.yaml (the ports the echo app serves here: http and http-alt).
const service = (name: string, clusterIP: string, selector: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${NS} }
spec:
  clusterIP: ${clusterIP}
  selector: ${selector}
  ports:
    - { name: http, port: 80, appProtocol: http, targetPort: 8080 }
    - { name: http-alt, port: 8080, appProtocol: http }
`;
// conformance/tests/mesh-frontend.yaml, verbatim in substance.
const meshFrontend = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mesh-split-v1
  namespace: ${NS}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: echo-v2
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set:
        - name: X-Header-Set
          value: set
    backendRefs:
    - name: echo-v2
      port: 80
`;

const control = await startControl(bed, {
  'ns.yaml': `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS}, labels: { gateway-conformance: mesh } }\n`,
  'services.yaml': [
    service('echo', cip.echo, '{ app: echo }'),
    service('echo-v1', cip.v1, '{ app: echo, version: v1 }'),
    service('echo-v2', cip.v2, '{ app: echo, version: v2 }'),
  ].join('---\n'),
  'mesh-frontend.yaml': meshFrontend,
});
const echoApp = ['node', 'examples/echo/echo.mjs'];
const [v1, v2] = await Promise.all([
  startPod(bed, control, 'echo-v1', { namespace: NS, serviceAccount: 'default', labels: { app: 'echo', version: 'v1' }, appPorts: [8080], app: echoApp, appReady: /listening/ }),
  startPod(bed, control, 'echo-v2', { namespace: NS, serviceAccount: 'default', labels: { app: 'echo', version: 'v2' }, appPorts: [8080], app: echoApp, appReady: /listening/ }),
]);

interface Expect {
  status: number;
  headers?: Record<string, string>;
  absentHeaders?: string[];
  backendPrefix: string;
}

/** One request as upstream's client makes it, from the echo-v1 pod's app. */
async function once(url: string, host: string | undefined, want: Expect): Promise<string | undefined> {
  const args = ['curl', '-sS', '-i', '--max-time', '3', ...(host ? ['-H', `Host: ${host}`] : []), url];
  const r = await bed.run(v1!.pod, args, { uid: APP_UID });
  if (r.code !== 0) return `curl failed (${r.code}): ${r.stderr.trim()}`;
  const split = r.stdout.indexOf('\r\n\r\n');
  const lines = r.stdout.slice(0, split).split('\r\n');
  const body = r.stdout.slice(split + 4);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  if (status !== want.status) return `status ${status}, want ${want.status}`;
  for (const [k, v] of Object.entries(want.headers ?? {})) {
    if (headers.get(k.toLowerCase()) !== v) return `header ${k}: ${headers.get(k.toLowerCase())}, want ${v}`;
  }
  for (const k of want.absentHeaders ?? []) if (headers.has(k.toLowerCase())) return `header ${k} should be absent`;
  const pod = (JSON.parse(body) as { pod: string }).pod;
  if (!pod.startsWith(want.backendPrefix)) return `backend ${pod}, want prefix ${want.backendPrefix}`;
  return undefined;
}

/** Passes once the case has succeeded 3 times in a row; fails after 10 s. */
async function converge(t: Test, name: string, url: string, host: string | undefined, want: Expect) {
  const t0 = Date.now();
  let streak = 0;
  let last: string | undefined;
  while (Date.now() - t0 < 10_000) {
    last = await once(url, host, want);
    streak = last ? 0 : streak + 1;
    if (streak === 3) break;
    if (last) await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(streak, 3, `${name}${last ? `: ${last}` : ''}`);
}

t.test('MeshFrontendHostname', async (t) => {
  await converge(t, 'Send to service with wrong hostname', 'http://echo-v2', 'echo-v1', {
    status: 200,
    headers: { 'X-Header-Set': 'set' },
    backendPrefix: 'echo-v2',
  });
  await converge(t, 'Send to other service with matching hostname', 'http://echo-v1', 'echo-v2', {
    status: 200,
    absentHeaders: ['X-Header-Set'],
    backendPrefix: 'echo-v1',
  });
});

t.test('MeshFrontend', async (t) => {
  await converge(t, 'Send to service', 'http://echo-v2', undefined, {
    status: 200,
    headers: { 'X-Header-Set': 'set' },
    backendPrefix: 'echo-v2',
  });
  await converge(t, 'Send to pod IP', `http://${v2!.pod.ip}:8080`, undefined, {
    status: 200,
    absentHeaders: ['X-Header-Set'],
    backendPrefix: 'echo-v2',
  });
});

// Paths are normalised before matching (issue 16 item 3): with a rule
// `PathPrefix /public → svc-a` and a default rule → svc-b, `/public/../admin`
// and `/public/%2e%2e/admin` match the default rule and svc-b's app sees
// `/admin`, over HTTP/1.1 and HTTP/2; a path climbing above the root is 400.
// A real mesh (weft up), raw request paths (no client-side URL cleanup).
import t from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import { join } from 'node:path';
import { REPO, configDir, docs, echoWorkload, service, startMesh, waitFor, type EchoResponse } from './helpers/mesh.js';

/** The echo app, but speaking HTTP/1.1 and h2c on its port (so the HTTP/2 cases reach the app in HTTP/2). */
const anyProtocolEcho = (name: string, app: string) =>
  echoWorkload({ name, namespace: NS, labels: { app } }).replace(/command: \[node, [^\]]*\]/, `command: [node, ${JSON.stringify(join(REPO, 'e2e', 'helpers', 'echo-h1-h2c.mjs'))}]`);

const NS = 'pathdemo';
const route = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: ${NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /public } }]
      backendRefs: [{ name: svc-a, port: 80 }]
    - backendRefs: [{ name: svc-b, port: 80 }]
`;

const dir = configDir(t, {
  'services.yaml': docs(
    `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    service({ name: 'web', namespace: NS, selector: { app: 'web' } }),
    service({ name: 'svc-a', namespace: NS, selector: { app: 'a' } }),
    service({ name: 'svc-b', namespace: NS, selector: { app: 'b' } }),
  ),
  'workloads.yaml': docs(
    echoWorkload({ name: 'client', namespace: NS, calls: ['web'] }),
    anyProtocolEcho('svc-a', 'a'),
    anyProtocolEcho('svc-b', 'b'),
  ),
  'route.yaml': route,
});

const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');

interface Answer { status: number; workload?: string; path?: string; proxyError?: string }

/** HTTP/1.1 in origin form with a Host header; the path goes on the wire exactly as given. */
function h1(path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: client.podIP, port: 7001, path, headers: { host: `web.${NS}` }, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(answer(res.statusCode ?? 0, body, res.headers['weft-proxy-error'])));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** HTTP/2 with prior knowledge; :path exactly as given. */
function h2(path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://${client.podIP}:7001`);
    s.on('error', reject);
    const st = s.request({ ':method': 'GET', ':path': path, ':authority': `web.${NS}` });
    let status = 0;
    let proxyError: string | undefined;
    let body = '';
    st.on('response', (h) => {
      status = Number(h[':status']);
      proxyError = h['weft-proxy-error'] as string | undefined;
    });
    st.setEncoding('utf8');
    st.on('data', (c: string) => (body += c));
    st.on('end', () => {
      s.close();
      resolve(answer(status, body, proxyError));
    });
    st.on('error', (e) => {
      s.close();
      reject(e);
    });
    st.end();
  });
}

function answer(status: number, body: string, proxyError: unknown): Answer {
  const a: Answer = { status, ...(typeof proxyError === 'string' ? { proxyError } : {}) };
  if (status === 200) {
    const j = JSON.parse(body) as EchoResponse;
    a.workload = j.workload;
    a.path = j.path;
  }
  return a;
}

// Endpoints arrive as sidecars register: wait until both rules serve.
await waitFor('both backends to serve', async () => (await h1('/public/x')).workload === 'svc-a' && (await h1('/other')).workload === 'svc-b', { timeoutMs: 30_000 });

const cases: Array<{ path: string; workload?: string; seen?: string; status?: number }> = [
  { path: '/public/x', workload: 'svc-a', seen: '/public/x' },
  { path: '/public/../admin', workload: 'svc-b', seen: '/admin' },
  { path: '/public/%2e%2e/admin', workload: 'svc-b', seen: '/admin' },
  { path: '/public/%2E%2E/admin', workload: 'svc-b', seen: '/admin' },
  { path: '/public/./x', workload: 'svc-a', seen: '/public/x' },
  { path: '/x/../public/y', workload: 'svc-a', seen: '/public/y' },
  { path: '/%70ublic/y', workload: 'svc-a', seen: '/public/y' },
  { path: '/public%2F..%2Fadmin', workload: 'svc-b', seen: '/public%2F..%2Fadmin' },
  { path: '/..', status: 400 },
  { path: '/public/../../admin', status: 400 },
];

for (const [proto, send] of [['HTTP/1.1', h1], ['HTTP/2', h2]] as const) {
  t.test(`${proto}: the rule a normalised path matches, and the app sees the normalised path`, async (t) => {
    for (const c of cases) {
      const r = await send(c.path);
      if (c.status) {
        t.equal(r.status, c.status, `${c.path} → ${c.status}`);
        continue;
      }
      if (r.status !== 200 && r.proxyError) t.comment(`${proto} ${c.path}: ${r.status} weft-proxy-error: ${r.proxyError}`);
      t.same({ status: r.status, workload: r.workload, path: r.path }, { status: 200, workload: c.workload, path: c.seen }, `${c.path} → ${c.workload} sees ${c.seen}`);
    }
  });
}

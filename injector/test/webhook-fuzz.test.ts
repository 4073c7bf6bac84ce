// Fuzzing the admission webhook over real HTTPS: random AdmissionReview
// bodies (mutations of real reviews, random JSON, random bytes) get a
// well-formed AdmissionReview answer or a 4xx, never a 5xx or a crash; a
// patch, when there is one, is valid JSON Patch.
import t from 'tap';
import fc from 'fast-check';
import https from 'node:https';
import { createTrustAnchor, createIssuer, issueCert } from '../../certs/index.js';
import { startInjector } from '../index.js';
import { deploymentPod, review } from './fixtures/reviews.js';

const runs = Number(process.env.WEFT_FUZZ_RUNS ?? 200);
const anchor = createTrustAnchor();
const issuer = createIssuer(anchor);
const serving = issueCert(issuer, { dnsNames: ['weft-injector.weft-system.svc'], ipAddresses: ['127.0.0.1'] });
const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: anchor.certPem, servername: 'weft-injector.weft-system.svc' });

function post(port: number, path: string, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json' }, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

type Path = Array<string | number>;
function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}
function setAt(doc: unknown, p: Path, value: unknown, del: boolean): unknown {
  if (p.length === 0) return value;
  const root = structuredClone(doc) as Record<string | number, unknown>;
  let cur = root;
  for (const k of p.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = p[p.length - 1]!;
  if (del) delete cur[last];
  else cur[last] = value;
  return root;
}

const reviews = [review(deploymentPod()), review(deploymentPod({ initContainers: true, annotations: { 'config.weft.io/request-head-timeout': '5s' } }))];
const value = fc.oneof(fc.anything({ maxDepth: 3 }), fc.constantFrom(null, '', 0, -1, [], {}, 'x'.repeat(10_000), 'enabled', 'disabled', 'CREATE', 'Pod'));
const mutated = fc.tuple(fc.constantFrom(...reviews), fc.array(fc.tuple(fc.nat(), value, fc.boolean()), { minLength: 1, maxLength: 4 })).map(([r, ms]) => {
  let d: unknown = r;
  for (const [n, v, del] of ms) {
    const ps = paths(d);
    d = setAt(d, ps[n % ps.length]!, v, del);
  }
  return Buffer.from(JSON.stringify(d) ?? 'null');
});
const body = fc.oneof(mutated, mutated, fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))), fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)));

t.test('random AdmissionReview bodies: a well-formed answer or a 4xx, never a crash', async (t) => {
  const srv = await startInjector({ host: '127.0.0.1', port: 0, certPem: serving.certPem + issuer.certPem, keyPem: serving.keyPem, log: () => {} });
  t.teardown(() => {
    agent.destroy();
    return srv.close();
  });
  let answered = 0;
  await fc.assert(
    fc.asyncProperty(body, fc.constantFrom('/mutate', '/mutate-pod-opt-in'), async (b, path) => {
      const r = await post(srv.port, path, b);
      if (r.status >= 400 && r.status < 500) return true;
      if (r.status !== 200) return false;
      const j = JSON.parse(r.text) as { apiVersion: string; kind: string; response: { uid: unknown; allowed: unknown; patch?: string; patchType?: string } };
      if (j.apiVersion !== 'admission.k8s.io/v1' || j.kind !== 'AdmissionReview') return false;
      if (typeof j.response?.uid !== 'string' || j.response.allowed !== true) return false;
      if (j.response.patch !== undefined) {
        const ops = JSON.parse(Buffer.from(j.response.patch, 'base64').toString('utf8')) as Array<{ op: string; path: string }>;
        if (!Array.isArray(ops) || j.response.patchType !== 'JSONPatch' || !ops.every((o) => typeof o.op === 'string' && typeof o.path === 'string')) return false;
      }
      answered++;
      return true;
    }),
    { seed: 16, numRuns: runs },
  );
  t.ok(answered > 0, `${answered} answered with an AdmissionReview`);
  const ok = await post(srv.port, '/mutate', Buffer.from(JSON.stringify(reviews[0])));
  t.equal(ok.status, 200, 'still serving');
});

// Probes in strict mode: the app's HTTP, TCP and gRPC probes become HTTP
// GETs on the sidecar's admin port; the sidecar gets the originals (env
// WEFT_APP_PROBES) and the pod keeps them in an annotation.
import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { buildPatch, rewriteProbes, type Container, type PodLike } from '../index.js';
import { parseAppProbes } from '../../api/index.js';
import { deploymentPod } from './fixtures/reviews.js';

const en = { 'weft.io/inject': 'enabled' };

const web = (probes: Partial<Record<'livenessProbe' | 'readinessProbe' | 'startupProbe', unknown>>): Container =>
  ({ name: 'web', image: 'web:1', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'grpc', containerPort: 9090 }], ...probes }) as Container;

t.test('rewrite table: each probe kind, its handler on the admin port, timing kept', async (t) => {
  const cases: Array<{ name: string; probe: Record<string, unknown>; want?: unknown; warn?: RegExp }> = [
    { name: 'HTTP by number', probe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 3 }, want: { kind: 'http', port: 8080, path: '/healthz', scheme: 'HTTP' } },
    { name: 'HTTP by port name, HTTPS, headers, host', probe: { httpGet: { path: 'ready?x=1', port: 'http', scheme: 'HTTPS', host: 'web.local', httpHeaders: [{ name: 'X-Probe', value: 'k' }] } }, want: { kind: 'http', port: 8080, path: '/ready?x=1', scheme: 'HTTPS', host: 'web.local', headers: [{ name: 'X-Probe', value: 'k' }] } },
    { name: 'TCP', probe: { tcpSocket: { port: 'http' }, failureThreshold: 7 }, want: { kind: 'tcp', port: 8080 } },
    { name: 'gRPC with a service', probe: { grpc: { port: 9090, service: 'web.v1' } }, want: { kind: 'grpc', port: 9090, service: 'web.v1' } },
    { name: 'exec: left alone', probe: { exec: { command: ['true'] } } },
    { name: 'unknown port name: left alone, warned', probe: { httpGet: { path: '/', port: 'admin' } }, warn: /spec\.containers\[0\]\.readinessProbe\.httpGet\.port: "admin" is not a port of the container/ },
    { name: 'already on the admin port: left alone', probe: { httpGet: { path: '/ready', port: 7090 } } },
  ];
  for (const c of cases) {
    const r = rewriteProbes([web({ readinessProbe: c.probe })]);
    if (c.want === undefined) {
      t.same(r.containers, [], `${c.name}: no rewrite`);
      t.same(r.table, {}, `${c.name}: nothing for the sidecar`);
      if (c.warn) t.match(r.warnings.join('\n'), c.warn, `${c.name}: warning`);
      continue;
    }
    t.same(r.table, { '/app-probe/web/readyz': c.want }, `${c.name}: what the sidecar forwards`);
    const rewritten = r.containers[0]!.probe;
    t.same(rewritten.httpGet, { path: '/app-probe/web/readyz', port: 7090, scheme: 'HTTP' }, `${c.name}: the kubelet probes the admin port`);
    for (const k of ['periodSeconds', 'failureThreshold']) if (k in c.probe) t.equal(rewritten[k], c.probe[k], `${c.name}: ${k} kept`);
    t.notOk('tcpSocket' in rewritten || 'grpc' in rewritten, `${c.name}: one handler only`);
    t.same(r.original, { web: { readinessProbe: c.probe } }, `${c.name}: original kept`);
    t.ok(parseAppProbes(JSON.stringify(r.table)).ok, `${c.name}: the table parses on the sidecar side`);
  }
});

t.test('the injected pod: probes rewritten, WEFT_APP_PROBES on the proxy, originals in weft.io/app-probes', async (t) => {
  for (const native of [true, false]) {
    const pod = deploymentPod() as PodLike;
    const c = pod.spec!.containers[0]!;
    c.livenessProbe = { httpGet: { path: '/live', port: 8080 }, periodSeconds: 10 } as never;
    c.readinessProbe = { tcpSocket: { port: 8080 } } as never;
    c.startupProbe = { grpc: { port: 8080 } } as never;
    const r = buildPatch(pod, en, { nativeSidecar: native });
    if (!r.inject) throw new Error(r.reason);
    const out = jsonpatch.applyPatch(structuredClone(pod), r.ops as jsonpatch.Operation[], true, false).newDocument as PodLike;
    const app = out.spec!.containers.find((x) => x.name === 'web')!;
    const mode = native ? 'native' : 'legacy';
    t.same((app.livenessProbe as { httpGet: unknown }).httpGet, { path: '/app-probe/web/livez', port: 7090, scheme: 'HTTP' }, `${mode}: liveness`);
    t.equal((app.livenessProbe as { periodSeconds: number }).periodSeconds, 10, `${mode}: period kept`);
    t.same((app.readinessProbe as { httpGet: unknown }).httpGet, { path: '/app-probe/web/readyz', port: 7090, scheme: 'HTTP' }, `${mode}: readiness`);
    t.same((app.startupProbe as { httpGet: unknown }).httpGet, { path: '/app-probe/web/startupz', port: 7090, scheme: 'HTTP' }, `${mode}: startup`);
    const proxy = [...(out.spec!.initContainers ?? []), ...out.spec!.containers].find((x) => x.name === 'weft-proxy')!;
    const env = (proxy.env ?? []).find((e) => e.name === 'WEFT_APP_PROBES');
    t.same(JSON.parse(env!.value!), {
      '/app-probe/web/livez': { kind: 'http', port: 8080, path: '/live', scheme: 'HTTP' },
      '/app-probe/web/readyz': { kind: 'tcp', port: 8080 },
      '/app-probe/web/startupz': { kind: 'grpc', port: 8080 },
    }, `${mode}: the sidecar learns the originals`);
    t.same(JSON.parse(out.metadata!.annotations!['weft.io/app-probes']!), {
      web: { livenessProbe: { httpGet: { path: '/live', port: 8080 }, periodSeconds: 10 }, readinessProbe: { tcpSocket: { port: 8080 } }, startupProbe: { grpc: { port: 8080 } } },
    }, `${mode}: originals in the annotation`);
    t.same((proxy.startupProbe ?? proxy.readinessProbe)?.httpGet, { path: '/ready', port: 7090 }, `${mode}: the proxy's own probe is untouched`);
  }
});

t.test('config.weft.io/rewrite-probes: "false" leaves the probes as they are', async (t) => {
  const pod = deploymentPod({ annotations: { 'config.weft.io/rewrite-probes': 'false' } }) as PodLike;
  pod.spec!.containers[0]!.readinessProbe = { httpGet: { path: '/r', port: 8080 } } as never;
  const r = buildPatch(pod, en);
  if (!r.inject) throw new Error(r.reason);
  const out = jsonpatch.applyPatch(structuredClone(pod), r.ops as jsonpatch.Operation[], true, false).newDocument as PodLike;
  t.same(out.spec!.containers[0]!.readinessProbe, { httpGet: { path: '/r', port: 8080 } });
  t.notOk(out.metadata!.annotations!['weft.io/app-probes']);
  t.same(r.warnings, []);
});

t.test('WEFT_APP_PROBES: bad input is refused naming the entry and field', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['nope', /WEFT_APP_PROBES: not JSON/],
    ['[]', /must be an object/],
    ['{"/other":{"kind":"tcp","port":1}}', /"\/other"\]: the path must start with \/app-probe\//],
    ['{"/app-probe/a/livez":{"kind":"tcp","port":0}}', /\.port: must be a port/],
    ['{"/app-probe/a/livez":{"kind":"http","port":80,"path":"x","scheme":"HTTP"}}', /\.path: must start with "\/"/],
    ['{"/app-probe/a/livez":{"kind":"exec","port":80}}', /\.kind: must be http, tcp or grpc/],
  ];
  for (const [json, re] of bad) {
    const r = parseAppProbes(json);
    t.equal(r.ok, false, json);
    if (!r.ok) t.match(r.error, re, json);
  }
});

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse } from 'yaml';
import { Pod } from 'kubernetes-models/v1';
import { Deployment, StatefulSet, DaemonSet } from 'kubernetes-models/apps/v1';
import { Job, CronJob } from 'kubernetes-models/batch/v1';
import { injectYaml } from '../index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const podTemplate = (app: string, extra: Record<string, unknown> = {}) => ({
  metadata: { labels: { app }, ...extra },
  spec: { serviceAccountName: app, containers: [{ name: app, image: `example/${app}:1`, ports: [{ containerPort: 8080 }] }] },
});

const STREAM = `# the shop
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template: ${JSON.stringify(podTemplate('web'))}
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]   # kept as written
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: shop }
spec:
  serviceName: db
  selector: { matchLabels: { app: db } }
  template: ${JSON.stringify(podTemplate('db'))}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent, namespace: shop }
spec:
  selector: { matchLabels: { app: agent } }
  template: ${JSON.stringify({ ...podTemplate('agent'), spec: { ...podTemplate('agent').spec, hostNetwork: true } })}
---
apiVersion: batch/v1
kind: Job
metadata: { name: migrate, namespace: shop }
spec:
  template: ${JSON.stringify({ ...podTemplate('migrate'), spec: { ...podTemplate('migrate').spec, restartPolicy: 'Never' } })}
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: report, namespace: shop }
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template: ${JSON.stringify({ ...podTemplate('report'), spec: { ...podTemplate('report').spec, restartPolicy: 'OnFailure' } })}
---
apiVersion: v1
kind: Pod
metadata: { name: debug, namespace: shop, annotations: { weft.io/inject: disabled } }
spec: { containers: [{ name: sh, image: busybox }] }
---
apiVersion: v1
kind: Pod
metadata: { name: one, namespace: shop }
spec: { containers: [{ name: sh, image: busybox }] }
`;

t.test('injects workloads, passes the rest through, round-trips through YAML', async (t) => {
  const { yaml, report } = injectYaml(STREAM);
  t.same(report.results.map((r) => [r.resource, r.injected]), [
    ['deployment/web', true], ['statefulset/db', true], ['daemonset/agent', false], ['job/migrate', true], ['cronjob/report', true], ['pod/debug', false], ['pod/one', true],
  ]);
  t.match(report.results[2]?.reason, /hostNetwork/);
  t.match(report.results[5]?.reason, /opts out/);
  const docs = parseAllDocuments(yaml);
  if (!Array.isArray(docs)) throw new Error('no docs');
  t.equal(docs.length, 8);
  for (const d of docs) t.same(d.errors, []);
  const objs = docs.map((d) => d.toJS());
  t.match(yaml, /# kept as written/, 'untouched documents keep their text and comments');
  const tmpl = (o: Record<string, any>) => (o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template : o.kind === 'Pod' ? o : o.spec.template); // eslint-disable-line @typescript-eslint/no-explicit-any
  const models: Record<string, new (o: any) => { validate(): void }> = { Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod }; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const o of objs) {
    if (o.kind === 'Service') continue;
    t.doesNotThrow(() => new models[o.kind]!(o).validate(), `${o.kind}/${o.metadata.name} still valid`);
    const p = tmpl(o);
    const injected = p.metadata?.annotations?.['weft.io/injected'] !== undefined;
    const expect = !['agent', 'debug'].includes(o.metadata.name);
    t.equal(injected, expect, `${o.kind}/${o.metadata.name} injected=${expect}`);
    if (expect) t.same(p.spec.initContainers.map((c: { name: string }) => c.name), ['weft-init', 'weft-proxy']);
  }
  // Injecting the output again changes nothing.
  const again = injectYaml(yaml);
  t.equal(again.yaml, yaml, 'idempotent');
  t.ok(again.report.results.every((r) => !r.injected));
});

t.test('empty and broken streams', async (t) => {
  t.equal(injectYaml('').yaml, '');
  t.throws(() => injectYaml('a: [1,\nb: }'), /document 1/);
});

t.test('weft inject -f - (CLI) over stdin', async (t) => {
  const r = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), 'inject', '-f', '-'], { input: STREAM, encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /deployment\/web injected/);
  t.match(r.stderr, /daemonset\/agent skipped: pod uses hostNetwork/);
  const docs = r.stdout.split(/^---$/m).map((d) => parse(d));
  t.equal(docs.length, 8);
  t.equal(docs[0].spec.template.spec.initContainers[1].restartPolicy, 'Always');
  const legacy = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), 'inject', '--legacy-sidecar', '-f', '-'], { input: STREAM, encoding: 'utf8', timeout: 30_000 });
  t.equal(legacy.status, 0);
  const d0 = parse(legacy.stdout.split(/^---$/m)[0] ?? '');
  t.equal(d0.spec.template.spec.containers[0].name, 'weft-proxy');
  const bad = spawnSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), 'inject'], { encoding: 'utf8', timeout: 30_000 });
  t.equal(bad.status, 2);
  t.match(bad.stderr, /-f FILE/);
});

t.test('kubectl accepts weft inject output (YAML 1.1 strings stay strings)', async (t) => {
  const { FakeKubeApiServer } = await import('../../control/test/helpers/kube-apiserver.js');
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'weft-inject-k-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const api = new FakeKubeApiServer(`127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`);
  await api.start();
  t.teardown(() => api.close());
  // "on" and "y" are booleans to kubectl's YAML 1.1 reader unless quoted.
  const { yaml } = injectYaml(STREAM.replace("kind: Deployment\nmetadata:\n  name: web\n  namespace: shop", "kind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  labels: { feature: \"on\", short: \"y\" }"));
  t.match(yaml, /feature: "on"/);
  const k = await api.kubectl(join(dir, 'kubeconfig'), ['apply', '--dry-run=client', '--validate=false', '-f', '-'], yaml);
  t.equal(k.code, 0, k.stderr);
  t.equal(k.stdout.trim().split('\n').length, 8, 'every document accepted');
});

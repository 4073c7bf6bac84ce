import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assignIndexes, isPodIpPrefix, loadWorkloads, parseWorkload, planPods, podsOf, sameSpec, type LocalWorkload } from '../up-workloads.js';

const base = { apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'face', namespace: 'faces' } };

t.test('a valid Workload gets its defaults', async (t) => {
  const r = parseWorkload({ ...base, spec: { command: ['node', 'face.mjs'], calls: ['smiley', 'other/color'], env: { PORT: 8080 } } }, 'w.yaml');
  t.same(r.errors, []);
  t.match(r.workload, {
    namespace: 'faces',
    name: 'face',
    serviceAccount: 'default',
    replicas: 1,
    ports: [],
    labels: {},
    env: { PORT: '8080' },
    calls: ['faces/smiley', 'other/color'],
    strict: false,
    source: 'w.yaml',
  });
});

t.test('invalid Workloads name file, resource and field', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{}, 'w.yaml: Workload faces/face: spec: is required'],
    [{ command: [] }, 'w.yaml: Workload faces/face: spec.command: must be a non-empty list of strings'],
    [{ command: ['x'], replicas: -1 }, 'w.yaml: Workload faces/face: spec.replicas: must be an integer from 0 to 250'],
    [{ command: ['x'], ports: [7001] }, 'w.yaml: Workload faces/face: spec.ports: 7001 belong to the sidecar'],
    [{ command: ['x'], ports: ['http'] }, 'w.yaml: Workload faces/face: spec.ports: must be a list of port numbers (1-65535)'],
    [{ command: ['x'], env: { 'A-B': '1' } }, 'w.yaml: Workload faces/face: spec.env.A-B: is not a valid variable name'],
    [{ command: ['x'], labels: { app: { x: 1 } } }, 'w.yaml: Workload faces/face: spec.labels.app: must be a string'],
    [{ command: ['x'], serviceAccount: 'Bad_SA' }, 'w.yaml: Workload faces/face: spec.serviceAccount: must be a DNS subdomain'],
    [{ command: ['x'], calls: ['a/b/c'] }, 'w.yaml: Workload faces/face: spec.calls: must be a list of Service names ("name" or "namespace/name")'],
  ];
  for (const [spec, want] of cases) {
    const r = parseWorkload({ ...base, ...(Object.keys(spec).length ? { spec } : {}) }, 'w.yaml');
    t.equal(r.workload, undefined, want);
    t.same(r.errors, [want]);
  }
  t.same(parseWorkload({ ...base, metadata: { name: 'Face' }, spec: { command: ['x'] } }, 'w.yaml').errors, [
    'w.yaml: Workload default/Face: metadata.name: must be a DNS label (lower-case letters, digits, "-")',
  ]);
});

t.test('pods get stable loopback IPs, sorted by namespace and name', async (t) => {
  const w = (namespace: string, name: string, replicas: number) => ({ namespace, name, replicas }) as LocalWorkload;
  const pods = planPods([w('b', 'x', 1), w('a', 'z', 2), w('a', 'y', 0)], '127.9');
  t.same(
    pods.map((p) => [p.workload.namespace, p.name, p.ip]),
    [
      ['a', 'z-0', '127.9.2.1'],
      ['a', 'z-1', '127.9.2.2'],
      ['b', 'x-0', '127.9.3.1'],
    ],
  );
  t.same(['127.0', '127.255', '127.256', '10.0', '127.0.1'].map(isPodIpPrefix), [true, true, false, false, false]);
});

t.test('loads Workloads from a directory, skipping hidden paths and other kinds', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-up-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sub'));
  mkdirSync(join(dir, '.weft-state'));
  writeFileSync(join(dir, 'a.yaml'), 'kind: Service\napiVersion: v1\nmetadata: {name: s}\n---\napiVersion: local.weft.io/v1alpha1\nkind: Workload\nmetadata: {name: one}\nspec: {command: [node, a.mjs]}\n');
  writeFileSync(join(dir, 'sub', 'b.yml'), 'apiVersion: local.weft.io/v1alpha1\nkind: Workload\nmetadata: {name: two, namespace: n}\nspec: {command: [x], replicas: 3}\n');
  writeFileSync(join(dir, '.weft-state', 'c.yaml'), 'apiVersion: local.weft.io/v1alpha1\nkind: Workload\nmetadata: {name: hidden}\nspec: {command: [x]}\n');
  writeFileSync(join(dir, 'bad.yaml'), 'kind: [\n');
  const r = loadWorkloads(dir);
  t.same(r.workloads.map((w) => `${w.namespace}/${w.name}@${w.source}`), ['default/one@a.yaml', 'n/two@sub/b.yml']);
  t.equal(r.errors.length, 1);
  t.match(r.errors[0], /^bad\.yaml: YAML: /);
});

t.test('running workloads keep their index; new ones take the smallest free one', async (t) => {
  const w = (name: string) => ({ namespace: 'n', name, replicas: 1 }) as LocalWorkload;
  const first = assignIndexes([w('b'), w('a'), w('c')]);
  t.same([...first], [['n/a', 1], ['n/b', 2], ['n/c', 3]]);
  // b gone from the map: d reuses its free index 2
  const kept = new Map(first);
  kept.delete('n/b');
  t.same([...assignIndexes([w('a'), w('c'), w('d')], kept)], [['n/a', 1], ['n/c', 3], ['n/d', 2]]);
  t.same(podsOf({ ...w('x'), replicas: 2 }, 7, '127.5').map((p) => p.ip), ['127.5.7.1', '127.5.7.2']);
});

t.test('a replica count alone is not a spec change', async (t) => {
  const a = parseWorkload({ ...base, spec: { command: ['x'], replicas: 1 } }, 'a.yaml').workload!;
  t.ok(sameSpec(a, { ...a, replicas: 3, source: 'b.yaml' }));
  t.notOk(sameSpec(a, { ...a, env: { X: '1' } }));
  t.notOk(sameSpec(a, { ...a, command: ['y'] }));
});

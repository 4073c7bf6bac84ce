import t from 'tap';
import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyResource, HTTPRoute } from '../../api/index.js';
import { FileSource, loadDirectory, parseFile } from '../source-files.js';
import type { ConfigError } from '../types.js';

const svc = (name: string, ns = 'default') => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

const route = (name: string, pathType: string, weight = 90) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: smiley, port: 80 }]
  rules:
    - matches: [{ path: { type: ${pathType}, value: /x } }]
      backendRefs: [{ name: smiley, port: 80, weight: ${weight} }]
`;

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-src-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const names = (rs: AnyResource[]) => rs.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`).sort();

t.test('multi-document files in nested directories are read; hidden and non-YAML files are not', async (t) => {
  const d = tmp(t);
  mkdirSync(join(d, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(d, '.hidden'));
  writeFileSync(join(d, 'a.yaml'), `${svc('smiley')}---\n${svc('color')}\n---\n`);
  writeFileSync(join(d, 'sub', 'deeper', 'b.yml'), route('r1', 'PathPrefix'));
  writeFileSync(join(d, '.hidden', 'c.yaml'), svc('ghost'));
  writeFileSync(join(d, 'notes.txt'), svc('text'));
  const { resources, errors } = await loadDirectory(d);
  t.same(errors, []);
  t.same(names(resources), ['HTTPRoute/default/r1', 'Service/default/color', 'Service/default/smiley']);
});

t.test('bad YAML: the error names the file; the last good version keeps serving', async (t) => {
  const f = '/cfg/r.yaml';
  const good = parseFile(f, `${svc('smiley')}---\n${route('r1', 'PathPrefix')}`);
  t.equal(good.errors.length, 0);
  const bad = parseFile(f, `${svc('smiley')}---\nkind: HTTPRoute\n  metadata: [unclosed\n`, good.resources);
  t.ok(bad.errors.length > 0);
  t.equal(bad.errors[0]!.source, f);
  t.match(bad.errors[0]!.message, /YAML/);
  t.same(names(bad.resources), names(good.resources));
});

t.test('an invalid field keeps that resource at its last good version while the other documents move on', async (t) => {
  const f = '/cfg/r.yaml';
  const good = parseFile(f, `${svc('smiley')}---\n${route('r1', 'PathPrefix', 90)}`);
  const next = parseFile(f, `${svc('smiley').replace('port: 80,', 'port: 81,')}---\n${route('r1', 'Bogus', 10)}`, good.resources);
  const err = next.errors.find((e) => e.field.includes('path.type'));
  t.ok(err, 'error names the field');
  t.equal(err!.source, f);
  t.equal(err!.resource, 'HTTPRoute default/r1');
  t.equal(err!.field, 'spec.rules[0].matches[0].path.type');
  const r1 = next.resources.find((r) => r.kind === 'HTTPRoute') as HTTPRoute;
  t.equal(r1.spec.rules![0]!.backendRefs![0]!.weight, 90, 'route keeps its last good version');
  const s = next.resources.find((r) => r.kind === 'Service');
  t.equal((s as { spec: { ports: { port: number }[] } }).spec.ports[0]!.port, 81, 'the valid document moved on');
  // A resource that never was valid is simply absent.
  const fresh = parseFile('/cfg/new.yaml', route('r2', 'Bogus'));
  t.same(fresh.resources, []);
  t.ok(fresh.errors.length >= 1);
  for (const e of fresh.errors) t.equal(e.resource, 'HTTPRoute default/r2');
});

t.test('the same object in two files: the first path serves, the second is reported', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'a.yaml'), svc('smiley'));
  writeFileSync(join(d, 'b.yaml'), svc('smiley'));
  const { resources, errors } = await loadDirectory(d);
  t.equal(resources.length, 1);
  t.equal(errors.length, 1);
  t.equal(errors[0]!.source, join(d, 'b.yaml'));
  t.match(errors[0]!.message, /already defined in .*a\.yaml/);
});

t.test('watching: edits, bad edits, new and removed files are applied within a second', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'svc.yaml'), svc('smiley'));
  writeFileSync(join(d, 'route.yaml'), route('r1', 'PathPrefix', 90));
  const updates: { resources: AnyResource[]; errors: ConfigError[]; at: number }[] = [];
  let waiter: (() => void) | undefined;
  const src = new FileSource({
    dir: d,
    onUpdate: (resources, errors) => {
      updates.push({ resources, errors, at: Date.now() });
      waiter?.();
    },
  });
  t.teardown(() => src.close());
  await src.start();
  t.equal(updates.length, 1, 'the first scan is reported');
  const next = (): Promise<(typeof updates)[number]> =>
    new Promise((resolve, reject) => {
      const n = updates.length;
      const timer = setTimeout(() => reject(new Error('no update within 1 s')), 1000);
      waiter = () => {
        if (updates.length > n) {
          clearTimeout(timer);
          waiter = undefined;
          resolve(updates[updates.length - 1]!);
        }
      };
    });

  let p = next();
  const t0 = Date.now();
  writeFileSync(join(d, 'route.yaml'), route('r1', 'PathPrefix', 10));
  let u = await p;
  t.ok(u.at - t0 < 1000, `edit applied in ${u.at - t0} ms`);
  let r1 = u.resources.find((r) => r.kind === 'HTTPRoute') as HTTPRoute;
  t.equal(r1.spec.rules![0]!.backendRefs![0]!.weight, 10);

  p = next();
  writeFileSync(join(d, 'route.yaml'), route('r1', 'Bogus', 50));
  u = await p;
  r1 = u.resources.find((r) => r.kind === 'HTTPRoute') as HTTPRoute;
  t.equal(r1.spec.rules![0]!.backendRefs![0]!.weight, 10, 'bad edit: last good kept');
  t.ok(u.errors.length >= 1);
  t.ok(u.errors.every((e) => e.source === join(d, 'route.yaml') && e.resource === 'HTTPRoute default/r1'));
  t.same(src.errors(), u.errors, 'errors stay exposed');

  p = next();
  writeFileSync(join(d, 'more.yml'), svc('color'));
  u = await p;
  t.same(names(u.resources), ['HTTPRoute/default/r1', 'Service/default/color', 'Service/default/smiley']);

  p = next();
  unlinkSync(join(d, 'route.yaml'));
  u = await p;
  t.same(names(u.resources), ['Service/default/color', 'Service/default/smiley']);
  t.same(u.errors, [], 'errors of a removed file go with it');
});

t.test('atomic replacements (write a temp file, rename it over) are seen every time, also in new subdirectories', async (t) => {
  const d = tmp(t);
  writeFileSync(join(d, 'svc.yaml'), svc('smiley'));
  let waiter: (() => void) | undefined;
  let last: AnyResource[] = [];
  // safetyScanMs high: only the watchers can deliver within the deadline.
  const src = new FileSource({
    dir: d,
    safetyScanMs: 60_000,
    onUpdate: (resources) => {
      last = resources;
      waiter?.();
    },
  });
  t.teardown(() => src.close());
  await src.start();
  const replace = async (rel: string, text: string): Promise<number> => {
    const p = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no update for ${rel} within 1 s`)), 1000);
      waiter = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const t0 = Date.now();
    const tmpPath = join(d, `.${Math.random().toString(36).slice(2)}.tmp`);
    writeFileSync(tmpPath, text);
    renameSync(tmpPath, join(d, rel));
    await p;
    return Date.now() - t0;
  };
  for (let i = 0; i < 4; i++) {
    const ms = await replace('svc.yaml', svc(`smiley${i}`));
    t.same(names(last), [`Service/default/smiley${i}`], `replacement ${i} applied in ${ms} ms`);
  }
  mkdirSync(join(d, 'routes'));
  await new Promise((r) => setTimeout(r, 300)); // the new directory's event triggers a scan that starts watching it
  const ms = await replace('routes/r.yaml', route('r1', 'PathPrefix'));
  t.ok(names(last).includes('HTTPRoute/default/r1'), `file in a new subdirectory applied in ${ms} ms`);
  await replace('routes/r.yaml', route('r1', 'Exact'));
  const r1 = last.find((r) => r.kind === 'HTTPRoute') as HTTPRoute;
  t.equal(r1.spec.rules![0]!.matches![0]!.path!.type, 'Exact');
});

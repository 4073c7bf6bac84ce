import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from '../registry.js';
import { Store } from '../store.js';
import type { RegisteredWorkload } from '../types.js';

const w = (ip: string, labels: Record<string, string> = { app: 'smiley' }): RegisteredWorkload => ({
  namespace: 'default',
  workload: 'smiley',
  serviceAccount: 'smiley',
  podName: `smiley-${ip}`,
  podIP: ip,
  labels,
  appPorts: [8080],
  meshed: true,
});

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-reg-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('a disconnected sidecar stays registered for the grace period, then goes', async (t) => {
  const changes: RegisteredWorkload[][] = [];
  const reg = new Registry({ graceMs: 150, onChange: (l) => changes.push(l) });
  t.teardown(() => reg.close());
  const release = reg.connect(w('127.0.9.1'));
  t.same(reg.list().map((x) => x.podIP), ['127.0.9.1']);
  release();
  t.equal(reg.all()[0]!.state, 'grace');
  t.equal(reg.list().length, 1, 'still an endpoint during grace');
  await sleep(250);
  t.equal(reg.list().length, 0, 'removed after grace');
  t.same(changes.at(-1), []);
});

t.test('reconnecting within grace keeps the entry; overlapping streams count', async (t) => {
  const reg = new Registry({ graceMs: 100, onChange: () => {} });
  t.teardown(() => reg.close());
  const r1 = reg.connect(w('127.0.9.2'));
  const r2 = reg.connect(w('127.0.9.2')); // new stream before the old one noticed it died
  r1();
  t.equal(reg.all()[0]!.state, 'connected');
  r2();
  t.equal(reg.all()[0]!.state, 'grace');
  const r3 = reg.connect(w('127.0.9.2', { app: 'smiley', v: '2' }));
  await sleep(200);
  t.equal(reg.list().length, 1);
  t.same(reg.list()[0]!.labels, { app: 'smiley', v: '2' }, 'labels follow the latest hello');
  r3();
});

t.test('registrations persist across a restart as provisional entries that expire unless the sidecar returns', async (t) => {
  const d = tmp(t);
  const file = join(d, 'registry.json');
  const a = new Registry({ file, onChange: () => {} });
  a.connect(w('127.0.9.3'));
  a.connect(w('127.0.9.4'));
  a.close();
  t.equal(JSON.parse(readFileSync(file, 'utf8')).workloads.length, 2);

  const store = new Store({ sessionKey: 'k' });
  const b = new Registry({ file, provisionalMs: 150, onChange: (l) => store.setRegistered(l) });
  t.teardown(() => b.close());
  t.equal(b.load(), 2);
  t.same(store.snapshot().registered.map((x) => x.podIP).sort(), ['127.0.9.3', '127.0.9.4'], 'store serves them at once');
  t.ok(b.all().every((e) => e.state === 'provisional'));
  const back = b.connect(w('127.0.9.3'));
  await sleep(250);
  t.same(store.snapshot().registered.map((x) => x.podIP), ['127.0.9.3'], 'only the one that came back stays');
  back();
});

t.test('store: sources, upserts and change notifications', async (t) => {
  const s = new Store({ sessionKey: 'key' });
  let n = 0;
  s.onChange(() => n++);
  const svc = { apiVersion: 'v1', kind: 'Service' as const, metadata: { name: 'a', namespace: 'default' }, spec: {} };
  s.replaceSource('files', [svc], [{ source: 'f', resource: '', field: '', message: 'm' }]);
  s.upsert('k8s', { ...svc, metadata: { name: 'b', namespace: 'default' } });
  t.equal(s.snapshot().services.length, 2);
  t.equal(s.snapshot(), s.snapshot(), 'snapshot cached until a change');
  s.remove('k8s', 'Service', 'default', 'b');
  t.equal(s.snapshot().services.length, 1);
  t.equal(s.errors().length, 1);
  t.equal(s.snapshot().sessionKey, 'key');
  t.equal(n, 3);
  t.same(s.sourcesSynced(), { files: true, k8s: false });
});

t.test('HA: replicas sharing STATE serve each other\'s registrations; a replica that stops heartbeating takes its entries after the grace', async (t) => {
  const d = tmp(t);
  const seenB: RegisteredWorkload[][] = [];
  const a = new Registry({ file: join(d, 'registry-a.json'), graceMs: 400, heartbeatMs: 50, peerScanMs: 20, persistDelayMs: 10, onChange: () => {} });
  const b = new Registry({ file: join(d, 'registry-b.json'), graceMs: 400, heartbeatMs: 50, peerScanMs: 20, persistDelayMs: 10, onChange: (l) => seenB.push(l) });
  t.teardown(() => {
    a.close();
    b.close();
  });
  a.connect(w('127.0.9.31'));
  const releaseB = b.connect(w('127.0.9.32'));
  const until = async (what: string, fn: () => boolean) => {
    for (let i = 0; i < 100 && !fn(); i++) await sleep(20);
    t.ok(fn(), what);
  };
  await until('b lists a\'s sidecar too', () => b.list().length === 2);
  await until('a lists b\'s sidecar too', () => a.list().length === 2);
  t.same(a.list().map((x) => x.podIP), b.list().map((x) => x.podIP), 'both replicas list the same workloads in the same order');
  // A draining sidecar on b: gone from a at once (b writes its file immediately).
  b.leave(w('127.0.9.32'));
  await until('a drops b\'s draining sidecar', () => a.list().length === 1);
  releaseB();
  // a dies (no close: no more heartbeats): after the grace, b drops its entries.
  a.close();
  await until('b drops the dead replica\'s entries after the grace', () => b.list().length === 0);
  // list() judges liveness when called; the store hears of it at b's next peer scan (every 20 ms here).
  await until('and tells the store', () => seenB.at(-1)?.length === 0);
});

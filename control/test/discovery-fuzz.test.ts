// Fuzzing the Discovery stream over real gRPC and TLS: an authenticated peer
// (a certified mesh identity) sends random frames. A frame that is not a
// SidecarMessage closes that stream with an error; whatever it sends, control
// stays up and every other sidecar keeps its config and still gets updates.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { weftV1, type ServiceConfig } from '../../api/index.js';
import { CONTROL_SERVER_NAME } from '../state.js';
import { startControl } from '../index.js';
import { certify, FakeSidecar, readState, updateOf } from './helpers/fake-sidecar.js';

const runs = Number(process.env.WEFT_FUZZ_RUNS ?? 200);
const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

const services = `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: fz }
spec:
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
const route = (w: number) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: fz }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules: [{ backendRefs: [{ name: echo, port: 80, weight: ${w} }] }]
`;

const dir = mkdtempSync(join(tmpdir(), 'weft-fz-'));
const stateDir = mkdtempSync(join(tmpdir(), 'weft-fz-state-'));
t.teardown(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateDir, { recursive: true, force: true });
});
writeFileSync(join(dir, 'services.yaml'), services);
writeFileSync(join(dir, 'route.yaml'), route(1));
const control = await startControl({ configDir: dir, stateDir, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {}, registrationGraceMs: 200 });
t.teardown(() => control.close());
const { token, bundle } = readState(stateDir);

const weightOf = (s: FakeSidecar): number | undefined => {
  const u = s.updates('fz/echo').at(-1);
  if (!u?.config_json?.length) return undefined;
  const cfg = JSON.parse(Buffer.from(u.config_json).toString('utf8')) as ServiceConfig;
  return cfg.ports[0]?.rules[0]?.backends[0]?.weight;
};

// Two well-behaved sidecars with their config.
const goodCert = await certify(control.grpcAddress, bundle, { token, namespace: 'fz', serviceAccount: 'good' });
const good = [0, 1].map((i) => new FakeSidecar(control.grpcAddress, bundle, goodCert, { namespace: 'fz', service_account: 'good', pod_ip: `10.0.0.${i + 1}`, subscribe: ['echo'] }));
t.teardown(() => good.forEach((s) => s.close()));
for (const s of good) await s.next((m) => updateOf(m)?.service === 'fz/echo', 5000);

// The fuzzer: a certified identity, raw frames on weft.v1.Discovery/Stream.
const fuzzCert = await certify(control.grpcAddress, bundle, { token, namespace: 'fz', serviceAccount: 'fuzzer' });
const creds = grpc.credentials.createSsl(Buffer.from(bundle), Buffer.from(fuzzCert.keyPem), Buffer.from(fuzzCert.certPem + fuzzCert.chain.join('')));
const raw = new grpc.Client(control.grpcAddress, creds, { 'grpc.ssl_target_name_override': CONTROL_SERVER_NAME, 'grpc.default_authority': CONTROL_SERVER_NAME });
t.teardown(() => raw.close());
const { Discovery } = weftV1();
const def = (Discovery as unknown as { service: Record<string, { requestSerialize(m: unknown): Buffer; requestDeserialize(b: Buffer): unknown }> }).service.Stream!;
const decodes = (b: Uint8Array): boolean => {
  try {
    def.requestDeserialize(Buffer.from(b));
    return true;
  } catch {
    return false;
  }
};

/** Sends frames on one stream; resolves with its status, or 'open' when it is still open after the frames. */
function session(frames: Uint8Array[]): Promise<grpc.StatusObject | 'open'> {
  return new Promise((resolve) => {
    const call = raw.makeBidiStreamRequest('/weft.v1.Discovery/Stream', (b: Buffer) => b, (b: Buffer) => b);
    let settled = false;
    const settle = (v: grpc.StatusObject | 'open') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (v === 'open') call.cancel();
      resolve(v);
    };
    call.on('status', (s: grpc.StatusObject) => settle(s));
    call.on('error', () => {});
    call.on('data', () => {});
    for (const f of frames) call.write(Buffer.from(f));
    const timer = setTimeout(() => settle('open'), 300);
  });
}

const helloFrame = (h: Record<string, unknown>) => new Uint8Array(def.requestSerialize({ hello: { workload: 'w', pod_ip: '10.9.9.9', pod_name: 'p', labels: {}, app_ports: [], sidecar_version: 'x', subscribe: [], strict: false, ...h } }));
const structured = fc.oneof(
  fc.record({ namespace: fc.constantFrom('fz', 'other', ''), service_account: fc.constantFrom('fuzzer', 'good', ''), subscribe: fc.array(fc.string({ maxLength: 30 }), { maxLength: 5 }), pod_ip: fc.string({ maxLength: 20 }) }).map(helloFrame),
  fc.array(fc.string({ maxLength: 40 }), { maxLength: 5 }).map((services) => new Uint8Array(def.requestSerialize({ subscribe: { services, unsubscribe: [] } }))),
  fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 })).map(([resource, version, error]) => new Uint8Array(def.requestSerialize({ ack: { resource, version, error } }))),
);
const garbage = fc.uint8Array({ minLength: 1, maxLength: 200 }).filter((b) => !decodes(b));
const frame = fc.oneof(garbage, structured, structured.chain((f) => fc.nat({ max: Math.max(0, f.length - 1) }).map((i) => { const c = f.slice(); c[i] = (c[i] ?? 0) ^ 0xff; return c; })));

t.test('the raw fuzz client speaks the real wire (a valid hello keeps its stream open)', async (t) => {
  t.equal(await session([helloFrame({ namespace: 'fz', service_account: 'fuzzer' })]), 'open');
  const st = await session([Uint8Array.from([0xff, 0xff, 0xff])]);
  t.not(st, 'open');
  if (st !== 'open') t.not(st.code, grpc.status.OK, `garbage: ${grpc.status[st.code]}: ${st.details}`);
});

t.test('random frames from an authenticated peer: that stream closes with an error; nobody else notices', async (t) => {
  let closedWithError = 0;
  let opened = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 4 }), async (frames) => {
      const st = await session(frames);
      if (frames.some((f) => !decodes(f))) {
        // A frame that is not a SidecarMessage: the stream ends with an error status.
        if (st === 'open' || st.code === grpc.status.OK) return false;
      }
      if (st !== 'open' && st.code !== grpc.status.OK) closedWithError++;
      else opened++;
      return true;
    }),
    { seed: 16, numRuns: runs },
  );
  t.ok(closedWithError > 0, `${closedWithError} fuzz streams were closed with an error, ${opened} stayed open (valid messages)`);

  // Control is up and the others keep (and still receive) their config.
  for (const s of good) t.equal(weightOf(s), 1, 'kept its config');
  writeFileSync(join(dir, 'route.yaml'), route(7));
  for (const s of good) {
    await s.next((m) => updateOf(m)?.service === 'fz/echo' && weightOf(s) === 7, 5000);
    t.equal(weightOf(s), 7, 'still gets updates');
  }
  const live = await fetch(`http://${control.adminAddress}/ready`);
  t.equal(live.status, 200, 'control is up');
});

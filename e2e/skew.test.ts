// Upgrade skew: this release against the last one (api/releases/0.1.0).
//  - weft.proto has no breaking change against the released copy
//    (`buf breaking`, and the check does catch one);
//  - the current control serves the recorded 0.1.0 sidecar's messages, and
//    what it answers decodes with the 0.1.0 schema (new fields are unknown
//    there and ignored);
//  - the current sidecar applies the recorded 0.1.0 control's messages and
//    ACKs them without error; its own messages decode with the 0.1.0 schema.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { STATE_FILES, WEFT_VERSION, weftV1, type CertifyRequestMsg, type CertifyResponseMsg, type ServiceConfig } from '../api/index.js';
import { createIssuer, createTrustAnchor, issueCert, signCsr, spiffeId } from '../certs/index.js';
import { startControl } from '../control/index.js';
import { startSidecar } from '../sidecar/index.js';
import { REPO, randomLoopback, waitFor } from './helpers/mesh.js';

const RELEASE = '0.1.0';
const RELEASE_DIR = join(REPO, 'api', 'releases', RELEASE);
const BUF = join(REPO, 'node_modules', '.bin', 'buf');

interface Recorded {
  from: 'sidecar' | 'control';
  kind: string;
  bytes: string;
}
const recording = JSON.parse(readFileSync(join(RELEASE_DIR, 'stream.json'), 'utf8')) as { version: string; messages: Recorded[] };
const bytesOf = (m: Recorded) => Buffer.from(m.bytes, 'base64');

/** The released schema's Stream method: (de)serializers of 0.1.0. */
function releasedStream(): grpc.MethodDefinition<object, object> {
  const def = protoLoader.loadSync(join(RELEASE_DIR, 'weft.proto'), { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { weft: { v1: { Discovery: grpc.ServiceClientConstructor } } };
  return pkg.weft.v1.Discovery.service.Stream as grpc.MethodDefinition<object, object>;
}
const old = releasedStream();
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

t.test('weft.proto: no breaking change against the released 0.1.0 copy (buf breaking)', async (t) => {
  t.equal(recording.version, RELEASE);
  t.not(WEFT_VERSION, '', 'the package has a release number');
  const out = execFileSync(BUF, ['breaking', join(REPO, 'api', 'weft.proto'), '--against', join(RELEASE_DIR, 'weft.proto')], { encoding: 'utf8' });
  t.equal(out.trim(), '', 'buf reports nothing');
  // The check bites: a field that changes type is reported.
  const dir = mkdtempSync(join(tmpdir(), 'weft-buf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'weft.proto'), readFileSync(join(REPO, 'api', 'weft.proto'), 'utf8').replace('string pod_ip = 4;', 'int32 pod_ip = 4;'));
  let failed = '';
  try {
    execFileSync(BUF, ['breaking', join(dir, 'weft.proto'), '--against', join(RELEASE_DIR, 'weft.proto')], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    failed = String((e as { stdout?: string }).stdout ?? '');
  }
  t.match(failed, /pod_ip.*changed type/, 'a breaking edit is caught');
});

t.test('the recording holds what a sidecar and a control say', async (t) => {
  const kinds = recording.messages.map((m) => `${m.from}:${m.kind}`);
  for (const k of ['sidecar:hello', 'sidecar:ack', 'control:directory', 'control:update']) t.ok(kinds.includes(k), k);
});

t.test('current control serves a 0.1.0 sidecar: its recorded Hello and ACKs are accepted; the answers decode with the 0.1.0 schema', async (t) => {
  const ip = randomLoopback();
  const dir = mkdtempSync(join(tmpdir(), 'weft-skew-cfg-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-skew-state-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  writeFileSync(
    join(dir, 'web.yaml'),
    `apiVersion: v1\nkind: Service\nmetadata: { name: web, namespace: demo }\nspec:\n  selector: { app: web }\n  ports: [{ name: http, port: 80, targetPort: 8080 }]\n`,
  );
  const control = await startControl({ configDir: dir, stateDir, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {} });
  t.teardown(() => control.close());
  // The old sidecar's identity (demo/web, as its Hello says), certified the usual way.
  const token = readFileSync(join(stateDir, STATE_FILES.bootstrapToken), 'utf8').trim();
  const bundle = readFileSync(join(stateDir, STATE_FILES.trustBundle), 'utf8');
  const { Identity } = weftV1();
  const { generateKeyAndCsr } = await import('../certs/index.js');
  const { keyPem, csrPem } = generateKeyAndCsr(spiffeId('demo', 'web'));
  const opts = { 'grpc.ssl_target_name_override': 'weft-control.weft-system.svc', 'grpc.default_authority': 'weft-control.weft-system.svc' };
  const idc = new Identity(control.grpcAddress, grpc.credentials.createSsl(Buffer.from(bundle)), opts);
  const leaf = await new Promise<CertifyResponseMsg>((res, rej) =>
    (idc as unknown as { Certify(r: CertifyRequestMsg, cb: (e: Error | null, r: CertifyResponseMsg) => void): void }).Certify(
      { csr: csrPem, token, namespace: 'demo', service_account: 'web' },
      (e, r) => (e ? rej(e) : res(r)),
    ),
  );
  idc.close();
  const Raw = grpc.makeGenericClientConstructor(
    { Stream: { path: '/weft.v1.Discovery/Stream', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize } },
    'RawDiscovery',
  );
  const client = new Raw(control.grpcAddress, grpc.credentials.createSsl(Buffer.from(bundle), Buffer.from(keyPem), Buffer.from([leaf.leaf, ...leaf.chain].join('\n'))), opts) as unknown as {
    Stream(): grpc.ClientDuplexStream<Buffer, Buffer>;
    close(): void;
  };
  t.teardown(() => client.close());
  const call = client.Stream();
  t.teardown(() => call.cancel());
  const got: Array<{ kind?: string; directory?: { version: string; services: Array<{ name: string }>; trust_bundle: string }; update?: { service: string; version: string; config_json: Buffer; removed: boolean } }> = [];
  call.on('data', (b: Buffer) => got.push(old.responseDeserialize(b) as (typeof got)[number]));
  call.on('error', () => {});
  // Everything the 0.1.0 sidecar sent, byte for byte (its ACKs name versions of the old control: ignored).
  for (const m of recording.messages.filter((x) => x.from === 'sidecar')) call.write(bytesOf(m));
  await waitFor('a directory and the view of demo/web, decoded with the 0.1.0 schema', () => got.some((m) => m.kind === 'directory') && got.some((m) => m.kind === 'update' && m.update?.service === 'demo/web'));
  const d = got.find((m) => m.kind === 'directory')!.directory!;
  t.ok(d.version, 'directory version');
  t.ok(d.services.some((s) => s.name === 'web'), 'directory lists web');
  t.match(d.trust_bundle, /BEGIN CERTIFICATE/, 'trust bundle');
  const u = got.find((m) => m.kind === 'update' && m.update?.service === 'demo/web')!.update!;
  const cfg = JSON.parse(Buffer.from(u.config_json).toString('utf8')) as ServiceConfig;
  t.equal(cfg.service, 'demo/web', 'the view is the ServiceConfig JSON 0.1.0 reads');
  await waitFor('the 0.1.0 sidecar is registered as an endpoint', () => control.registry.list().some((w) => w.podName === 'web-0' && w.namespace === 'demo'));
  t.pass('registered from its recorded Hello');
});

t.test('current sidecar against a 0.1.0 control: the recorded messages are applied and ACKed without error; its messages decode with the 0.1.0 schema', async (t) => {
  const ip = randomLoopback();
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-skew-sc-'));
  t.teardown(() => rmSync(stateDir, { recursive: true, force: true }));
  const anchor = createTrustAnchor();
  const issuer = createIssuer(anchor);
  const serving = issueCert(issuer, { spiffeId: spiffeId('weft-system', 'weft-control'), dnsNames: ['weft-control.weft-system.svc'], ipAddresses: [ip] });
  writeFileSync(join(stateDir, STATE_FILES.trustBundle), anchor.certPem);
  writeFileSync(join(stateDir, STATE_FILES.bootstrapToken), 'skew-token\n', { mode: 0o600 });
  const fromSidecar: Array<{ kind?: string; hello?: Record<string, unknown>; ack?: { resource: string; version: string; error: string } }> = [];
  const server = new grpc.Server();
  const { Identity } = weftV1();
  server.addService(Identity.service, {
    Certify: (call: grpc.ServerUnaryCall<CertifyRequestMsg, CertifyResponseMsg>, cb: grpc.sendUnaryData<CertifyResponseMsg>) => {
      const leaf = signCsr(issuer, call.request.csr, { spiffeId: spiffeId(call.request.namespace, call.request.service_account), lifetimeMs: 3600_000 });
      cb(null, { leaf: leaf.certPem, chain: [issuer.certPem], trust_bundle: anchor.certPem, not_after: leaf.notAfter.getTime() });
    },
  });
  // The 0.1.0 control, replayed: its recorded messages, byte for byte, after the Hello.
  server.addService(
    { Stream: { path: '/weft.v1.Discovery/Stream', requestStream: true, responseStream: true, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize, originalName: '' } } as grpc.ServiceDefinition,
    {
      Stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (b: Buffer) => {
          const m = old.requestDeserialize(b) as (typeof fromSidecar)[number];
          fromSidecar.push(m);
          if (m.kind === 'hello') for (const r of recording.messages.filter((x) => x.from === 'control')) call.write(bytesOf(r));
        });
        call.on('error', () => {});
      },
    },
  );
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(anchor.certPem), [{ private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certPem + issuer.certPem) }], false);
  const port = await new Promise<number>((res, rej) => server.bindAsync(`${ip}:0`, creds, (e, p) => (e ? rej(e) : res(p))));
  t.teardown(() => server.forceShutdown());

  const sidecar = await startSidecar({
    control: `${ip}:${port}`,
    stateDir,
    podIP: ip,
    namespace: 'demo',
    workload: 'web',
    serviceAccount: 'web',
    labels: { app: 'web' },
    appPorts: [8080],
    subscribe: ['demo/web'],
    ports: { outbound: 0, inbound: 0, admin: 0 },
    log: () => {},
  });
  t.teardown(() => sidecar.close(0));
  await sidecar.ready;
  const recordedVersions = recording.messages
    .filter((m) => m.from === 'control')
    .map((m) => old.responseDeserialize(bytesOf(m)) as { kind: string; directory?: { version: string }; update?: { service: string; version: string } })
    .map((m) => (m.kind === 'directory' ? `directory@${m.directory!.version}` : `service:${m.update!.service}@${m.update!.version}`));
  await waitFor('every recorded message ACKed', () => recordedVersions.every((v) => fromSidecar.some((m) => m.kind === 'ack' && `${m.ack!.resource}@${m.ack!.version}` === v)));
  const nacks = fromSidecar.filter((m) => m.kind === 'ack' && m.ack!.error);
  t.same(nacks, [], 'no NACK: the 0.1.0 directory and views are valid for this sidecar');
  const hello = fromSidecar.find((m) => m.kind === 'hello')!.hello!;
  t.match(hello, { namespace: 'demo', workload: 'web', service_account: 'web', pod_ip: ip, subscribe: ['demo/web'] }, 'its Hello reads as a 0.1.0 Hello');
  t.notOk('versions' in hello || 'draining' in hello, 'the fields added since 0.1.0 are unknown to the 0.1.0 schema (and skipped)');
  const cfg = JSON.parse((await (await fetch(`http://${sidecar.adminAddress}/config`)).text()) as string) as { services: Record<string, unknown> };
  t.ok(cfg.services['demo/web'], 'the recorded view of demo/web is applied');
});

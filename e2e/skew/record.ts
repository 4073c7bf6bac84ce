// Records the Discovery stream between a real control and a real sidecar of
// one release, as the bytes on the wire, for the skew tests of later
// releases (api/releases/<version>/stream.json).
//
//   node --import=@tapjs/typescript/import e2e/skew/record.ts --dist /path/to/release/dist --out api/releases/0.1.0
//   (a worktree of the release tag, built: git worktree add /tmp/weft-0.1.0 v0.1.0 && npm run build there)
//
// The release's `weft control` runs with a config directory (a Service and
// an HTTPRoute); a relay between it and the release's `weft sidecar` speaks
// TLS with control's own serving certificate (from STATE) to the sidecar and
// a mesh certificate of the same identity to control, and passes every
// message through untouched, keeping a copy. The route is edited once, so
// the recording has a second version of the view. No private key or token
// is recorded: only Discovery messages (certificates travel in Identity).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { STATE_FILES, weftV1, type CertifyResponseMsg } from '../../api/index.js';
import { generateKeyAndCsr, spiffeId } from '../../certs/index.js';

const SERVER_NAME = 'weft-control.weft-system.svc';

export interface RecordedMessage {
  /** Who wrote it. */
  from: 'sidecar' | 'control';
  /** The oneof member set, for reading the file. */
  kind: string;
  /** The message as it crossed the wire (protobuf), base64. */
  bytes: string;
}

export interface Recording {
  version: string;
  recordedAt: string;
  note: string;
  messages: RecordedMessage[];
}

const SERVICE = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: demo }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
const route = (prefix: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: ${prefix} } }]
      backendRefs: [{ name: web, port: 80 }]
`;

const identity = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

function kindOf(bytes: Buffer, from: 'sidecar' | 'control'): string {
  const { Discovery } = weftV1();
  const def = Discovery.service.Stream!;
  const msg = (from === 'sidecar' ? def.requestDeserialize(bytes) : def.responseDeserialize(bytes)) as { kind?: string };
  return msg.kind ?? 'unknown';
}

function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((res, rej) => {
    const tick = async () => {
      let ok = false;
      try {
        ok = await fn();
      } catch {
        ok = false;
      }
      if (ok) return res();
      if (Date.now() > end) return rej(new Error(`timed out waiting for ${what}`));
      setTimeout(() => void tick(), 100);
    };
    void tick();
  });
}

function get(url: string): Promise<number> {
  return new Promise((res) => {
    http.get(url, (r) => {
      r.resume();
      res(r.statusCode ?? 0);
    }).on('error', () => res(0));
  });
}

async function certify(target: string, stateDir: string, ns: string, sa: string): Promise<{ keyPem: string; chainPem: string; bundle: string }> {
  const token = readFileSync(join(stateDir, STATE_FILES.bootstrapToken), 'utf8').trim();
  const bundle = readFileSync(join(stateDir, STATE_FILES.trustBundle), 'utf8');
  const { keyPem, csrPem } = generateKeyAndCsr(spiffeId(ns, sa));
  const { Identity } = weftV1();
  const c = new Identity(target, grpc.credentials.createSsl(Buffer.from(bundle)), { 'grpc.ssl_target_name_override': SERVER_NAME });
  const r = await new Promise<CertifyResponseMsg>((res, rej) =>
    (c as unknown as { Certify(q: object, cb: (e: Error | null, r: CertifyResponseMsg) => void): void }).Certify(
      { csr: csrPem, token, namespace: ns, service_account: sa },
      (e, x) => (e ? rej(e) : res(x)),
    ),
  );
  c.close();
  return { keyPem, chainPem: [r.leaf, ...r.chain].join('\n'), bundle: r.trust_bundle || bundle };
}

export async function record(o: { dist: string; version: string; prefix?: string }): Promise<Recording> {
  const prefix = o.prefix ?? `127.${100 + Math.floor(Math.random() * 100)}`;
  const work = mkdtempSync(join(tmpdir(), 'weft-record-'));
  const configDir = join(work, 'config');
  const stateDir = join(work, 'state');
  mkdirSync(configDir);
  writeFileSync(join(configDir, 'web.yaml'), SERVICE + '---\n' + route('/'));
  const procs: ChildProcess[] = [];
  const weft = (args: string[]) => {
    const p = spawn(process.execPath, [join(o.dist, 'cli', 'weft.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (c: Buffer) => process.env.WEFT_RECORD_DEBUG && process.stderr.write(c));
    procs.push(p);
    return p;
  };
  const controlAddr = `${prefix}.0.1:7443`;
  const relayAddr = `${prefix}.0.2:7443`;
  const messages: RecordedMessage[] = [];
  const server = new grpc.Server();
  try {
    weft(['control', '--config-dir', configDir, '--state-dir', stateDir, '--listen', controlAddr, '--admin', `${prefix}.0.1:7091`]);
    await waitFor('control ready', async () => (await get(`http://${prefix}.0.1:7091/ready`)) === 200);

    const up = await certify(controlAddr, stateDir, 'demo', 'web');
    const upCreds = grpc.credentials.createSsl(Buffer.from(up.bundle), Buffer.from(up.keyPem), Buffer.from(up.chainPem));
    const rawClient = grpc.makeGenericClientConstructor(
      {
        Stream: { path: '/weft.v1.Discovery/Stream', requestStream: true, responseStream: true, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
        Certify: { path: '/weft.v1.Identity/Certify', requestStream: false, responseStream: false, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize },
      },
      'Relay',
    );
    const upstream = new rawClient(controlAddr, upCreds, { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME }) as unknown as {
      Stream(): grpc.ClientDuplexStream<Buffer, Buffer>;
      Certify(req: Buffer, cb: (e: grpc.ServiceError | null, r?: Buffer) => void): void;
    };
    const plainUp = new rawClient(controlAddr, grpc.credentials.createSsl(Buffer.from(up.bundle)), { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME }) as unknown as typeof upstream;

    const def = (path: string, rs: boolean, ss: boolean) => ({ path, requestStream: rs, responseStream: ss, requestSerialize: identity.serialize, requestDeserialize: identity.deserialize, responseSerialize: identity.serialize, responseDeserialize: identity.deserialize, originalName: '' });
    server.addService({ Stream: def('/weft.v1.Discovery/Stream', true, true) } as grpc.ServiceDefinition, {
      Stream: (down: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        const call = upstream.Stream();
        down.on('data', (b: Buffer) => {
          messages.push({ from: 'sidecar', kind: kindOf(b, 'sidecar'), bytes: b.toString('base64') });
          call.write(b);
        });
        call.on('data', (b: Buffer) => {
          messages.push({ from: 'control', kind: kindOf(b, 'control'), bytes: b.toString('base64') });
          down.write(b);
        });
        const end = () => {
          call.cancel();
          down.end();
        };
        down.on('end', end);
        down.on('error', end);
        call.on('error', () => down.end());
      },
    });
    server.addService({ Certify: def('/weft.v1.Identity/Certify', false, false) } as grpc.ServiceDefinition, {
      Certify: (c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => plainUp.Certify(c.request, (e, r) => cb(e, r)),
    });
    // Control's serving certificate and the issuer that signed it, as control itself presents them.
    const serving = {
      cert: Buffer.concat([readFileSync(join(stateDir, 'control-serving.pem')), readFileSync(join(stateDir, STATE_FILES.issuerCert))]),
      key: readFileSync(join(stateDir, 'control-serving.key')),
    };
    await new Promise<void>((res, rej) =>
      server.bindAsync(relayAddr, grpc.ServerCredentials.createSsl(Buffer.from(up.bundle), [{ cert_chain: serving.cert, private_key: serving.key }], false), (e) => (e ? rej(e) : res())),
    );

    weft(['sidecar', '--control', relayAddr, '--state-dir', stateDir, '--pod-ip', `${prefix}.1.1`, '--pod-name', 'web-0', '--namespace', 'demo', '--workload', 'web', '--service-account', 'web', '--labels', 'app=web', '--app-ports', '8080', '--subscribe', 'demo/web']);
    const updates = () => messages.filter((m) => m.from === 'control' && m.kind === 'update').length;
    const acks = () => messages.filter((m) => m.from === 'sidecar' && m.kind === 'ack').length;
    await waitFor('hello, directory, view and their ACKs', () => messages.some((m) => m.kind === 'hello') && messages.some((m) => m.kind === 'directory') && updates() >= 1 && acks() >= 2);
    const before = updates();
    writeFileSync(join(configDir, 'web.yaml'), SERVICE + '---\n' + route('/v2'));
    await waitFor('the edited view and its ACK', () => updates() > before && acks() >= 3);
    await new Promise((r) => setTimeout(r, 300));
    return {
      version: o.version,
      recordedAt: new Date().toISOString(),
      note: `Discovery stream between weft control and weft sidecar ${o.version}, recorded by e2e/skew/record.ts through a relay; the route was edited once.`,
      messages,
    };
  } finally {
    server.forceShutdown();
    for (const p of procs) p.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && /e2e[\/]skew[\/]record\.[jt]s$/.test(resolve(process.argv[1]))) {
  const { values } = parseArgs({ options: { dist: { type: 'string' }, out: { type: 'string' }, version: { type: 'string' } } });
  const dist = resolve(values.dist ?? 'dist');
  const pkg = JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')) as { version: string };
  const version = values.version ?? pkg.version;
  const out = resolve(values.out ?? join('api', 'releases', version));
  record({ dist, version }).then(
    (r) => {
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'stream.json'), JSON.stringify(r, null, 1) + '\n');
      process.stdout.write(`recorded ${r.messages.length} messages of ${version} into ${join(out, 'stream.json')}\n`);
      process.exit(0);
    },
    (e: Error) => {
      process.stderr.write(`record: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
}

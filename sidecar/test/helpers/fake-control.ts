// A small control plane for sidecar tests that speaks the real weft.proto
// over real TLS: Identity/Certify signs CSRs with an in-test issuer, and
// Discovery/Stream hands out a directory and ServiceConfigs the test sets
// directly (no YAML, no compile), recording every ACK/NACK.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { STATE_FILES, weftV1, type ControlMessage, type DirectoryMsg, type ServiceConfig, type SidecarMessage, type AckMsg, type HelloMsg, type CertifyRequestMsg, type CertifyResponseMsg } from '../../../api/index.js';
import { createIssuer, createTrustAnchor, issueCert, signCsr, spiffeId, type Pem } from '../../../certs/index.js';

export interface FakeControl {
  address: string;
  stateDir: string;
  anchor: Pem;
  issuer: Pem;
  acks: AckMsg[];
  hellos: HelloMsg[];
  subscriptions: Set<string>;
  certified: number;
  /** Sets (or replaces) a Service's config and pushes it to every subscribed stream. */
  setService(cfg: ServiceConfig, version?: string): void;
  /** Pushes raw JSON bytes as an update (for NACK tests). */
  pushRaw(service: string, json: string, version: string): void;
  setDirectory(d: Omit<DirectoryMsg, 'trust_bundle'>): void;
  /** Signs with another issuer from now on (issuer rotation). */
  setIssuer(p: Pem): void;
  close(): Promise<void>;
}

export async function startFakeControl(opts: { host: string; stateDir: string; leafLifetimeMs?: number; port?: number }): Promise<FakeControl> {
  const anchor = createTrustAnchor();
  let issuer = createIssuer(anchor);
  const serving = issueCert(issuer, { spiffeId: spiffeId('weft-system', 'weft-control'), dnsNames: ['weft-control.weft-system.svc', 'localhost'], ipAddresses: [opts.host] });
  mkdirSync(opts.stateDir, { recursive: true });
  writeFileSync(join(opts.stateDir, STATE_FILES.trustBundle), anchor.certPem);
  writeFileSync(join(opts.stateDir, STATE_FILES.bootstrapToken), 'test-token\n', { mode: 0o600 });

  const services = new Map<string, { cfg: ServiceConfig | undefined; raw?: string; version: string }>();
  let directory: DirectoryMsg = { version: '1', services: [], trust_bundle: anchor.certPem };
  const streams = new Set<{ call: grpc.ServerDuplexStream<SidecarMessage, ControlMessage>; subs: Set<string> }>();
  const fc: FakeControl = {
    address: '',
    stateDir: opts.stateDir,
    anchor,
    issuer,
    acks: [],
    hellos: [],
    subscriptions: new Set(),
    certified: 0,
    setService(cfg, version) {
      const v = version ?? String(Number(services.get(cfg.service)?.version ?? '0') + 1);
      services.set(cfg.service, { cfg, version: v });
      for (const s of streams) if (s.subs.has(cfg.service)) send(s.call, cfg.service);
    },
    pushRaw(service, json, version) {
      services.set(service, { cfg: undefined, raw: json, version });
      for (const s of streams) if (s.subs.has(service)) send(s.call, service);
    },
    setDirectory(d) {
      directory = { ...d, trust_bundle: anchor.certPem };
      for (const s of streams) s.call.write({ directory });
    },
    setIssuer(p) {
      issuer = p;
      fc.issuer = p;
    },
    close: async () => {
      for (const s of streams) s.call.destroy();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
      server.forceShutdown();
    },
  };

  function send(call: grpc.ServerDuplexStream<SidecarMessage, ControlMessage>, key: string): void {
    const s = services.get(key);
    if (!s) return;
    const json = s.raw ?? JSON.stringify(s.cfg);
    call.write({ update: { service: key, version: s.version, config_json: Buffer.from(json), removed: false } });
  }

  const server = new grpc.Server();
  const { Discovery, Identity } = weftV1();
  server.addService(Identity.service, {
    Certify: (call: grpc.ServerUnaryCall<CertifyRequestMsg, CertifyResponseMsg>, cb: grpc.sendUnaryData<CertifyResponseMsg>) => {
      const req = call.request;
      if (req.token !== 'test-token') return cb({ code: grpc.status.UNAUTHENTICATED, details: 'bad token' } as grpc.ServiceError, null);
      const leaf = signCsr(issuer, req.csr, { spiffeId: spiffeId(req.namespace, req.service_account), lifetimeMs: opts.leafLifetimeMs ?? 3600_000 });
      fc.certified++;
      cb(null, { leaf: leaf.certPem, chain: [issuer.certPem], trust_bundle: anchor.certPem, not_after: leaf.notAfter.getTime() });
    },
  });
  server.addService(Discovery.service, {
    Stream: (call: grpc.ServerDuplexStream<SidecarMessage, ControlMessage>) => {
      const entry = { call, subs: new Set<string>() };
      streams.add(entry);
      call.on('data', (m: SidecarMessage) => {
        if ('hello' in m && m.hello) {
          fc.hellos.push(m.hello);
          call.write({ directory });
          for (const k of m.hello.subscribe) {
            entry.subs.add(k);
            fc.subscriptions.add(k);
            send(call, k);
          }
        } else if ('subscribe' in m && m.subscribe) {
          for (const k of m.subscribe.services) {
            entry.subs.add(k);
            fc.subscriptions.add(k);
            send(call, k);
          }
        } else if ('ack' in m && m.ack) fc.acks.push(m.ack);
      });
      call.on('error', () => {});
      call.on('end', () => {
        streams.delete(entry);
        call.end();
      });
      call.on('cancelled', () => streams.delete(entry));
    },
  });
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(anchor.certPem), [{ private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certPem + issuer.certPem) }], false);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(`${opts.host}:${opts.port ?? 0}`, creds, (e, p) => (e ? reject(e) : resolve(p))));
  fc.address = `${opts.host}:${port}`;
  return fc;
}

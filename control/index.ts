// control/: sources → store → compile → views pushed over gRPC; the identity
// service that signs sidecar CSRs; the admin listener. startControl() runs the
// local-mode control plane (`weft control`, `weft up`).
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { KubeConfig } from '@kubernetes/client-node';
import { PORTS, weftV1 } from '../api/index.js';
import { certValidity, renewAt, splitPemBundle, type Pem } from '../certs/index.js';
import { createAdminServer } from './admin.js';
import { compile } from './compile.js';
import { discoveryDefinition, discoveryServer } from './discovery-server.js';
import { bootstrapTokenAuthenticator, identityHandlers, type Authenticator } from './identity-server.js';
import { ControlMetrics } from './metrics.js';
import { PushEngine, type PushReport } from './push.js';
import { Registry } from './registry.js';
import { FileSource } from './source-files.js';
import { loadOrCreateState, loadOrIssueServingCert, REGISTRY_FILE, writeControlAddress, type ServingCert } from './state.js';
import { Store } from './store.js';
import type { CompileResult, ConfigError } from './types.js';

export * from './types.js';
export { compile } from './compile.js';
export { validateResource } from './validate.js';
export { loadDirectory, parseFile, FileSource, type FileSourceOptions } from './source-files.js';
export { Store, keyOf, resourceKey } from './store.js';
export { Registry, type RegistryEntry } from './registry.js';
export { PushEngine, type PushReport } from './push.js';
export { ControlMetrics } from './metrics.js';
export { bootstrapTokenAuthenticator, type Authenticator, type AuthResult, type Authenticated } from './identity-server.js';
export type { ResourcesResponse } from './admin.js';
export { loadOrCreateState, CONTROL_SERVER_NAME, type ControlState } from './state.js';
// What `weft get`/`describe` (cli/describe.ts) recompile from: the Service-parent test of compile.
export { isServiceParent } from './compile-routes.js';
export { carryTransitionTimes, carryRouteStatusTimes, carryPolicyStatusTimes, mergeRouteStatus, mergePolicyStatus } from './status.js';
export { parseDuration, formatDuration } from './duration.js';

export interface ControlOptions {
  /** YAML directory source (local mode). */
  configDir?: string;
  stateDir: string;
  /** gRPC (Discovery, Identity), "host:port"; default 127.0.0.1:7443; port 0 picks one. */
  listen?: string;
  /** Admin HTTP, "host:port"; default 127.0.0.1:7091. */
  adminListen?: string;
  trustDomain?: string;
  log?: (line: string) => void;
  /** Who may certify: default the STATE bootstrap token (local mode). */
  authenticate?: Authenticator;
  /** How long a disconnected sidecar stays registered (ms, default 10 s). */
  registrationGraceMs?: number;
  /** How long registrations reloaded from STATE wait for their sidecar (ms, default 30 s). */
  provisionalMs?: number;
  /**
   * Local mode registers connected sidecars as endpoints of selector Services
   * (default true). Kubernetes mode takes endpoints from EndpointSlices instead.
   */
  registerWorkloads?: boolean;
  /** Kubernetes: a mounted issuer directory (certs loadIssuerDir) instead of STATE/ca. */
  issuerDir?: string;
  /** Kubernetes: the session key every replica shares (base64), instead of STATE/session-key. */
  sessionKey?: string;
  /**
   * More sources and hooks (Kubernetes mode): called once the store exists and
   * awaited before the first compile, so its initial list is in it.
   */
  extend?: (ctx: { store: Store; trustBundle: () => string; log: (line: string) => void }) => Promise<ControlExtension>;
}

export interface ControlExtension {
  /** Replaces the bootstrap-token check of Identity/Certify (e.g. TokenReview). */
  authenticate?: Authenticator;
  /** After every compile (route status writers). */
  onCompiled?: (result: CompileResult) => void;
  stop?: () => Promise<void>;
}

export interface ControlHandle {
  grpcAddress: string;
  adminAddress: string;
  /** Config errors now: sources and compile. */
  errors(): ConfigError[];
  store: Store;
  engine: PushEngine;
  registry: Registry;
  metrics: ControlMetrics;
  /** Last completed push (change → last ACK), for logs and tests. */
  lastPush(): PushReport | undefined;
  close(): Promise<void>;
}

/**
 * Kubernetes mode as a startControl extension: the API source (awaited until
 * its first full list), the Lease-guarded route status writer, the trust
 * anchor publisher and the TokenReview authenticator. Loaded on demand so
 * local mode never loads the Kubernetes client.
 */
export function kubernetesExtension(o: {
  /** This replica's name in the Lease (POD_NAME). */
  identity: string;
  leaseNamespace?: string;
  /** Default: in-cluster config, else KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
}): NonNullable<ControlOptions['extend']> {
  return async ({ store, trustBundle, log }) => {
    const { startKubernetesMode } = await import('./kubernetes-mode.js');
    const km = await startKubernetesMode({
      store,
      identity: o.identity,
      trustBundle,
      log: (l) => log(`kubernetes: ${l}`),
      ...(o.leaseNamespace ? { leaseNamespace: o.leaseNamespace } : {}),
      ...(o.kubeConfig ? { kubeConfig: o.kubeConfig } : {}),
    });
    return {
      authenticate: km.authenticate,
      onCompiled: (r) => km.onCompiled(r.statuses),
      stop: () => km.stop(),
    };
  };
}

export function splitHostPort(addr: string, defaultPort: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(addr) ?? /^([^:]*):(\d+)$/.exec(addr);
  if (m) return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
  if (/^\d+$/.test(addr)) return { host: '127.0.0.1', port: Number(addr) };
  return { host: addr || '127.0.0.1', port: defaultPort };
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Serves control's certificate and the trust bundle to grpc-js through its
 * certificate-provider credentials: unlike createSsl, they request a client
 * certificate without requiring one (Identity must serve sidecars that have
 * none yet; Discovery checks it per stream), and they let the serving
 * certificate rotate without a restart.
 */
class StaticCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  constructor(
    private ca: Buffer,
    private identity: { certificate: Buffer; privateKey: Buffer },
  ) {}
  update(ca: Buffer, identity: { certificate: Buffer; privateKey: Buffer }): void {
    this.ca = ca;
    this.identity = identity;
    for (const l of this.caListeners) l({ caCertificate: this.ca });
    for (const l of this.idListeners) l(this.identity);
  }
  // grpc-js registers its watcher only after adding these listeners: answer on the next tick.
  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    process.nextTick(() => this.caListeners.has(l) && l({ caCertificate: this.ca }));
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.add(l);
    process.nextTick(() => this.idListeners.has(l) && l(this.identity));
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.delete(l);
  }
}

function identityOf(c: ServingCert, issuer: Pem): { certificate: Buffer; privateKey: Buffer } {
  return { certificate: Buffer.from(c.certPem + issuer.certPem), privateKey: Buffer.from(c.keyPem) };
}

export async function startControl(opts: ControlOptions): Promise<ControlHandle> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const state = loadOrCreateState(opts.stateDir, {
    ...(opts.trustDomain !== undefined ? { trustDomain: opts.trustDomain } : {}),
    ...(opts.issuerDir !== undefined ? { issuerDir: opts.issuerDir } : {}),
    ...(opts.sessionKey !== undefined ? { sessionKey: opts.sessionKey } : {}),
  });
  const listen = splitHostPort(opts.listen ?? `127.0.0.1:${PORTS.controlGrpc}`, PORTS.controlGrpc);
  const adminListen = splitHostPort(opts.adminListen ?? `127.0.0.1:${PORTS.controlAdmin}`, PORTS.controlAdmin);

  const metrics = new ControlMetrics();
  // The anchor that expires first is the one that matters.
  const anchorExpiry = Math.min(...splitPemBundle(state.trustBundlePem).map((c) => certValidity(c).notAfter.getTime()));
  if (Number.isFinite(anchorExpiry)) metrics.anchorExpiry.set(anchorExpiry / 1000);
  metrics.issuerExpiry.set(certValidity(state.issuer.certPem).notAfter.getTime() / 1000);

  const store = new Store({ sessionKey: state.sessionKey });
  const registry = new Registry({
    file: join(state.stateDir, REGISTRY_FILE),
    ...(opts.registrationGraceMs !== undefined ? { graceMs: opts.registrationGraceMs } : {}),
    ...(opts.provisionalMs !== undefined ? { provisionalMs: opts.provisionalMs } : {}),
    onChange: (list) => store.setRegistered(list),
    log,
  });
  const registerWorkloads = opts.registerWorkloads ?? true;
  const reloaded = registerWorkloads ? registry.load() : 0;
  if (reloaded > 0) log(`registry: ${reloaded} workload(s) from the previous run kept while their sidecars reconnect`);

  let fileSource: FileSource | undefined;
  const FILES = 'files';
  if (opts.configDir) {
    const dir = opts.configDir;
    fileSource = new FileSource({
      dir,
      log,
      onUpdate: (resources, errors, changedAt) => store.replaceSource(`${FILES}:${dir}`, resources, errors, changedAt),
    });
    await fileSource.start();
  }

  let extension: ControlExtension = {};
  if (opts.extend) extension = await opts.extend({ store, trustBundle: () => state.trustBundlePem, log });

  const engine = new PushEngine({
    store,
    compile,
    trustBundle: () => state.trustBundlePem,
    metrics,
    log,
    encode: discoveryDefinition().encode,
  });
  if (extension.onCompiled) {
    const hook = extension.onCompiled;
    engine.on('compiled', (r: CompileResult) => {
      try {
        hook(r);
      } catch (e) {
        log(`control: onCompiled hook failed: ${(e as Error).message}`);
      }
    });
  }
  engine.start();

  const errors = (): ConfigError[] => [...store.errors(), ...engine.compileErrors()];
  metrics.beforeScrape = () => {
    for (const [src, synced] of Object.entries(store.sourcesSynced())) metrics.setSourceSynced(src, synced);
    metrics.configErrors.set(errors().length);
  };

  // gRPC: Discovery and Identity on one TLS port.
  let serving = loadOrIssueServingCert(state, listen.host);
  const provider = new StaticCertificateProvider(Buffer.from(state.trustBundlePem), identityOf(serving, state.issuer));
  const renewServing = (): NodeJS.Timeout => {
    const v = certValidity(serving.certPem);
    const t = setTimeout(() => {
      serving = loadOrIssueServingCert(state, listen.host);
      provider.update(Buffer.from(state.trustBundlePem), identityOf(serving, state.issuer));
      log('control: serving certificate renewed');
      renewTimer = renewServing();
    }, Math.max(1000, Math.min(renewAt(v.notBefore, v.notAfter).getTime() - Date.now(), 2 ** 31 - 1)));
    t.unref();
    return t;
  };
  let renewTimer = renewServing();

  const creds = grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
  const server = new grpc.Server({
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  const { Identity } = weftV1();
  const discovery = discoveryServer({
    engine,
    ...(registerWorkloads ? { registry } : {}),
    trustDomain: state.trustDomain,
    log,
  });
  server.addService(discovery.definition, discovery.handlers);
  server.addService(
    Identity.service,
    identityHandlers({
      issuer: () => state.issuer,
      trustBundle: () => state.trustBundlePem,
      trustDomain: state.trustDomain,
      authenticate: opts.authenticate ?? extension.authenticate ?? bootstrapTokenAuthenticator(state.bootstrapToken),
      metrics,
      log,
    }),
  );
  const grpcPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(joinHostPort(listen.host, listen.port), creds, (err, port) => (err ? reject(err) : resolve(port)));
  }).catch((e: unknown) => {
    clearTimeout(renewTimer);
    fileSource?.close();
    engine.close();
    registry.close();
    void extension.stop?.();
    throw new Error(`control: cannot listen on ${joinHostPort(listen.host, listen.port)}: ${(e as Error).message}`);
  });
  const grpcAddress = joinHostPort(listen.host, grpcPort);

  let grpcUp = true;
  const admin: HttpServer = createAdminServer({
    metrics,
    ready: () => grpcUp && engine.result() !== undefined && Object.values(store.sourcesSynced()).every(Boolean),
    resources: () => store.resources(),
    statuses: () => engine.result()?.statuses ?? [],
    errors,
    registered: () => registry.all(),
    view: (service, consumer) => engine.viewBytes(service, consumer),
    info: () => ({
      version: engine.directoryVersion(),
      connected: engine.connected(),
      lastPush: engine.lastPush() ?? null,
    }),
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(adminListen.port, adminListen.host, () => {
      admin.off('error', reject);
      resolve();
    });
  }).catch((e: unknown) => {
    grpcUp = false;
    server.forceShutdown();
    clearTimeout(renewTimer);
    fileSource?.close();
    engine.close();
    registry.close();
    void extension.stop?.();
    throw new Error(`control: cannot listen on admin ${joinHostPort(adminListen.host, adminListen.port)}: ${(e as Error).message}`);
  });
  const a = admin.address() as AddressInfo;
  const adminAddress = joinHostPort(adminListen.host, a.port);
  writeControlAddress(state.stateDir, grpcAddress);
  log(`control: gRPC (Discovery, Identity) on ${grpcAddress}, admin on http://${adminAddress}, state in ${state.stateDir}`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      grpcUp = false;
      clearTimeout(renewTimer);
      fileSource?.close();
      registry.close(); // persist first: streams ending below must not empty the registry
      discovery.closeAll();
      engine.close();
      await extension.stop?.();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await new Promise<void>((resolve) => {
        admin.close(() => resolve());
        admin.closeAllConnections();
      });
    })();
    return closing;
  };

  return {
    grpcAddress,
    adminAddress,
    errors,
    store,
    engine,
    registry,
    metrics,
    lastPush: () => engine.lastPush(),
    close,
  };
}

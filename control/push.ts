// The push engine: store changes → one debounced compile → per (service,
// consumer namespace) views serialized once → only the views whose bytes
// changed go out, only to the streams subscribed to them, all sharing the same
// Buffer. Every message carries a version derived from its content (a hash
// of the bytes), so every control replica, and a control after a restart,
// gives the same config the same version: a sidecar that reconnects to
// another replica says what it holds in its Hello and is sent nothing it
// already has. Each stream ACKs or
// NACKs it, and the time from the change to the last ACK of what it caused is
// the push fan-out time (weft_control_push_duration_seconds).
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { ControlMessage, DirectoryMsg, ServiceEntryMsg } from '../api/index.js';
import { INBOUND_RESOURCE } from '../api/index.js';
import type { PodRef } from './compile-authz.js';
import type { ControlMetrics } from './metrics.js';
import type { Store } from './store.js';
import { formatConfigError, type CompileResult, type ConfigError, type StoreSnapshot } from './types.js';

export const DIRECTORY_RESOURCE = 'directory';
export function serviceResource(service: string): string {
  return `service:${service}`;
}

/** One sidecar's stream, as the engine sees it. */
export interface PushTarget {
  /** For logs: "ns/pod (ip)". */
  readonly name: string;
  /** The sidecar's namespace: views are compiled as seen from it. */
  readonly namespace: string;
  /** A message, or the same message already encoded (see PushEngineOptions.encode). */
  write(msg: ControlMessage | Buffer): void;
  /**
   * The sidecar's pod, when it enforces inbound authorization (Hello feature
   * "inbound-authz"): it is sent its own InboundUpdate.
   */
  readonly pod?: PodRef;
}

export interface PushEngineOptions {
  store: Store;
  compile: (snapshot: StoreSnapshot) => CompileResult;
  /** PEM anchors sent in the directory (read at every compile: anchors rotate). */
  trustBundle: () => string;
  /** Fingerprint of the issuer now signing leaves, sent in the directory: sidecars renew when theirs differs. */
  issuerSha256?: () => string;
  metrics: ControlMetrics;
  log: (line: string) => void;
  /** Coalesces bursts of store changes into one compile. */
  debounceMs?: number;
  /**
   * Encodes a ControlMessage once, so every subscriber is written the same
   * bytes (a big directory is not re-encoded per stream). Without it,
   * targets are written message objects.
   */
  encode?: (msg: ControlMessage) => Buffer;
}

export interface PushReport {
  /** Change → last ACK (or NACK / stream gone) of the updates it caused. */
  durationMs: number;
  messages: number;
  sidecars: number;
  nacks: number;
  /** Directory version current when the push started. */
  version: string;
}

interface Round {
  changeAt: number;
  pending: number;
  messages: number;
  nacks: number;
  streams: Set<StreamState>;
  version: string;
  compiled: boolean;
  done: boolean;
}

interface Pending {
  version: string;
  round: Round | undefined;
}

interface ViewEntry {
  service: string;
  consumerNamespace: string;
  /** null: the Service does not exist (sent as removed). */
  bytes: Buffer | null;
  version: string;
  subscribers: Set<StreamState>;
  /** The update message, encoded once per version. */
  encoded: Buffer | undefined;
}

class StreamState {
  readonly subs = new Set<string>();
  readonly sent = new Map<string, string>(); // resource → version last written
  readonly pending = new Map<string, Pending>();
  /** The InboundUpdate bytes last sent (pod targets only). */
  inboundBytes: Buffer | undefined;
  closed = false;
  constructor(readonly target: PushTarget) {}
}

/** What a stream handler drives: subscriptions, ACKs, and the end of the stream. */
export interface StreamHandle {
  subscribe(services: string[]): void;
  unsubscribe(services: string[]): void;
  ack(resource: string, version: string, error: string): void;
  close(): void;
}

const EMPTY = Buffer.alloc(0);

/** Directory fan-out budget: streams × directory size per second (pacing under churn). */
const DIRECTORY_EGRESS_BYTES_PER_S = 50e6;

/** A version named by the content: the same bytes get the same version on every replica. */
export function contentVersion(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex').slice(0, 16);
}

function viewVersion(bytes: Buffer | null): string {
  return bytes === null ? contentVersion('\u0000removed') : contentVersion(bytes);
}

function viewKey(service: string, consumerNamespace: string): string {
  return `${service}\u0000${consumerNamespace}`;
}

export class PushEngine extends EventEmitter {
  private readonly streams = new Set<StreamState>();
  private readonly views = new Map<string, ViewEntry>();
  private compiled: CompileResult | undefined;
  private directory: DirectoryMsg | undefined;
  private directoryEncoded: Buffer | undefined;
  /** Time the last recompile took (compile + fan-out writes), and when it ended: paces recompiles under churn. */
  private lastWorkMs = 0;
  /** Directory pacing: no new directory before this (performance.now()). */
  private directoryNotBefore = 0;
  private directoryTimer: NodeJS.Timeout | undefined;
  private deferredChangeAt: number | undefined;
  private lastEnd = 0;
  private directoryKey = '';
  private timer: NodeJS.Timeout | undefined;
  private changeAt: number | undefined;
  private readonly debounceMs: number;
  private readonly unsubscribeStore: () => void;
  private compileErrorKeys = new Set<string>();
  private compileErrs: ConfigError[] = [];
  private lastReport: PushReport | undefined;
  private closed = false;

  constructor(private readonly opts: PushEngineOptions) {
    super();
    this.debounceMs = opts.debounceMs ?? 15;
    this.unsubscribeStore = opts.store.onChange((at) => this.schedule(at));
  }

  /** Something compile does not see changed (the trust bundle, the issuer): recompile and resend the directory. */
  refresh(): void {
    this.schedule(performance.now());
  }

  /** Compiles once now (before the server accepts streams). */
  start(): void {
    this.recompile(undefined);
  }

  result(): CompileResult | undefined {
    return this.compiled;
  }

  compileErrors(): ConfigError[] {
    return this.compileErrs;
  }

  directoryVersion(): string {
    return this.directory?.version ?? '';
  }

  lastPush(): PushReport | undefined {
    return this.lastReport;
  }

  connected(): number {
    return this.streams.size;
  }

  /** The serialized view a subscriber in `consumerNamespace` would get (debugging, /config). */
  viewBytes(service: string, consumerNamespace: string): Buffer | null {
    const e = this.views.get(viewKey(service, consumerNamespace));
    if (e) return e.bytes;
    return this.render(service, consumerNamespace);
  }

  /**
   * `known`: resource → version the sidecar already holds (Hello.versions,
   * after a reconnect); what it holds is not sent again.
   */
  attach(target: PushTarget, known?: Record<string, string>): StreamHandle {
    const st = new StreamState(target);
    for (const [resource, version] of Object.entries(known ?? {})) if (version) st.sent.set(resource, version);
    this.streams.add(st);
    this.opts.metrics.connectedSidecars.set(this.streams.size);
    if (this.directory) this.send(st, DIRECTORY_RESOURCE, this.directory.version, () => this.directoryPayload(), undefined);
    this.sendInbound(st, undefined);
    return {
      subscribe: (services) => this.subscribe(st, services),
      unsubscribe: (services) => this.unsubscribe(st, services),
      ack: (resource, version, error) => this.ack(st, resource, version, error),
      close: () => this.detach(st),
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.directoryTimer) clearTimeout(this.directoryTimer);
    this.timer = undefined;
    this.unsubscribeStore();
    for (const st of [...this.streams]) this.detach(st);
  }


  private schedule(at: number): void {
    if (this.closed) return;
    this.changeAt = this.changeAt === undefined ? at : Math.min(this.changeAt, at);
    if (this.timer) return;
    // Under churn (a storm of sidecars connecting to a big mesh) leave at
    // least twice the last recompile's cost between recompiles, so pushing
    // never takes more than a third of control's time.
    const now = performance.now();
    const delay = Math.max(this.debounceMs, Math.min(1000, this.lastEnd + 2 * this.lastWorkMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const at = this.changeAt;
      this.changeAt = undefined;
      this.recompile(at);
    }, delay);
  }

  private deferDirectory(changeAt: number, ms: number): void {
    this.deferredChangeAt = this.deferredChangeAt === undefined ? changeAt : Math.min(this.deferredChangeAt, changeAt);
    if (this.directoryTimer) return;
    this.directoryTimer = setTimeout(() => {
      this.directoryTimer = undefined;
      const at = this.deferredChangeAt!;
      this.deferredChangeAt = undefined;
      this.schedule(at);
    }, Math.ceil(ms));
  }

  private directoryPayload(): ControlMessage | Buffer {
    const msg: ControlMessage = { directory: this.directory! };
    if (!this.opts.encode) return msg;
    this.directoryEncoded ??= this.opts.encode(msg);
    return this.directoryEncoded;
  }

  private viewPayload(entry: ViewEntry): ControlMessage | Buffer {
    const msg: ControlMessage = {
      update: {
        service: entry.service,
        version: entry.version,
        config_json: entry.bytes ?? EMPTY,
        removed: entry.bytes === null,
      },
    };
    if (!this.opts.encode) return msg;
    entry.encoded ??= this.opts.encode(msg);
    return entry.encoded;
  }

  private render(service: string, consumerNamespace: string): Buffer | null {
    const view = this.compiled?.view(service, consumerNamespace);
    return view === undefined ? null : Buffer.from(JSON.stringify(view));
  }

  private recompile(changeAt: number | undefined): void {
    const snap = this.opts.store.snapshot();
    const t0 = performance.now();
    let result: CompileResult;
    try {
      result = this.opts.compile(snap);
    } catch (e) {
      // A throw from compile is a bug, not bad input: keep serving what we have.
      this.opts.log(`compile failed (bug; keeping the previous config): ${(e as Error).stack ?? String(e)}`);
      return;
    }
    this.opts.metrics.compileDuration.observe((performance.now() - t0) / 1000);
    this.compiled = result;
    this.noteCompileErrors(result.errors);
    this.emit('compiled', result);

    const round: Round = {
      changeAt: changeAt ?? performance.now(),
      pending: 0,
      messages: 0,
      nacks: 0,
      streams: new Set(),
      version: '',
      compiled: false,
      done: false,
    };
    const tracked = changeAt !== undefined ? round : undefined;

    const services: ServiceEntryMsg[] = result.directory.map((d) => ({
      namespace: d.namespace,
      name: d.name,
      cluster_ip: d.clusterIP,
      ports: d.ports.map((p) => ({ name: p.name, port: p.port, target_port: p.targetPort, app_protocol: p.appProtocol })),
      meshed: d.meshed,
    }));
    const trust = this.opts.trustBundle();
    const issuer = this.opts.issuerSha256?.() ?? '';
    const key = JSON.stringify([services, trust, issuer]);
    const now = performance.now();
    if (key !== this.directoryKey || !this.directory) {
      if (this.directory && now < this.directoryNotBefore) {
        // Every stream gets the whole directory: under churn (sidecars
        // connecting by the hundred) pace it, views still go out at once.
        this.deferDirectory(changeAt ?? now, this.directoryNotBefore - now);
      } else {
        this.directoryKey = key;
        this.directory = { version: contentVersion(key), services, trust_bundle: trust, ...(issuer ? { issuer_sha256: issuer } : {}) };
        this.directoryEncoded = undefined;
        this.opts.metrics.setConfigVersion(this.directory.version);
        for (const st of this.streams) {
          this.send(st, DIRECTORY_RESOURCE, this.directory.version, () => this.directoryPayload(), tracked);
        }
        const payload = this.streams.size > 0 ? this.directoryPayload() : undefined;
        const bytes = Buffer.isBuffer(payload) ? payload.length : key.length;
        this.directoryNotBefore = now + Math.min(1000, ((this.streams.size * bytes) / DIRECTORY_EGRESS_BYTES_PER_S) * 1000);
      }
    }
    round.version = this.directory!.version;

    for (const entry of this.views.values()) {
      const bytes = this.render(entry.service, entry.consumerNamespace);
      const same = bytes === null ? entry.bytes === null : entry.bytes !== null && bytes.equals(entry.bytes);
      if (same) continue;
      entry.bytes = bytes;
      entry.version = viewVersion(bytes);
      entry.encoded = undefined;
      for (const st of entry.subscribers) this.sendView(st, entry, tracked);
    }
    for (const st of this.streams) this.sendInbound(st, tracked);
    round.compiled = true;
    this.lastEnd = performance.now();
    this.lastWorkMs = this.lastEnd - t0;
    if (tracked) this.maybeFinish(tracked);
  }

  private noteCompileErrors(errors: ConfigError[]): void {
    const keys = new Set(errors.map(formatConfigError));
    for (const e of errors) {
      const k = formatConfigError(e);
      if (!this.compileErrorKeys.has(k)) this.opts.log(`config error: ${k}`);
    }
    this.compileErrorKeys = keys;
    this.compileErrs = errors;
  }

  private subscribe(st: StreamState, services: string[]): void {
    if (st.closed) return;
    for (const service of services) {
      if (!service || st.subs.has(service)) continue;
      st.subs.add(service);
      const k = viewKey(service, st.target.namespace);
      let entry = this.views.get(k);
      if (!entry) {
        entry = {
          service,
          consumerNamespace: st.target.namespace,
          bytes: this.render(service, st.target.namespace),
          version: '',
          subscribers: new Set(),
          encoded: undefined,
        };
        entry.version = viewVersion(entry.bytes);
        this.views.set(k, entry);
      }
      entry.subscribers.add(st);
      this.sendView(st, entry, undefined);
    }
  }

  private unsubscribe(st: StreamState, services: string[]): void {
    for (const service of services) {
      if (!st.subs.delete(service)) continue;
      this.dropSubscriber(st, service);
      st.sent.delete(serviceResource(service));
    }
  }

  private dropSubscriber(st: StreamState, service: string): void {
    const k = viewKey(service, st.target.namespace);
    const entry = this.views.get(k);
    if (!entry) return;
    entry.subscribers.delete(st);
    if (entry.subscribers.size === 0) this.views.delete(k);
    const p = st.pending.get(serviceResource(service));
    if (p) {
      st.pending.delete(serviceResource(service));
      this.settle(p.round);
    }
  }

  /** The pod's inbound authorization view, when it changed since the last one sent. */
  private sendInbound(st: StreamState, round: Round | undefined): void {
    const pod = st.target.pod;
    if (!pod || !this.compiled || st.closed) return;
    let bytes: Buffer;
    try {
      bytes = Buffer.from(JSON.stringify(this.compiled.inbound(pod)));
    } catch (e) {
      this.opts.log(`inbound view for ${st.target.name} failed (bug): ${(e as Error).message}`);
      return;
    }
    if (st.inboundBytes && st.inboundBytes.equals(bytes)) return;
    st.inboundBytes = bytes;
    // Content-derived like every version (HA: any replica names the same view alike).
    const version = contentVersion(bytes);
    this.send(st, INBOUND_RESOURCE, version, () => {
      const msg: ControlMessage = { inbound: { version, config_json: bytes } };
      return this.opts.encode ? this.opts.encode(msg) : msg;
    }, round);
  }

  /** The inbound view `pod` would get now (control /config, describe). */
  inboundView(pod: PodRef): unknown {
    return this.compiled?.inbound(pod);
  }

  private sendView(st: StreamState, entry: ViewEntry, round: Round | undefined): void {
    this.send(st, serviceResource(entry.service), entry.version, () => this.viewPayload(entry), round);
  }

  private send(
    st: StreamState,
    resource: string,
    version: string,
    payload: () => ControlMessage | Buffer,
    round: Round | undefined,
  ): void {
    if (st.closed || st.sent.get(resource) === version) return;
    st.sent.set(resource, version);
    const prev = st.pending.get(resource);
    st.pending.set(resource, { version, round });
    if (prev) this.settle(prev.round); // superseded before it was ACKed
    if (round) {
      round.pending++;
      round.messages++;
      round.streams.add(st);
    }
    try {
      st.target.write(payload());
    } catch (e) {
      this.opts.log(`push to ${st.target.name} failed: ${(e as Error).message}`);
    }
  }

  private ack(st: StreamState, resource: string, version: string, error: string): void {
    if (error) {
      this.opts.metrics.nack(error);
      this.opts.log(`NACK from ${st.target.name} for ${resource} version ${version}: ${error}`);
    }
    const p = st.pending.get(resource);
    if (!p || p.version !== version) return; // an old version, or one we never sent
    st.pending.delete(resource);
    if (error && p.round) p.round.nacks++;
    this.settle(p.round);
  }

  private settle(round: Round | undefined): void {
    if (!round) return;
    round.pending--;
    this.maybeFinish(round);
  }

  private maybeFinish(round: Round): void {
    if (round.done || !round.compiled || round.pending > 0 || round.messages === 0) return;
    round.done = true;
    const report: PushReport = {
      durationMs: performance.now() - round.changeAt,
      messages: round.messages,
      sidecars: round.streams.size,
      nacks: round.nacks,
      version: round.version,
    };
    this.lastReport = report;
    this.opts.metrics.pushDuration.observe(report.durationMs / 1000);
    this.opts.log(
      `pushed ${report.messages} update(s) to ${report.sidecars} sidecar(s): change → last ACK ${report.durationMs.toFixed(1)} ms` +
        (report.nacks ? ` (${report.nacks} NACK)` : ''),
    );
    this.emit('pushed', report);
  }

  private detach(st: StreamState): void {
    if (st.closed) return;
    st.closed = true;
    this.streams.delete(st);
    this.opts.metrics.connectedSidecars.set(this.streams.size);
    for (const service of st.subs) {
      const k = viewKey(service, st.target.namespace);
      const entry = this.views.get(k);
      if (!entry) continue;
      entry.subscribers.delete(st);
      if (entry.subscribers.size === 0) this.views.delete(k);
    }
    const pend = [...st.pending.values()];
    st.pending.clear();
    for (const p of pend) this.settle(p.round);
  }
}

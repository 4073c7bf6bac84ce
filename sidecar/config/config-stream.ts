// The config stream (weft.v1.Discovery/Stream), with the leaf as client
// certificate: Hello, then the directory and the updates of subscribed
// Services, each ACKed or NACKed. While control is away the last good config
// keeps serving; the stream reconnects with jittered backoff and re-announces
// every subscription in its Hello.
import * as grpc from '@grpc/grpc-js';
import { FEATURE_INBOUND_AUTHZ, INBOUND_RESOURCE, WEFT_VERSION, weftV1, type ControlMessage, type HelloMsg, type InboundUpdateMsg, type SidecarMessage } from '../../api/index.js';
import { CONTROL_SERVER_NAME, nextBackoff, type IdentityHolder } from './bootstrap.js';
import type { MeshState } from './config-apply.js';
import type { SidecarMetrics } from '../admin/metrics.js';
import { controlAddresses, controlAt } from './control-address.js';

export interface ConfigStreamOptions {
  control: string;
  identity: IdentityHolder;
  state: MeshState;
  metrics: SidecarMetrics;
  hello: Omit<HelloMsg, 'subscribe' | 'sidecar_version'>;
  subscribe: string[];
  log: (line: string) => void;
  /** Inbound authorization (authz-state.ts): when set, Hello asks control for this pod's InboundUpdate. */
  inbound?: { apply(msg: InboundUpdateMsg): string | undefined; readonly version?: string | undefined };
}

export class ConfigStream {
  private readonly subscribed = new Set<string>();
  private client: grpc.Client | undefined;
  private call: grpc.ClientDuplexStream<SidecarMessage, ControlMessage> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private backoff = 0;
  private leaving: string | undefined;
  /** Connection attempts so far: picks the control replica (controlAt). */
  private attempt = 0;
  connected = false;
  /** Last error sent in a NACK per resource, for /config. */
  readonly lastNack = new Map<string, string>();

  constructor(private readonly opts: ConfigStreamOptions) {
    for (const s of opts.subscribe) this.subscribed.add(s);
  }

  start(): void {
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.teardown();
  }

  /**
   * Draining: tell control this sidecar is leaving (its endpoints leave the
   * other sidecars' configs at once). The stream stays up for the app's
   * outbound calls; a reconnect says draining in its Hello and repeats it.
   */
  goodbye(reason: string): void {
    if (this.leaving !== undefined) return;
    this.leaving = reason;
    this.call?.write({ goodbye: { reason } });
  }

  isSubscribed(key: string): boolean {
    return this.subscribed.has(key);
  }

  /** Subscribes to a Service (first use); a no-op when already subscribed. */
  subscribe(key: string): void {
    if (this.subscribed.has(key)) return;
    this.subscribed.add(key);
    this.call?.write({ subscribe: { services: [key], unsubscribe: [] } });
  }

  private teardown(): void {
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.removeAllListeners();
      call.on('error', () => {});
      call.cancel();
    }
    this.client?.close();
    this.client = undefined;
    this.setConnected(false);
  }

  private setConnected(v: boolean): void {
    this.connected = v;
    this.opts.metrics.controlConnected.set(v ? 1 : 0);
  }

  private scheduleReconnect(why: string): void {
    if (this.closed || this.timer) return;
    this.teardown();
    // The next replica (with several --control addresses) at once; back off once around the list.
    this.attempt++;
    const many = controlAddresses(this.opts.control).length > 1;
    const wait = many && this.attempt % controlAddresses(this.opts.control).length !== 0 ? 50 + Math.random() * 100 : nextBackoff(this.backoff);
    if (!many || this.attempt % controlAddresses(this.opts.control).length === 0) this.backoff = wait;
    this.opts.log(`config stream down (${why}); reconnecting in ${Math.round(wait)} ms`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, wait);
  }

  private connect(): void {
    if (this.closed) return;
    const id = this.opts.identity.current;
    if (!id) {
      void this.opts.identity.ready.then(() => this.connect());
      return;
    }
    const { Discovery } = weftV1();
    const creds = grpc.credentials.createSsl(Buffer.from(id.bundlePem), Buffer.from(id.keyPem), Buffer.from(id.certChainPem));
    const address = controlAt(this.opts.control, this.attempt);
    const client = new Discovery(address, creds, {
      'grpc.ssl_target_name_override': CONTROL_SERVER_NAME,
      'grpc.default_authority': CONTROL_SERVER_NAME,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.client = client;
    const call = (client as unknown as { Stream: () => grpc.ClientDuplexStream<SidecarMessage, ControlMessage> }).Stream();
    this.call = call;
    const up = (): void => {
      if (this.connected) return;
      this.setConnected(true);
      this.opts.log(`config stream connected to ${address}`);
    };
    // Control (0.2.0) sends headers once it accepted the Hello: connected even if nothing needs pushing.
    call.on('metadata', up);
    call.on('data', (m: ControlMessage) => {
      up();
      this.backoff = 0;
      this.onMessage(m);
    });
    call.on('error', (e: Error) => this.scheduleReconnect(e.message));
    call.on('end', () => this.scheduleReconnect('control ended the stream'));
    call.write({
      hello: {
        ...this.opts.hello,
        sidecar_version: WEFT_VERSION,
        subscribe: [...this.subscribed],
        ...(this.opts.inbound ? { features: [FEATURE_INBOUND_AUTHZ] } : {}),

        ...(this.leaving !== undefined ? { draining: true } : {}),
        versions: this.heldVersions(),
      },
    });
    if (this.leaving !== undefined) call.write({ goodbye: { reason: this.leaving } });
  }

  /** What this sidecar holds (content versions): a reconnect, to any control replica, is sent only what differs. */
  private heldVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    const st = this.opts.state;
    if (st.directory) out.directory = st.directory.version;
    for (const [key, svc] of st.services) out[`service:${key}`] = svc.version;
    // The pod's inbound authorization too: a reconnect must not re-apply it.
    if (this.opts.inbound?.version) out[INBOUND_RESOURCE] = this.opts.inbound.version;
    return out;
  }

  private ack(resource: string, version: string, error: string | undefined): void {
    if (error) {
      this.lastNack.set(resource, error);
      this.opts.log(`NACK ${resource} ${version}: ${error}`);
    } else this.lastNack.delete(resource);
    this.call?.write({ ack: { resource, version, error: error ?? '' } });
  }

  private onMessage(m: ControlMessage): void {
    const kind = m.kind ?? ('directory' in m && m.directory ? 'directory' : 'update');
    if (kind === 'directory' && 'directory' in m && m.directory) {
      const d = m.directory;
      let err = this.opts.state.applyDirectory(d);
      if (!err && d.trust_bundle) err = this.opts.identity.setBundle(d.trust_bundle);
      if (!err && d.issuer_sha256) this.opts.identity.noteIssuer(d.issuer_sha256);
      this.ack('directory', d.version, err);
    } else if (kind === 'update' && 'update' in m && m.update) {
      const u = m.update;
      const err = this.opts.state.applyUpdate(u);
      this.ack(`service:${u.service}`, u.version, err);
    } else if (m.kind === 'inbound' && 'inbound' in m && m.inbound && this.opts.inbound) {
      const err = this.opts.inbound.apply(m.inbound);
      this.ack(INBOUND_RESOURCE, m.inbound.version, err);
    }
  }
}

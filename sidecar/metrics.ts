// Sidecar metrics (names and labels from api/metrics.ts).
//
// Request metrics are recorded per request, so they do not go through
// prom-client's label hashing (which re-validates and re-hashes all 19
// labels on every observe): each (route, backend, endpoint, status) gets a
// `RequestSeries` once, with its label text rendered once, and recording is
// two additions and a bucket increment. The low-rate metrics (config, certs,
// connections, detection) use prom-client. /metrics renders both.
import client from 'prom-client';
import { LATENCY_BUCKETS, REQUEST_LABELS, SIDECAR_METRICS } from '../api/index.js';

export type RequestLabelName = (typeof REQUEST_LABELS)[number];
export type RequestLabels = Record<RequestLabelName, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function renderLabels(l: RequestLabels): string {
  let s = '';
  for (const n of REQUEST_LABELS) s += `${s ? ',' : ''}${n}="${escapeLabel(l[n] ?? '')}"`;
  return s;
}

const NB = LATENCY_BUCKETS.length;

export class RequestSeries {
  count = 0;
  sum = 0;
  readonly buckets = new Float64Array(NB + 1);
  constructor(readonly labelText: string) {}
  record(seconds: number): void {
    this.count++;
    this.sum += seconds;
    let i = 0;
    while (i < NB && seconds > LATENCY_BUCKETS[i]!) i++;
    this.buckets[i]!++;
  }
}

/** Labels that depend on the endpoint chosen (outbound) or the caller (inbound). */
export interface PeerLabels {
  /** Unique per distinct label set; part of the series cache key. */
  id: number;
  namespace: string;
  workload: string;
  serviceAccount: string;
  identity: string;
  tls: boolean;
}

let nextPeerId = 1;
export function peerLabels(p: Omit<PeerLabels, 'id'>): PeerLabels {
  return { id: nextPeerId++, ...p };
}
export const NO_PEER: PeerLabels = peerLabels({ namespace: '', workload: '', serviceAccount: '', identity: '', tls: false });

/**
 * The series of one (direction, route, backend) context, keyed by peer and
 * status code. Built once per config element; series survive config swaps
 * because they live in the registry's table by label text.
 */
export class SeriesCache {
  private readonly byKey = new Map<number, RequestSeries>();
  constructor(
    private readonly metrics: SidecarMetrics,
    /** Every label except the peer's and the status. */
    private readonly base: Omit<RequestLabels, 'status_code' | 'status_class'>,
    /** Which side the peer labels describe: 'dst' (outbound) or 'src' (inbound). */
    private readonly peerSide: 'dst' | 'src',
  ) {}

  get(peer: PeerLabels, status: number, grpcStatus = ''): RequestSeries {
    const key = peer.id * 1000 + status + (grpcStatus ? (Number(grpcStatus) + 1) * 1e9 : 0);
    let s = this.byKey.get(key);
    if (!s) {
      const l: RequestLabels = { ...this.base, status_code: String(status), status_class: `${Math.floor(status / 100)}xx` } as RequestLabels;
      if (grpcStatus) l.grpc_status = grpcStatus;
      if (this.peerSide === 'dst') {
        if (peer.namespace) l.dst_namespace = peer.namespace;
        l.dst_workload = peer.workload;
        l.dst_service_account = peer.serviceAccount;
      } else {
        l.src_namespace = peer.namespace;
        l.src_workload = peer.workload;
        l.src_service_account = peer.serviceAccount;
      }
      l.peer_identity = peer.identity;
      l.tls = peer.tls ? 'true' : 'false';
      s = this.metrics.series(l);
      this.byKey.set(key, s);
    }
    return s;
  }
}

export class SidecarMetrics {
  readonly registry = new client.Registry();
  private readonly table = new Map<string, RequestSeries>();

  readonly tcpOpened = new client.Counter({ name: SIDECAR_METRICS.tcpOpenTotal, help: 'TCP connections opened', labelNames: ['direction', 'peer', 'tls'], registers: [this.registry] });
  readonly tcpClosed = new client.Counter({ name: SIDECAR_METRICS.tcpCloseTotal, help: 'TCP connections closed', labelNames: ['direction', 'peer', 'tls'], registers: [this.registry] });
  readonly tcpOpen = new client.Gauge({ name: SIDECAR_METRICS.tcpOpen, help: 'TCP connections open', labelNames: ['direction', 'peer', 'tls'], registers: [this.registry] });
  readonly tcpRead = new client.Counter({ name: SIDECAR_METRICS.tcpReadBytes, help: 'Bytes read from TCP connections', labelNames: ['direction', 'peer', 'tls'], registers: [this.registry] });
  readonly tcpWrite = new client.Counter({ name: SIDECAR_METRICS.tcpWriteBytes, help: 'Bytes written to TCP connections', labelNames: ['direction', 'peer', 'tls'], registers: [this.registry] });
  readonly configVersion = new client.Gauge({ name: SIDECAR_METRICS.configVersion, help: 'Version of each applied config resource (value 1)', labelNames: ['resource', 'version'], registers: [this.registry] });
  readonly configApplied = new client.Gauge({ name: SIDECAR_METRICS.configAppliedTimestamp, help: 'When a config update was last applied (unix seconds)', registers: [this.registry] });
  readonly applied = new client.Counter({ name: SIDECAR_METRICS.snapshotsApplied, help: 'Config updates applied', labelNames: ['resource_type'], registers: [this.registry] });
  readonly nacked = new client.Counter({ name: SIDECAR_METRICS.snapshotsNacked, help: 'Config updates rejected (NACKed)', labelNames: ['resource_type'], registers: [this.registry] });
  readonly certExpiry = new client.Gauge({ name: SIDECAR_METRICS.certExpiry, help: 'Expiry of certificates in use (unix seconds)', labelNames: ['kind', 'identity'], registers: [this.registry] });
  readonly detect = new client.Counter({ name: SIDECAR_METRICS.detectTotal, help: 'Protocol detection outcomes', labelNames: ['direction', 'protocol'], registers: [this.registry] });
  readonly controlConnected = new client.Gauge({ name: SIDECAR_METRICS.controlConnected, help: '1 while the config stream to control is up', registers: [this.registry] });

  private readonly versionLabels = new Map<string, string>();

  constructor() {
    this.controlConnected.set(0);
  }

  /** The series for one full label set (created on first use). */
  series(l: RequestLabels): RequestSeries {
    const text = renderLabels(l);
    let s = this.table.get(text);
    if (!s) this.table.set(text, (s = new RequestSeries(text)));
    return s;
  }

  setConfigVersion(resource: string, version: string): void {
    const prev = this.versionLabels.get(resource);
    if (prev !== undefined) this.configVersion.remove({ resource, version: prev });
    this.versionLabels.set(resource, version);
    this.configVersion.set({ resource, version }, 1);
    this.configApplied.set(Date.now() / 1000);
  }

  /** Counts one accepted connection; call the returned function when it closes. */
  connection(socket: { bytesRead: number; bytesWritten: number; once(ev: 'close', f: () => void): unknown }, direction: string, peer: string, tls: boolean): void {
    const labels = { direction, peer, tls: tls ? 'true' : 'false' };
    this.tcpOpened.inc(labels);
    this.tcpOpen.inc(labels);
    socket.once('close', () => {
      this.tcpClosed.inc(labels);
      this.tcpOpen.dec(labels);
      this.tcpRead.inc(labels, socket.bytesRead);
      this.tcpWrite.inc(labels, socket.bytesWritten);
    });
  }

  renderRequests(): string {
    const lines: string[] = [];
    lines.push(`# HELP ${SIDECAR_METRICS.requestsTotal} HTTP requests handled by the sidecar`, `# TYPE ${SIDECAR_METRICS.requestsTotal} counter`);
    for (const s of this.table.values()) lines.push(`${SIDECAR_METRICS.requestsTotal}{${s.labelText}} ${s.count}`);
    const h = SIDECAR_METRICS.requestDuration;
    lines.push(`# HELP ${h} Request latency as seen by the sidecar`, `# TYPE ${h} histogram`);
    for (const s of this.table.values()) {
      let cum = 0;
      for (let i = 0; i < NB; i++) {
        cum += s.buckets[i]!;
        lines.push(`${h}_bucket{${s.labelText},le="${LATENCY_BUCKETS[i]}"} ${cum}`);
      }
      cum += s.buckets[NB]!;
      lines.push(`${h}_bucket{${s.labelText},le="+Inf"} ${cum}`);
      lines.push(`${h}_sum{${s.labelText}} ${s.sum}`);
      lines.push(`${h}_count{${s.labelText}} ${s.count}`);
    }
    return lines.join('\n') + '\n';
  }

  async render(): Promise<string> {
    return this.renderRequests() + (await this.registry.metrics());
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

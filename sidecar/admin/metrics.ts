// Sidecar metrics (names and labels from api/metrics.ts).
//
// Request metrics are recorded per request, so they do not go through
// prom-client's label hashing (which re-validates and re-hashes all 19
// labels on every observe): each (route, backend, endpoint, status) gets a
// `RequestSeries` once, with its label text rendered once, and recording is
// two additions and a bucket increment. The low-rate metrics (config, certs,
// connections, detection) are small labelled families below: prom-client
// (with its OpenTelemetry and t-digest dependencies) cost ~50 ms of start-up
// and ~13 MB RSS for eleven counters and gauges.
import { AUTHZ_LABELS, ENDPOINT_LABELS, LATENCY_BUCKETS, REQUEST_LABELS, RESILIENCE_METRICS, RETRY_LABELS, SIDECAR_METRICS } from '../../api/index.js';
import { RequestObservers } from '../observe/observe.js';

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
    /** Every label except the peer's and the status (observe.ts names a request's Service, route and backend from them). */
    readonly base: Omit<RequestLabels, 'status_code' | 'status_class'>,
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

type Labels = Record<string, string>;

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** A counter or gauge with labels, in Prometheus text exposition format. */
export class Family {
  private readonly values = new Map<string, { text: string; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
    private readonly labelNames: readonly string[] = [],
  ) {
    // Like prom-client: an unlabelled metric is exposed (as 0) before first use.
    if (labelNames.length === 0) this.values.set('', { text: '', value: 0 });
  }

  private slot(labels: Labels | undefined): { text: string; value: number } {
    let text = '';
    if (labels) {
      for (const n of this.labelNames) {
        const v = labels[n];
        if (v !== undefined) text += `${text ? ',' : ''}${n}="${escapeLabel(String(v))}"`;
      }
    }
    let e = this.values.get(text);
    if (!e) this.values.set(text, (e = { text, value: 0 }));
    return e;
  }

  /** The value cell of one label set, for a hot path that counts by `cell.value++` (no label rendering per event). */
  cell(labels: Labels): { value: number } {
    return this.slot(labels);
  }

  inc(labels?: Labels | number, v = 1): void {
    if (typeof labels === 'number') this.slot(undefined).value += labels;
    else this.slot(labels).value += v;
  }

  dec(labels?: Labels | number, v = 1): void {
    if (typeof labels === 'number') this.slot(undefined).value -= labels;
    else this.slot(labels).value -= v;
  }

  set(labels: Labels | number, v?: number): void {
    if (typeof labels === 'number') this.slot(undefined).value = labels;
    else this.slot(labels).value = v ?? 0;
  }

  remove(labels: Labels): void {
    const text = this.slot(labels).text;
    this.values.delete(text);
  }

  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${this.name} ${this.type}`);
    for (const e of this.values.values()) lines.push(e.text ? `${this.name}{${e.text}} ${formatValue(e.value)}` : `${this.name} ${formatValue(e.value)}`);
  }
}

export class SidecarMetrics {
  private readonly table = new Map<string, RequestSeries>();
  private readonly families: Family[] = [];
  private family(name: string, help: string, type: 'counter' | 'gauge', labelNames: readonly string[] = []): Family {
    const f = new Family(name, help, type, labelNames);
    this.families.push(f);
    return f;
  }

  readonly tcpOpened = this.family(SIDECAR_METRICS.tcpOpenTotal, 'TCP connections opened', 'counter', ['direction', 'peer', 'tls']);
  readonly tcpClosed = this.family(SIDECAR_METRICS.tcpCloseTotal, 'TCP connections closed', 'counter', ['direction', 'peer', 'tls']);
  readonly tcpOpen = this.family(SIDECAR_METRICS.tcpOpen, 'TCP connections open', 'gauge', ['direction', 'peer', 'tls']);
  readonly tcpRead = this.family(SIDECAR_METRICS.tcpReadBytes, 'Bytes read from TCP connections', 'counter', ['direction', 'peer', 'tls']);
  readonly tcpWrite = this.family(SIDECAR_METRICS.tcpWriteBytes, 'Bytes written to TCP connections', 'counter', ['direction', 'peer', 'tls']);
  readonly configVersion = this.family(SIDECAR_METRICS.configVersion, 'Version of each applied config resource (value 1)', 'gauge', ['resource', 'version']);
  readonly configApplied = this.family(SIDECAR_METRICS.configAppliedTimestamp, 'When a config update was last applied (unix seconds)', 'gauge');
  readonly applied = this.family(SIDECAR_METRICS.snapshotsApplied, 'Config updates applied', 'counter', ['resource_type']);
  readonly nacked = this.family(SIDECAR_METRICS.snapshotsNacked, 'Config updates rejected (NACKed)', 'counter', ['resource_type']);
  readonly certExpiry = this.family(SIDECAR_METRICS.certExpiry, 'Expiry of certificates in use (unix seconds)', 'gauge', ['kind', 'identity']);
  readonly detect = this.family(SIDECAR_METRICS.detectTotal, 'Protocol detection outcomes', 'counter', ['direction', 'protocol']);
  readonly controlConnected = this.family(SIDECAR_METRICS.controlConnected, '1 while the config stream to control is up', 'gauge');
  // Resilience (retry-policy.ts, retry-budget.ts, failure-accrual.ts, load-shed.ts).
  readonly retries = this.family(RESILIENCE_METRICS.retries, 'Requests tried again, by reason', 'counter', RETRY_LABELS);
  readonly retriesSkipped = this.family(RESILIENCE_METRICS.retriesSkipped, 'Retries that were due but not made, by reason (budget, body_too_large, attempts, deadline, no_endpoint)', 'counter', RETRY_LABELS);
  readonly endpointEjected = this.family(RESILIENCE_METRICS.endpointEjected, '1 while failure accrual keeps the endpoint out of the balancer', 'gauge', ENDPOINT_LABELS);
  readonly endpointEjections = this.family(RESILIENCE_METRICS.endpointEjections, 'Times failure accrual took the endpoint out of the balancer', 'counter', ENDPOINT_LABELS);
  readonly requestsShed = this.family(RESILIENCE_METRICS.requestsShed, 'Requests answered 503 overloaded because the backend had too many in flight', 'counter', ['dst_namespace', 'dst_service', 'backend']);
  readonly authzDecisions = this.family(SIDECAR_METRICS.authzDecisions, 'Inbound authorization decisions (AuthorizationPolicy, default inbound policy)', 'counter', AUTHZ_LABELS);

  /** Connections and requests refused by a limit (sidecar/listen/limits.ts: limit = request_head_timeout, max_header_bytes, ...). */
  readonly limitRejections = this.family(SIDECAR_METRICS.limitRejections, 'Connections and requests refused by a sidecar limit', 'counter', ['direction', 'limit']);
  readonly observeDropped = this.family(SIDECAR_METRICS.observeDropped, 'Request records dropped by tap, access log or tracing because they were full', 'counter', ['sink']);
  /** Tap, access log and tracing (observe.ts): inactive until the sidecar configures them; the request path asks `.active`. */
  observers: RequestObservers = new RequestObservers({ namespace: '', workload: '', serviceAccount: '', trustDomain: '' });

  private readonly versionLabels = new Map<string, string>();

  constructor() {
    this.controlConnected.set(0);
    // Exported from the start (a limit never hit is a 0, not a missing metric).
    for (const direction of ['outbound', 'inbound']) this.limitRejections.inc({ direction, limit: 'request_head_timeout' }, 0);
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
    const lines: string[] = [];
    for (const f of this.families) f.render(lines);
    return this.renderRequests() + lines.join('\n') + '\n';
  }

  get contentType(): string {
    return 'text/plain; version=0.0.4; charset=utf-8';
  }
}

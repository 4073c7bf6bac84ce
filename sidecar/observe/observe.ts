// Completed-request observers: the one place a finished request is handed to
// whoever watches traffic — `weft tap` subscribers (tap.ts), the access log
// (access-log.ts) and tracing (trace.ts). The request path asks `active`
// first and builds a record only when something listens, so with no tap,
// no access log and no tracing a request costs one property read.
//
// Call sites (at the spot each listener records its request metrics):
//
//   const span = observers.active ? observers.begin(headers, 'outbound') : undefined;  // before forwarding
//   ...
//   if (observers.active) observers.complete('outbound', series.labels, ep, {...}, span);  // in done()
import type { RequestLabels } from '../admin/metrics.js';
import { type SpanStart, type Tracer, traceIdOf } from './trace.js';
import type { TapHub } from './tap.js';
import type { AccessLog } from './access-log.js';

export interface RequestRecord {
  /** Milliseconds since the epoch when the request arrived. */
  time: number;
  direction: 'outbound' | 'inbound';
  /** SPIFFE ID of the caller ('' for a plaintext caller outside the mesh). */
  source: string;
  /** Destination workload, "namespace/name" ('' when not a meshed workload). */
  destination: string;
  /** Destination Service "namespace/name" ('' when none, 'external' outside the mesh). */
  service: string;
  /** "HTTPRoute ns/name#rule", '' for a Service's default route. */
  route: string;
  /** Backend Service "namespace/name" of the chosen backendRef. */
  backend: string;
  /** "ip:port" the request went to. */
  endpoint: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string;
  bytesIn: number;
  bytesOut: number;
  /** Request arrival to response end. */
  durationMs: number;
  /** Dispatch upstream to response end. */
  upstreamMs: number;
  /** The `weft-proxy-error` reason when the mesh made the answer. */
  proxyError: string;
  traceId: string;
}

/** A sink that sees every record while it is on. */
export interface RequestSink {
  write(rec: RequestRecord, span: SpanStart | undefined): void;
}

/** The labels a SeriesCache was built with (everything but the peer and status). */
export type SeriesLabels = Omit<RequestLabels, 'status_code' | 'status_class'>;

/** Where the request went (outbound: the endpoint; inbound: the app). */
export interface RecordPeer {
  ip: string;
  port: number;
  /** SPIFFE ID (outbound: the endpoint's; inbound: the caller's). */
  spiffe?: string | undefined;
  workload?: string | undefined;
  namespace?: string | undefined;
}

/** What a listener knows when a request completes. */
export interface Completed {
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus?: string | undefined;
  proxyError?: string | undefined;
  /** performance.now() at arrival and at dispatch. */
  start: number;
  sent?: number;
  bytesIn?: number;
  bytesOut?: number;
  /** The client connection's byte counters at dispatch (HTTP/1: bytes in and out are their growth). */
  io?: IoMark | undefined;
}

export interface IoMark {
  socket: { bytesRead: number; bytesWritten: number };
  read: number;
  written: number;
  /** The request's Content-Length (0 when chunked or none). */
  body: number;
}

/**
 * The byte counters of a client connection now (HTTP/1, one request at a
 * time on it): bytes in are the request's Content-Length, else what the
 * connection read after the head (a chunked body); bytes out what it wrote.
 */
export function ioMark(socket: { bytesRead: number; bytesWritten: number } | null | undefined, contentLengthHeader: unknown): IoMark | undefined {
  return socket ? { socket, read: socket.bytesRead, written: socket.bytesWritten, body: contentLength(contentLengthHeader) } : undefined;
}

export interface ObserverSelf {
  namespace: string;
  workload: string;
  serviceAccount: string;
  trustDomain: string;
}

function routeName(l: SeriesLabels): string {
  if (!l.route_name) return '';
  return `${l.route_kind || 'HTTPRoute'} ${l.route_namespace}/${l.route_name}${l.route_rule ? `#${l.route_rule}` : ''}`;
}

function serviceName(l: SeriesLabels): string {
  const s = l.dst_service;
  if (!s || s === 'external' || !l.dst_namespace) return s ?? '';
  return `${l.dst_namespace}/${s}`;
}

export class RequestObservers {
  private on = false;
  private readonly spiffe: string;
  private readonly me: string;
  private readonly sinks: RequestSink[] = [];
  /** Records handed to sinks. */
  emitted = 0;

  constructor(
    readonly self: ObserverSelf,
    readonly parts: { tap?: TapHub | undefined; accessLog?: AccessLog | undefined; tracer?: Tracer | undefined } = {},
  ) {
    this.spiffe = `spiffe://${self.trustDomain}/ns/${self.namespace}/sa/${self.serviceAccount}`;
    this.me = `${self.namespace}/${self.workload}`;
    if (parts.accessLog) this.sinks.push(parts.accessLog);
    if (parts.tracer) this.sinks.push(parts.tracer);
    if (parts.tap) {
      this.sinks.push(parts.tap);
      parts.tap.onChange = () => this.recompute();
    }
    this.recompute();
  }

  private recompute(): void {
    this.on = !!this.parts.accessLog || !!this.parts.tracer || (this.parts.tap?.active ?? false);
  }

  /** True while anything listens (a tap subscriber, the access log, tracing). */
  get active(): boolean {
    return this.on;
  }

  get tracing(): boolean {
    return !!this.parts.tracer;
  }

  /**
   * Before forwarding: W3C trace context. With tracing on, continues (or
   * starts, when sampled) the trace and rewrites `traceparent` in `headers`
   * with this hop's span id; without, only reads the trace id for the record.
   */
  begin(headers: Record<string, unknown>, direction: 'outbound' | 'inbound', protocolVersion = '1.1'): SpanStart | undefined {
    if (this.parts.tracer) {
      const span = this.parts.tracer.begin(headers, direction);
      if (span) span.protocolVersion = protocolVersion;
      return span;
    }
    const tp = headers.traceparent;
    if (typeof tp !== 'string') return undefined;
    const traceId = traceIdOf(tp);
    return traceId ? { traceId, spanId: '', parentSpanId: '', traceState: '', sampled: false } : undefined;
  }

  emit(rec: RequestRecord, span?: SpanStart): void {
    if (!this.on) return;
    this.emitted++;
    for (let i = 0; i < this.sinks.length; i++) {
      try {
        this.sinks[i]!.write(rec, span);
      } catch {
        // An observer never breaks a request.
      }
    }
  }

  /** Builds the record of a completed request and emits it. */
  complete(direction: 'outbound' | 'inbound', labels: SeriesLabels, peer: RecordPeer | undefined, c: Completed, span?: SpanStart): void {
    const now = performance.now();
    const outbound = direction === 'outbound';
    const dstWorkload = outbound
      ? peer?.workload ? `${peer.namespace || labels.dst_namespace}/${peer.workload}` : ''
      : this.me;
    const rec: RequestRecord = {
      time: Date.now() - (now - c.start),
      direction,
      source: outbound ? this.spiffe : (peer?.spiffe ?? ''),
      destination: dstWorkload,
      service: serviceName(labels),
      route: routeName(labels),
      backend: labels.backend ?? '',
      endpoint: peer ? (peer.ip.includes(':') ? `[${peer.ip}]:${peer.port}` : `${peer.ip}:${peer.port}`) : '',
      method: c.method,
      authority: c.authority,
      path: c.path,
      status: c.status,
      grpcStatus: c.grpcStatus ?? '',
      bytesIn: c.bytesIn ?? (c.io ? c.io.body || Math.max(0, c.io.socket.bytesRead - c.io.read) : 0),
      bytesOut: c.bytesOut ?? (c.io ? Math.max(0, c.io.socket.bytesWritten - c.io.written) : 0),
      durationMs: round3(now - c.start),
      upstreamMs: c.sent !== undefined ? round3(now - c.sent) : 0,
      proxyError: c.proxyError ?? '',
      traceId: span?.traceId ?? '',
    };
    this.emit(rec, span);
  }

  close(): Promise<void> {
    return Promise.all([this.parts.accessLog?.close(), this.parts.tracer?.close(), this.parts.tap?.close()]).then(() => undefined);
  }
}

/** What beginOnFields changed: each trace field's new value, null to remove it; absent when unchanged. */
export interface TraceFieldEdits {
  span: SpanStart | undefined;
  traceparent?: string | null;
  tracestate?: string | null;
}

/**
 * begin() for a head kept as bytes (the HTTP/1.1 engine, weft-mux/1 streams):
 * reads the two trace fields through `get`, and returns only what changed,
 * for the caller to apply as its own head edits.
 */
export function beginOnFields(obs: RequestObservers, get: (lower: string) => string | undefined, direction: 'outbound' | 'inbound', protocolVersion = '1.1'): TraceFieldEdits {
  const tp = get('traceparent');
  const ts = get('tracestate');
  const view: Record<string, unknown> = {};
  if (tp !== undefined) view.traceparent = tp;
  if (ts !== undefined) view.tracestate = ts;
  const out: TraceFieldEdits = { span: obs.begin(view, direction, protocolVersion) };
  if (view.traceparent !== tp) out.traceparent = typeof view.traceparent === 'string' ? view.traceparent : null;
  if (view.tracestate !== ts) out.tracestate = typeof view.tracestate === 'string' ? view.tracestate : null;
  return out;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A number from a content-length header value (0 when absent or not a number). */
export function contentLength(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return 0;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

// Tracing: W3C Trace Context (https://www.w3.org/TR/trace-context/) through
// both sidecars, and a span per sampled request exported over OTLP/HTTP.
//
// Each sidecar is one hop of the trace: the outbound sidecar continues the
// app's `traceparent` (or starts a trace when there is none and the request
// is sampled) with a CLIENT span, the inbound sidecar continues that with a
// SERVER span, and the app sees a `traceparent` whose parent id is the
// inbound span. `tracestate` is passed on unchanged (we add no vendor entry);
// a malformed `traceparent` is treated as absent, and its `tracestate` is
// dropped with it (spec §3.3). A request the caller marked not sampled is
// passed on untouched: parent-based sampling, no work.
//
// Spans queue in a bounded buffer and leave in batches (every second, or
// sooner when 256 are waiting); a full buffer drops and counts.
import http from 'node:http';
import https from 'node:https';
import { randomFillSync } from 'node:crypto';
import { WEFT_VERSION } from '../../api/index.js';
import type { ObserverSelf, RequestRecord, RequestSink } from './observe.js';
import { encodeTraces, type OtlpSpan, type OtlpEncoding } from './trace-otlp.js';

/** The trace context of one hop, from begin() to the record. */
export interface SpanStart {
  traceId: string;
  /** This hop's span id ('' when this sidecar does not trace the request). */
  spanId: string;
  parentSpanId: string;
  traceState: string;
  sampled: boolean;
  /** The wire protocol ('1.1' or '2'), for network.protocol.version. */
  protocolVersion?: string;
}

export interface TraceParent {
  version: string;
  traceId: string;
  parentId: string;
  flags: number;
}

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** Parses a `traceparent` value; undefined when it is not valid (spec §3.2). */
export function parseTraceParent(v: string): TraceParent | undefined {
  const s = v.trim();
  if (s.length < 55) return undefined;
  const version = s.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return undefined;
  // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
  if (version === '00' ? s.length !== 55 : s.length > 55 && s[55] !== '-') return undefined;
  if (s[2] !== '-' || s[35] !== '-' || s[52] !== '-') return undefined;
  const traceId = s.slice(3, 35);
  const parentId = s.slice(36, 52);
  const flagsHex = s.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flagsHex)) return undefined;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return undefined;
  return { version, traceId, parentId, flags: parseInt(flagsHex, 16) };
}

export function formatTraceParent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** The trace id of a `traceparent` value, or '' (for access logs when tracing is off). */
export function traceIdOf(v: string): string {
  return parseTraceParent(v)?.traceId ?? '';
}

// Random ids from a pooled buffer: one crypto fill per 512 ids, not per request.
const POOL = Buffer.alloc(8 * 512);
let poolAt = POOL.length;
function randomHex(bytes: 8 | 16): string {
  for (;;) {
    if (poolAt + bytes > POOL.length) {
      randomFillSync(POOL);
      poolAt = 0;
    }
    const s = POOL.toString('hex', poolAt, poolAt + bytes);
    poolAt += bytes;
    if (s !== ZERO_TRACE && s !== ZERO_SPAN) return s;
  }
}
export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

export interface TracerOptions {
  /** OTLP/HTTP traces endpoint (http://host:4318/v1/traces; a bare origin gets /v1/traces). */
  collector: string;
  /** Share of new traces sampled, 0..1 (a caller's sampled flag is always followed). */
  sampling: number;
  encoding?: OtlpEncoding;
  self: ObserverSelf;
  /** Most spans waiting for export; more are dropped and counted. */
  maxQueue?: number;
  flushMs?: number;
  onDrop?: (n: number) => void;
  log?: (line: string) => void;
  /** Random number source (tests). */
  random?: () => number;
}

/** Validates a collector URL; an error names the flag. */
export function collectorUrl(s: string): URL | string {
  let u: URL;
  try {
    u = new URL(/^https?:\/\//.test(s) ? s : `http://${s}`);
  } catch {
    return `trace collector "${s}" is not a URL like http://127.0.0.1:4318/v1/traces`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `trace collector "${s}": only http and https`;
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces';
  return u;
}

export class Tracer implements RequestSink {
  private readonly url: URL;
  private readonly encoding: OtlpEncoding;
  private readonly queue: OtlpSpan[] = [];
  private readonly maxQueue: number;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private readonly agent: http.Agent;
  private readonly random: () => number;
  private readonly resource: Record<string, string>;
  exported = 0;
  dropped = 0;
  failed = 0;
  private lastError = '';

  constructor(private readonly o: TracerOptions) {
    const u = collectorUrl(o.collector);
    if (typeof u === 'string') throw new Error(u);
    this.url = u;
    this.encoding = o.encoding ?? 'protobuf';
    this.maxQueue = o.maxQueue ?? 4096;
    this.random = o.random ?? Math.random;
    this.agent = new (u.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 2 });
    this.resource = {
      'service.name': o.self.workload,
      'service.namespace': o.self.namespace,
      'service.version': WEFT_VERSION,
      'k8s.namespace.name': o.self.namespace,
      'weft.identity': `spiffe://${o.self.trustDomain}/ns/${o.self.namespace}/sa/${o.self.serviceAccount}`,
    };
  }

  begin(headers: Record<string, unknown>, _direction: 'outbound' | 'inbound'): SpanStart | undefined {
    const raw = headers.traceparent;
    const tp = typeof raw === 'string' ? parseTraceParent(raw) : undefined;
    if (tp) {
      const sampled = (tp.flags & 1) === 1;
      const ts = typeof headers.tracestate === 'string' ? headers.tracestate : '';
      if (!sampled) return { traceId: tp.traceId, spanId: '', parentSpanId: tp.parentId, traceState: ts, sampled: false };
      const spanId = newSpanId();
      headers.traceparent = formatTraceParent(tp.traceId, spanId, true);
      return { traceId: tp.traceId, spanId, parentSpanId: tp.parentId, traceState: ts, sampled: true };
    }
    if (raw !== undefined) {
      // Malformed: restart the trace; its tracestate goes with it (spec §3.3).
      delete headers.traceparent;
      delete headers.tracestate;
    }
    if (!(this.o.sampling > 0 && this.random() < this.o.sampling)) return undefined;
    const traceId = newTraceId();
    const spanId = newSpanId();
    headers.traceparent = formatTraceParent(traceId, spanId, true);
    return { traceId, spanId, parentSpanId: '', traceState: '', sampled: true };
  }

  write(rec: RequestRecord, span: SpanStart | undefined): void {
    if (!span || !span.sampled || !span.spanId) return;
    if (this.queue.length >= this.maxQueue) {
      this.dropped++;
      this.o.onDrop?.(1);
      return;
    }
    this.queue.push(spanOf(rec, span));
    if (this.queue.length >= 256) this.flushSoon(0);
    else this.flushSoon(this.o.flushMs ?? 1000);
  }

  private flushSoon(ms: number): void {
    if (this.timer && ms > 0) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ms);
    this.timer.unref();
  }

  /** Sends what is queued (one request per 512 spans). */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.queue.length === 0) return;
    const batch = this.queue.splice(0, 512);
    const body = encodeTraces(this.resource, { name: 'weft', version: WEFT_VERSION }, batch, this.encoding);
    this.inFlight = this.post(body).then(
      () => {
        this.exported += batch.length;
      },
      (e: Error) => {
        this.failed += batch.length;
        this.o.onDrop?.(batch.length);
        if (e.message !== this.lastError) this.o.log?.(`tracing: export to ${this.url.href} failed: ${e.message}`);
        this.lastError = e.message;
      },
    ).finally(() => {
      this.inFlight = undefined;
    });
    await this.inFlight;
    if (this.queue.length) this.flushSoon(0);
  }

  private post(body: Buffer): Promise<void> {
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          timeout: 10_000,
          headers: { 'content-type': this.encoding === 'json' ? 'application/json' : 'application/x-protobuf', 'content-length': body.length },
        },
        (res) => {
          res.resume();
          res.on('end', () => ((res.statusCode ?? 0) < 300 ? resolve() : reject(new Error(`collector answered ${res.statusCode}`))));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(body);
    });
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A last export, but a collector that does not answer must not hold up the sidecar's shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, 1000)))]);
    clearTimeout(timer);
    this.agent.destroy();
  }
}

/** The OTLP span of one record, with the OpenTelemetry HTTP semantic conventions' attributes. */
export function spanOf(rec: RequestRecord, span: SpanStart): OtlpSpan {
  const [host, port] = splitAuthority(rec.authority);
  const q = rec.path.indexOf('?');
  const attrs: OtlpSpan['attributes'] = [
    ['http.request.method', rec.method],
    ['url.path', q < 0 ? rec.path : rec.path.slice(0, q)],
    ['url.scheme', 'http'],
    ['http.response.status_code', rec.status],
    ['server.address', host],
    ['network.protocol.name', 'http'],
    ['network.protocol.version', span.protocolVersion ?? (rec.grpcStatus ? '2' : '1.1')],
    ['weft.direction', rec.direction],
  ];
  if (port) attrs.push(['server.port', port]);
  if (q >= 0) attrs.push(['url.query', rec.path.slice(q + 1)]);
  if (rec.grpcStatus) attrs.push(['rpc.system', 'grpc'], ['rpc.grpc.status_code', Number(rec.grpcStatus)]);
  if (rec.source) attrs.push(['weft.source.identity', rec.source]);
  if (rec.destination) attrs.push(['weft.destination.workload', rec.destination]);
  if (rec.service) attrs.push(['weft.service', rec.service]);
  if (rec.route) attrs.push(['weft.route', rec.route]);
  if (rec.backend) attrs.push(['weft.backend', rec.backend]);
  if (rec.endpoint) attrs.push(['network.peer.address', rec.endpoint.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')]);
  const failed = rec.status >= 500 || rec.status === 0 || (rec.grpcStatus !== '' && rec.grpcStatus !== '0') || rec.proxyError !== '';
  if (failed) attrs.push(['error.type', rec.proxyError ? 'weft_proxy_error' : rec.grpcStatus && rec.grpcStatus !== '0' ? rec.grpcStatus : String(rec.status)]);
  if (rec.proxyError) attrs.push(['weft.proxy_error', rec.proxyError]);
  const startNs = BigInt(Math.round(rec.time * 1000)) * 1000n;
  return {
    traceId: span.traceId,
    spanId: span.spanId,
    parentSpanId: span.parentSpanId,
    traceState: span.traceState,
    name: rec.route ? `${rec.method} ${rec.route.split(' ')[1]?.split('#')[0] ?? rec.service}` : rec.service ? `${rec.method} ${rec.service}` : rec.method,
    kind: rec.direction === 'outbound' ? 3 : 2,
    startNs,
    endNs: startNs + BigInt(Math.round(rec.durationMs * 1e6)),
    attributes: attrs,
    status: failed ? { code: 2, message: rec.proxyError } : { code: 0, message: '' },
  };
}

function splitAuthority(a: string): [string, number] {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(a);
  if (!m) return [a, 0];
  return [m[1]!.replace(/^\[|\]$/g, ''), m[2] ? Number(m[2]) : 0];
}

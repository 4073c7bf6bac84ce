// OTLP trace export bodies: ExportTraceServiceRequest in protobuf (the
// default of OTLP/HTTP, `application/x-protobuf`) or in OTLP/JSON. Pure.
//
// The protobuf is written by hand from opentelemetry-proto's schema
// (opentelemetry/proto/collector/trace/v1/trace_service.proto and the
// trace, resource and common protos it imports); only the fields weft sets:
//
//   ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
//   ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
//   Resource      { repeated KeyValue attributes = 1; }
//   ScopeSpans    { InstrumentationScope scope = 1; repeated Span spans = 2; }
//   InstrumentationScope { string name = 1; string version = 2; }
//   Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3;
//          bytes parent_span_id = 4; string name = 5; SpanKind kind = 6;
//          fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
//          repeated KeyValue attributes = 9; Status status = 15; fixed32 flags = 16; }
//   Status   { string message = 2; StatusCode code = 3; }
//   KeyValue { string key = 1; AnyValue value = 2; }
//   AnyValue { oneof { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }

export type OtlpEncoding = 'protobuf' | 'json';

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  /** SpanKind: 2 SERVER, 3 CLIENT. */
  kind: number;
  startNs: bigint;
  endNs: bigint;
  /** Numbers that are integers are int_value, others double_value. */
  attributes: Array<[string, string | number | boolean]>;
  /** StatusCode: 0 UNSET, 1 OK, 2 ERROR. */
  status: { code: number; message: string };
}

// ---- protobuf writer ---------------------------------------------------------

class Writer {
  private parts: Buffer[] = [];
  private len = 0;

  private push(b: Buffer): void {
    this.parts.push(b);
    this.len += b.length;
  }

  varint(n: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(n));
    const bytes: number[] = [];
    while (v > 0x7fn) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.push(Buffer.from(bytes));
  }

  tag(field: number, wire: 0 | 1 | 2 | 5): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, b: Buffer): void {
    this.tag(field, 2);
    this.varint(b.length);
    this.push(b);
  }

  string(field: number, s: string): void {
    if (s === '') return;
    this.bytes(field, Buffer.from(s, 'utf8'));
  }

  message(field: number, w: Writer): void {
    this.bytes(field, w.finish());
  }

  fixed64(field: number, v: bigint): void {
    this.tag(field, 1);
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    this.push(b);
  }

  fixed32(field: number, v: number): void {
    this.tag(field, 5);
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.push(b);
  }

  double(field: number, v: number): void {
    this.tag(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.push(b);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.len);
  }
}

function anyValue(v: string | number | boolean): Writer {
  const w = new Writer();
  if (typeof v === 'string') w.bytes(1, Buffer.from(v, 'utf8'));
  else if (typeof v === 'boolean') {
    w.tag(2, 0);
    w.varint(v ? 1 : 0);
  } else if (Number.isInteger(v)) {
    w.tag(3, 0);
    w.varint(BigInt(v));
  } else w.double(4, v);
  return w;
}

function keyValue(k: string, v: string | number | boolean): Writer {
  const w = new Writer();
  w.string(1, k);
  w.message(2, anyValue(v));
  return w;
}

function spanProto(s: OtlpSpan): Writer {
  const w = new Writer();
  w.bytes(1, Buffer.from(s.traceId, 'hex'));
  w.bytes(2, Buffer.from(s.spanId, 'hex'));
  w.string(3, s.traceState);
  if (s.parentSpanId) w.bytes(4, Buffer.from(s.parentSpanId, 'hex'));
  w.string(5, s.name);
  w.tag(6, 0);
  w.varint(s.kind);
  w.fixed64(7, s.startNs);
  w.fixed64(8, s.endNs);
  for (const [k, v] of s.attributes) w.message(9, keyValue(k, v));
  const st = new Writer();
  st.string(2, s.status.message);
  if (s.status.code) {
    st.tag(3, 0);
    st.varint(s.status.code);
  }
  w.message(15, st);
  // flags: the W3C trace flags in the low byte (sampled), bit 8 "has remote-parent info" unset.
  w.fixed32(16, 1);
  return w;
}

export function encodeTracesProto(resource: Record<string, string>, scope: { name: string; version: string }, spans: readonly OtlpSpan[]): Buffer {
  const res = new Writer();
  for (const [k, v] of Object.entries(resource)) res.message(1, keyValue(k, v));
  const sc = new Writer();
  sc.string(1, scope.name);
  sc.string(2, scope.version);
  const scopeSpans = new Writer();
  scopeSpans.message(1, sc);
  for (const s of spans) scopeSpans.message(2, spanProto(s));
  const rs = new Writer();
  rs.message(1, res);
  rs.message(2, scopeSpans);
  const req = new Writer();
  req.message(1, rs);
  return req.finish();
}

// ---- OTLP/JSON ---------------------------------------------------------------

function anyJson(v: string | number | boolean): Record<string, unknown> {
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  // int64 is a decimal string in OTLP/JSON (proto3 JSON mapping).
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

export function encodeTracesJson(resource: Record<string, string>, scope: { name: string; version: string }, spans: readonly OtlpSpan[]): Buffer {
  const body = {
    resourceSpans: [
      {
        resource: { attributes: Object.entries(resource).map(([key, v]) => ({ key, value: anyJson(v) })) },
        scopeSpans: [
          {
            scope,
            spans: spans.map((s) => ({
              // OTLP/JSON: ids are hex strings, not base64 (OTLP spec, JSON Protobuf Encoding).
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              ...(s.traceState ? { traceState: s.traceState } : {}),
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: String(s.startNs),
              endTimeUnixNano: String(s.endNs),
              attributes: s.attributes.map(([key, v]) => ({ key, value: anyJson(v) })),
              status: s.status.code ? { code: s.status.code, ...(s.status.message ? { message: s.status.message } : {}) } : {},
              flags: 1,
            })),
          },
        ],
      },
    ],
  };
  return Buffer.from(JSON.stringify(body));
}

export function encodeTraces(resource: Record<string, string>, scope: { name: string; version: string }, spans: readonly OtlpSpan[], encoding: OtlpEncoding): Buffer {
  return encoding === 'json' ? encodeTracesJson(resource, scope, spans) : encodeTracesProto(resource, scope, spans);
}

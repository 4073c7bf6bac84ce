// An OTLP/HTTP trace receiver for tests: POST /v1/traces with
// `application/x-protobuf` is decoded with protobufjs against the real
// opentelemetry-proto schema (e2e/helpers/otlp/, copied from
// open-telemetry/opentelemetry-proto, Apache-2.0); `application/json` is
// read as OTLP/JSON. Every span is kept, flattened with its resource.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { REPO, type TestLike } from './mesh.js';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  scope: string;
  status: { code: number; message: string };
  /** 'protobuf' or 'json': how it arrived. */
  encoding: string;
}

export interface OtlpReceiver {
  /** http://ip:port/v1/traces */
  url: string;
  spans: ReceivedSpan[];
  /** Bodies that did not decode. */
  rejected: string[];
  close(): Promise<void>;
}

const OTLP_DIR = join(REPO, 'e2e', 'helpers', 'otlp');

let requestType: protobuf.Type | undefined;
async function exportRequestType(): Promise<protobuf.Type> {
  if (requestType) return requestType;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => join(OTLP_DIR, target);
  await root.load('opentelemetry/proto/collector/trace/v1/trace_service.proto');
  requestType = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  return requestType;
}

type AnyJson = { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
function anyValue(v: AnyJson | undefined): string | number | boolean {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  return '';
}
function attrs(list: Array<{ key: string; value?: AnyJson }> | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

interface ExportJson {
  resourceSpans?: Array<{
    resource?: { attributes?: Array<{ key: string; value?: AnyJson }> };
    scopeSpans?: Array<{
      scope?: { name?: string };
      spans?: Array<{
        traceId?: string; spanId?: string; parentSpanId?: string; traceState?: string; name?: string; kind?: number | string;
        startTimeUnixNano?: string; endTimeUnixNano?: string; attributes?: Array<{ key: string; value?: AnyJson }>;
        status?: { code?: number | string; message?: string };
      }>;
    }>;
  }>;
}

function flatten(body: ExportJson, encoding: string, hexOf: (s: string | undefined) => string): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: hexOf(s.traceId),
          spanId: hexOf(s.spanId),
          parentSpanId: hexOf(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: Number(s.kind ?? 0),
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          attributes: attrs(s.attributes),
          resource,
          scope: ss.scope?.name ?? '',
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? '' },
          encoding,
        });
      }
    }
  }
  return out;
}

export async function startOtlpReceiver(t: TestLike, host: string): Promise<OtlpReceiver> {
  const Req = await exportRequestType();
  const spans: ReceivedSpan[] = [];
  const rejected: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const buf = Buffer.concat(chunks);
      const type = req.headers['content-type'] ?? '';
      try {
        if (req.method !== 'POST' || req.url !== '/v1/traces') throw new Error(`${req.method} ${req.url}`);
        if (type.startsWith('application/x-protobuf')) {
          const msg = Req.decode(buf);
          // Bytes as base64 and 64-bit integers as strings: the same shape as OTLP/JSON, ids then decoded.
          const obj = Req.toObject(msg, { longs: String, bytes: String, enums: Number, defaults: false }) as ExportJson;
          spans.push(...flatten(obj, 'protobuf', (b) => (b ? Buffer.from(b, 'base64').toString('hex') : '')));
        } else if (type.startsWith('application/json')) {
          spans.push(...flatten(JSON.parse(buf.toString('utf8')) as ExportJson, 'json', (h) => h ?? ''));
        } else throw new Error(`content-type ${type}`);
        res.writeHead(200, { 'content-type': type || 'application/x-protobuf' });
        res.end();
      } catch (e) {
        rejected.push((e as Error).message);
        res.writeHead(400);
        res.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  const close = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  t.teardown(close);
  return { url: `http://${host}:${port}/v1/traces`, spans, rejected, close };
}

// A real grpc-js echo server (Echo, Slow, ServerStream, ClientStream, Bidi;
// proto in grpc-echo.proto) and a client factory that dials a sidecar's
// outbound listener the way a meshed app does (h2c to the sidecar, the
// Service name as :authority).
//
//   const app = await startGrpcEcho({ host: podIP, port: 50051, pod: 'v1' });
//   const c = echoClient(sidecar.outboundAddress, 'grpc.demo:50051');
//   const r = await unary(c, 'Echo', { text: 'hi' });   // r.pod === 'v1'
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The proto beside the apps (copied into dist/conformance/apps by the build, so `weft conformance` runs from dist alone). */
export const PROTO_PATH = join(dirname(fileURLToPath(import.meta.url)), 'apps', 'grpc-echo.proto');
/** The conformance echo app with its gRPC side (examples/echo plus weft.test.Echo on GRPC_PORT). */
export const GRPC_ECHO_APP = join(dirname(PROTO_PATH), 'grpc-echo-app.mjs');
/** The gRPC service name routes match on. */
export const ECHO_SERVICE = 'weft.test.Echo';
/** Room for 4 MiB messages plus framing. */
export const MAX_MESSAGE = 16 * 1024 * 1024;

export interface Msg {
  text?: string;
  seq?: number;
  payload?: Buffer;
  count?: number;
  delayMs?: number;
  pod?: string;
  metadata?: Record<string, string>;
}

const definition = protoLoader.loadSync(PROTO_PATH, { keepCase: false, longs: Number, defaults: true, bytes: Buffer });
const pkg = grpc.loadPackageDefinition(definition) as unknown as {
  weft: { test: { Echo: grpc.ServiceClientConstructor } };
};
const EchoService = pkg.weft.test.Echo;

export interface GrpcEcho {
  server: grpc.Server;
  address: string;
  /** Calls seen per method. */
  calls: Record<string, number>;
  /** Slow calls whose cancellation the server observed. */
  cancelled: number;
  close(): Promise<void>;
}

function metadataOf(m: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

export async function startGrpcEcho(o: { host: string; port: number; pod: string }): Promise<GrpcEcho> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE, 'grpc.max_send_message_length': MAX_MESSAGE });
  const calls: Record<string, number> = {};
  const count = (m: string) => (calls[m] = (calls[m] ?? 0) + 1);
  const app: GrpcEcho = {
    server,
    address: `${o.host}:${o.port}`,
    calls,
    cancelled: 0,
    close: () =>
      new Promise<void>((r) => {
        server.forceShutdown();
        r();
      }),
  };
  server.addService(EchoService.service, {
    Echo(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Echo');
      const req = call.request;
      cb(null, { text: req.text, seq: req.seq, payload: req.payload, pod: o.pod, metadata: metadataOf(call.metadata) });
    },
    Slow(call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('Slow');
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        cb(null, { text: call.request.text, pod: o.pod });
      }, call.request.delayMs || 5000);
      call.on('cancelled', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        app.cancelled++;
      });
    },
    ServerStream(call: grpc.ServerWritableStream<Msg, Msg>) {
      count('ServerStream');
      const n = call.request.count ?? 0;
      const payload = call.request.payload;
      let i = 0;
      const write = () => {
        while (i < n) {
          const ok = call.write({ seq: i, payload, pod: o.pod });
          i++;
          if (!ok) {
            call.once('drain', write);
            return;
          }
        }
        call.end();
      };
      call.on('cancelled', () => (i = n + 1));
      write();
    },
    ClientStream(call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) {
      count('ClientStream');
      let n = 0;
      let sum = 0;
      let ordered = true;
      call.on('data', (m: Msg) => {
        if (m.seq !== n) ordered = false;
        n++;
        sum += m.seq ?? 0;
      });
      call.on('end', () => cb(null, { count: n, seq: sum, text: ordered ? 'ordered' : 'out of order', pod: o.pod }));
    },
    Bidi(call: grpc.ServerDuplexStream<Msg, Msg>) {
      count('Bidi');
      call.on('data', (m: Msg) => {
        if (!call.write({ seq: m.seq, text: m.text, pod: o.pod })) {
          call.pause();
          call.once('drain', () => call.resume());
        }
      });
      call.on('end', () => call.end());
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`${o.host}:${o.port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())),
  );
  return app;
}

export type EchoClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** A client of `target` (host:port dialled) that names `authority` (the Service) in :authority. */
export function echoClient(target: string, authority: string, options: grpc.ClientOptions = {}): EchoClient {
  return new EchoService(target, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
    ...options,
  }) as unknown as EchoClient;
}

/** A unary call as a Promise (Echo or Slow). */
export function unary(c: EchoClient, method: 'Echo' | 'Slow', req: Msg, o: { deadlineMs?: number; metadata?: Record<string, string> } = {}): Promise<Msg> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(o.metadata ?? {})) md.set(k, v);
  const opts: grpc.CallOptions = o.deadlineMs ? { deadline: Date.now() + o.deadlineMs } : {};
  return new Promise((resolve, reject) => {
    (c[method] as (r: Msg, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Msg) => void) => void)(req, md, opts, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

export { grpc };

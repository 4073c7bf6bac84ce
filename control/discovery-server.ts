// weft.v1.Discovery/Stream: one bidirectional stream per sidecar. The peer
// must present a mesh client certificate (chained to the trust bundle) whose
// SPIFFE ID names the namespace and service account its Hello claims; then the
// workload is registered (an endpoint of the selector Services it matches) and
// the push engine serves it the directory and its subscribed views.
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { FEATURE_INBOUND_AUTHZ, weftV1, type ControlMessage, type HelloMsg, type SidecarMessage } from '../api/index.js';
import { parseSpiffeId, spiffeIdOfCert } from '../certs/index.js';
import type { PushEngine, StreamHandle } from './push.js';
import type { Registry } from './registry.js';

export interface DiscoveryServerOptions {
  engine: PushEngine;
  /** Local mode registers connected workloads as endpoints; absent in Kubernetes mode. */
  registry?: Registry;
  trustDomain: string;
  log: (line: string) => void;
  /** Discovery streams open at once for one peer: one sidecar, its SPIFFE ID and pod IP (default DISCOVERY_LIMITS.maxStreamsPerPeer). */
  maxStreamsPerPeer?: number;
  /** Called when a limit refuses a stream (counted as weft_control_limit_rejections_total{limit}). */
  onLimit?: (limit: 'streams_per_peer') => void;
}

/**
 * Limits of control's gRPC port (README "Limits"). A sidecar keeps one
 * Discovery stream; its messages (hello, subscribe, ack) are small.
 */
export const DISCOVERY_LIMITS = {
  /** Largest message control accepts from a peer (grpc.max_receive_message_length). */
  maxReceiveMessageBytes: 1024 * 1024,
  /** Concurrent HTTP/2 streams on one connection (grpc.max_concurrent_streams). */
  maxConcurrentStreams: 32,
  /**
   * Discovery streams at once for one peer (a SPIFFE ID and the pod IP its
   * hello names; a sidecar keeps one, two while it reconnects); more get
   * RESOURCE_EXHAUSTED. Per address would not do: local sidecars all dial
   * from 127.0.0.1.
   */
  maxStreamsPerPeer: 4,
} as const;


export interface DiscoveryServer {
  /** weft.v1.Discovery, whose responses may also be written pre-encoded (a Buffer from encode()). */
  definition: grpc.ServiceDefinition;
  handlers: grpc.UntypedServiceImplementation;
  /** Encodes a ControlMessage once for many streams. */
  encode: (msg: ControlMessage) => Buffer;
  /** Ends every open stream (control shutting down): sidecars reconnect with backoff. */
  closeAll(): void;
  streams(): number;
}

type Call = grpc.ServerDuplexStream<SidecarMessage, ControlMessage>;

/** "name" means a Service in the sidecar's own namespace. */
function serviceName(s: string, namespace: string): string {
  return s.includes('/') ? s : `${namespace}/${s}`;
}

function kindOf(msg: SidecarMessage): 'hello' | 'subscribe' | 'ack' | 'goodbye' | undefined {
  if (msg.kind) return msg.kind;
  if ('hello' in msg && msg.hello) return 'hello';
  if ('subscribe' in msg && msg.subscribe) return 'subscribe';
  if ('ack' in msg && msg.ack) return 'ack';
  if ('goodbye' in msg && msg.goodbye) return 'goodbye';
  return undefined;
}

/**
 * weft.v1.Discovery with a response serializer that passes Buffers through:
 * the push engine encodes each directory and update once and writes the same
 * bytes to every subscriber.
 */
export function discoveryDefinition(): { definition: grpc.ServiceDefinition; encode: (msg: ControlMessage) => Buffer } {
  const base = weftV1().Discovery.service;
  const stream = base.Stream!;
  const encode = (msg: ControlMessage): Buffer => stream.responseSerialize(msg);
  const definition: grpc.ServiceDefinition = {
    ...base,
    Stream: { ...stream, responseSerialize: (v: unknown) => (Buffer.isBuffer(v) ? v : stream.responseSerialize(v)) },
  };
  return { definition, encode };
}

/** What is wrong with a Hello that would otherwise become a broken endpoint; undefined when fine. */
export function helloProblem(h: HelloMsg): string | undefined {
  if (h.pod_ip && isIP(h.pod_ip) === 0) return `pod_ip: ${JSON.stringify(h.pod_ip)} is not an IP address`;
  for (const p of h.app_ports ?? []) {
    if (!Number.isInteger(Number(p)) || Number(p) < 1 || Number(p) > 65535) return `app_ports: ${p} is not a port`;
  }
  for (const [k, v] of Object.entries(h.labels ?? {})) {
    if (!k || k.length > 317 || typeof v !== 'string' || v.length > 63) return `labels: ${JSON.stringify(k)} is not a valid label`;
  }
  return undefined;
}

export function discoveryServer(opts: DiscoveryServerOptions): DiscoveryServer {
  const open = new Set<Call>();
  const perPeer = new Map<string, number>();
  const maxPerPeer = opts.maxStreamsPerPeer ?? DISCOVERY_LIMITS.maxStreamsPerPeer;
  const { definition, encode } = discoveryDefinition();

  const stream = (call: Call): void => {
    open.add(call);
    let hello: HelloMsg | undefined;
    let handle: StreamHandle | undefined;
    let release: (() => void) | undefined;
    let registered: Parameters<Registry['connect']>[0] | undefined;
    let leaving = false;
    let done = false;
    const peer = call.getPeer();
    let peerKey: string | undefined;

    const cleanup = (): void => {
      if (done) return;
      done = true;
      open.delete(call);
      if (peerKey !== undefined) {
        const n = (perPeer.get(peerKey) ?? 1) - 1;
        if (n <= 0) perPeer.delete(peerKey);
        else perPeer.set(peerKey, n);
      }
      handle?.close();
      release?.();
      if (hello) opts.log(`sidecar ${hello.namespace}/${hello.pod_name || hello.workload} (${hello.pod_ip || peer}) disconnected`);
    };
    const fail = (code: grpc.status, details: string): void => {
      opts.log(`discovery stream from ${peer} refused: ${details}`);
      cleanup();
      call.emit('error', { code, details });
    };

    // Who is on the other end: the SPIFFE ID of a client certificate that
    // verified against the trust bundle (grpc-js only reports authorized peers).
    const cert = call.getAuthContext?.()?.sslPeerCertificate;
    const id = cert ? spiffeIdOfCert(cert) : undefined;
    const who = id ? parseSpiffeId(id) : undefined;

    call.on('data', (msg: SidecarMessage) => {
      if (done) return;
      switch (kindOf(msg)) {
        case 'hello': {
          if (hello) return; // one Hello per stream; later ones change nothing
          const h = (msg as { hello: HelloMsg }).hello;
          if (!who) {
            fail(grpc.status.UNAUTHENTICATED, 'a mesh client certificate is required (certify with weft.v1.Identity first)');
            return;
          }
          if (who.trustDomain !== opts.trustDomain || who.namespace !== h.namespace || who.serviceAccount !== h.service_account) {
            fail(
              grpc.status.PERMISSION_DENIED,
              `certificate identity ${id} does not match hello namespace "${h.namespace}" service account "${h.service_account}"`,
            );
            return;
          }
          const bad = helloProblem(h);
          if (bad) {
            fail(grpc.status.INVALID_ARGUMENT, `hello: ${bad}`);
            return;
          }
          const key = `${id}|${h.pod_ip}`;
          if ((perPeer.get(key) ?? 0) >= maxPerPeer) {
            opts.onLimit?.('streams_per_peer');
            fail(grpc.status.RESOURCE_EXHAUSTED, `more than ${maxPerPeer} Discovery streams for ${id} at ${h.pod_ip || 'no pod IP'}`);
            return;
          }
          peerKey = key;
          perPeer.set(key, (perPeer.get(key) ?? 0) + 1);
          hello = h;
          const name = `${h.namespace}/${h.pod_name || h.workload || h.pod_ip}`;
          handle = opts.engine.attach({
            name: `${name} (${h.pod_ip || peer})`,
            namespace: h.namespace,
            // Only a sidecar that says it enforces InboundUpdate gets one (older ones would not ACK it).
            ...((h.features ?? []).includes(FEATURE_INBOUND_AUTHZ)
              ? { pod: { namespace: h.namespace, name: h.pod_name, workload: h.workload, labels: { ...(h.labels ?? {}) }, podIP: h.pod_ip } }
              : {}),
            // A pre-encoded Buffer passes the serializer of discoveryDefinition() untouched.
            write: (m) => {
              if (!done) call.write(m as ControlMessage);
            },
          }, h.versions);
          if (h.draining) leaving = true;
          if (opts.registry && h.pod_ip && !h.draining) {
            registered = {
              namespace: h.namespace,
              workload: h.workload,
              serviceAccount: h.service_account,
              podName: h.pod_name,
              podIP: h.pod_ip,
              labels: { ...(h.labels ?? {}) },
              appPorts: [...(h.app_ports ?? [])].map(Number),
              meshed: true,
            };
            release = opts.registry.connect(registered);
          }
          // Response headers now: a sidecar that holds every current version
          // (a reconnect) is sent nothing else, yet knows it is connected.
          call.sendMetadata(new grpc.Metadata());
          opts.log(`sidecar ${name} (${h.pod_ip || peer}) connected`);
          const subs = (h.subscribe ?? []).map((s) => serviceName(s, h.namespace));
          if (subs.length > 0) handle.subscribe(subs);
          return;
        }
        case 'subscribe': {
          if (!hello || !handle) {
            fail(grpc.status.FAILED_PRECONDITION, 'the first message on a stream must be hello');
            return;
          }
          const s = (msg as { subscribe: { services?: string[]; unsubscribe?: string[] } }).subscribe;
          const ns = hello.namespace;
          if (s.unsubscribe?.length) handle.unsubscribe(s.unsubscribe.map((x) => serviceName(x, ns)));
          if (s.services?.length) handle.subscribe(s.services.map((x) => serviceName(x, ns)));
          return;
        }
        case 'ack': {
          if (!handle) {
            fail(grpc.status.FAILED_PRECONDITION, 'the first message on a stream must be hello');
            return;
          }
          const a = (msg as { ack: { resource: string; version: string; error: string } }).ack;
          handle.ack(a.resource, a.version, a.error ?? '');
          return;
        }
        case 'goodbye': {
          // Draining: the endpoints go now; the stream keeps serving config.
          if (!hello || leaving) return;
          leaving = true;
          const reason = (msg as { goodbye: { reason?: string } }).goodbye.reason ?? '';
          opts.log(`sidecar ${hello.namespace}/${hello.pod_name || hello.workload} (${hello.pod_ip || peer}) is draining${reason ? ` (${reason})` : ''}`);
          if (opts.registry && registered) opts.registry.leave(registered);
          return;
        }
        default:
          return;
      }
    });
    call.on('end', () => {
      cleanup();
      call.end();
    });
    call.on('cancelled', cleanup);
    call.on('error', cleanup);
    call.on('close', cleanup);
  };

  return {
    definition,
    encode,
    handlers: { Stream: stream as grpc.handleBidiStreamingCall<unknown, unknown> },
    closeAll: () => {
      for (const call of [...open]) {
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'control is shutting down' });
      }
    },
    streams: () => open.size,
  };
}

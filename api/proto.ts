// Loads weft.proto once for both ends of the stream. keepCase keeps the
// proto's snake_case field names on the wire objects (pod_ip, config_json).
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = join(dirname(fileURLToPath(import.meta.url)), 'weft.proto');

let cached: grpc.GrpcObject | undefined;

export function loadWeftProto(): grpc.GrpcObject {
  if (cached) return cached;
  const def = protoLoader.loadSync(PROTO_PATH, {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  cached = grpc.loadPackageDefinition(def);
  return cached;
}

/** The weft.v1 package: Discovery and Identity service constructors. */
export function weftV1(): { Discovery: grpc.ServiceClientConstructor; Identity: grpc.ServiceClientConstructor } {
  const pkg = (loadWeftProto().weft as grpc.GrpcObject).v1 as grpc.GrpcObject;
  return {
    Discovery: pkg.Discovery as grpc.ServiceClientConstructor,
    Identity: pkg.Identity as grpc.ServiceClientConstructor,
  };
}

// Wire shapes (keepCase, oneofs: the set member's name is in `kind`).
export interface HelloMsg {
  namespace: string;
  workload: string;
  service_account: string;
  pod_ip: string;
  pod_name: string;
  labels: Record<string, string>;
  app_ports: number[];
  sidecar_version: string;
  subscribe: string[];
  strict: boolean;
  /** Optional on the wire (older sidecars send none). */
  features?: string[];
  /** 0.2.0: a draining sidecar reconnecting; absent (false) from 0.1.0 sidecars. */
  draining?: boolean;
  /** 0.2.0: resource → version held (a reconnect); control skips what matches. */
  versions?: Record<string, string>;
}
export interface SubscribeMsg {
  services: string[];
  unsubscribe: string[];
}
export interface AckMsg {
  resource: string;
  version: string;
  error: string;
}
export interface GoodbyeMsg {
  reason: string;
}
export type SidecarMessage =
  | { kind?: 'hello'; hello: HelloMsg }
  | { kind?: 'subscribe'; subscribe: SubscribeMsg }
  | { kind?: 'ack'; ack: AckMsg }
  | { kind?: 'goodbye'; goodbye: GoodbyeMsg };

export interface ServicePortMsg {
  name: string;
  port: number;
  target_port: number;
  app_protocol: string;
}
export interface ServiceEntryMsg {
  namespace: string;
  name: string;
  cluster_ip: string;
  ports: ServicePortMsg[];
  meshed: boolean;
}
export interface DirectoryMsg {
  version: string;
  services: ServiceEntryMsg[];
  trust_bundle: string;
  /** Hex SHA-256 of the issuer's DER; empty from controls that predate it. */
  issuer_sha256?: string;
}
export interface ServiceUpdateMsg {
  service: string;
  version: string;
  config_json: Buffer;
  removed: boolean;
}
export interface InboundUpdateMsg {
  version: string;
  config_json: Buffer;
}
export type ControlMessage =
  | { kind?: 'directory'; directory: DirectoryMsg }
  | { kind?: 'update'; update: ServiceUpdateMsg }
  | { kind?: 'inbound'; inbound: InboundUpdateMsg };

export interface CertifyRequestMsg {
  csr: string;
  token: string;
  namespace: string;
  service_account: string;
}
export interface CertifyResponseMsg {
  leaf: string;
  chain: string[];
  trust_bundle: string;
  not_after: number;
}

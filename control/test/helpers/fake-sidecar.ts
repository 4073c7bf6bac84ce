// A fake sidecar that speaks the real wire: certifies over TLS with the
// bootstrap token (weft.v1.Identity/Certify), then opens weft.v1.Discovery/Stream
// with its mesh certificate, says Hello, subscribes and ACKs.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  STATE_FILES,
  weftV1,
  type CertifyRequestMsg,
  type CertifyResponseMsg,
  type ControlMessage,
  type HelloMsg,
  type SidecarMessage,
} from '../../../api/index.js';
import { generateKeyAndCsr, spiffeId } from '../../../certs/index.js';
import { CONTROL_SERVER_NAME } from '../../state.js';

type DirectoryMsg = Extract<ControlMessage, { directory: unknown }>['directory'];
type UpdateMsg = Extract<ControlMessage, { update: unknown }>['update'];
export const directoryOf = (m: ControlMessage): DirectoryMsg | undefined => ('directory' in m ? m.directory : undefined);
export const updateOf = (m: ControlMessage): UpdateMsg | undefined => ('update' in m ? m.update : undefined);

const CHANNEL_OPTS = { 'grpc.ssl_target_name_override': CONTROL_SERVER_NAME, 'grpc.default_authority': CONTROL_SERVER_NAME };

export interface MeshCert {
  keyPem: string;
  certPem: string;
  chain: string[];
  bundle: string;
  notAfter: number;
}

export function readState(stateDir: string): { token: string; bundle: string } {
  return {
    token: readFileSync(join(stateDir, STATE_FILES.bootstrapToken), 'utf8').trim(),
    bundle: readFileSync(join(stateDir, STATE_FILES.trustBundle), 'utf8'),
  };
}

export async function certify(
  address: string,
  bundle: string,
  req: { token: string; namespace: string; serviceAccount: string; csrPem?: string },
): Promise<MeshCert> {
  const { Identity } = weftV1();
  const client = new Identity(address, grpc.credentials.createSsl(Buffer.from(bundle)), CHANNEL_OPTS);
  const { keyPem, csrPem } = generateKeyAndCsr(spiffeId(req.namespace, req.serviceAccount));
  try {
    const res = await new Promise<CertifyResponseMsg>((resolve, reject) => {
      const msg: CertifyRequestMsg = {
        csr: req.csrPem ?? csrPem,
        token: req.token,
        namespace: req.namespace,
        service_account: req.serviceAccount,
      };
      (client as unknown as {
        Certify(m: CertifyRequestMsg, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: CertifyResponseMsg) => void): void;
      }).Certify(msg, { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(e) : resolve(r)));
    });
    return { keyPem, certPem: res.leaf, chain: res.chain, bundle: res.trust_bundle, notAfter: res.not_after };
  } finally {
    client.close();
  }
}

export class FakeSidecar {
  readonly messages: ControlMessage[] = [];
  /** Resolves with the status the stream ended with. */
  readonly ended: Promise<grpc.StatusObject>;
  autoAck = true;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<SidecarMessage, ControlMessage>;
  private readonly waiters = new Set<() => void>();

  constructor(address: string, bundle: string, cert: MeshCert | undefined, hello: Partial<HelloMsg> & { namespace: string; service_account: string }) {
    const { Discovery } = weftV1();
    const creds = cert
      ? grpc.credentials.createSsl(Buffer.from(bundle), Buffer.from(cert.keyPem), Buffer.from(cert.certPem + cert.chain.join('')))
      : grpc.credentials.createSsl(Buffer.from(bundle));
    this.client = new Discovery(address, creds, CHANNEL_OPTS);
    this.call = (this.client as unknown as { Stream(): grpc.ClientDuplexStream<SidecarMessage, ControlMessage> }).Stream();
    this.ended = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => {
        resolve(s);
        this.wake();
      });
    });
    this.call.on('error', () => {});
    this.call.on('data', (m: ControlMessage) => {
      this.messages.push(m);
      if (this.autoAck) {
        const d = directoryOf(m);
        const u = updateOf(m);
        if (d) this.ack('directory', d.version);
        if (u) this.ack(`service:${u.service}`, u.version);
      }
      this.wake();
    });
    this.call.write({
      hello: {
        workload: '',
        pod_ip: '',
        pod_name: '',
        labels: {},
        app_ports: [],
        sidecar_version: 'test',
        subscribe: [],
        strict: false,
        ...hello,
      },
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  subscribe(services: string[], unsubscribe: string[] = []): void {
    this.call.write({ subscribe: { services, unsubscribe } });
  }

  /** The sidecar is draining (0.2.0). */
  goodbye(reason: string): void {
    this.call.write({ goodbye: { reason } });
  }

  /** Any message as is (skew tests write what an older or newer sidecar sent). */
  send(msg: SidecarMessage): void {
    this.call.write(msg);
  }

  ack(resource: string, version: string, error = ''): void {
    this.call.write({ ack: { resource, version, error } });
  }

  updates(service: string): UpdateMsg[] {
    return this.messages.flatMap((m) => {
      const u = updateOf(m);
      return u && u.service === service ? [u] : [];
    });
  }

  directories(): DirectoryMsg[] {
    return this.messages.flatMap((m) => {
      const d = directoryOf(m);
      return d ? [d] : [];
    });
  }

  /** Waits for a message (after index `from`) satisfying `pred`. */
  next(pred: (m: ControlMessage) => boolean, timeoutMs = 3000, from = 0): Promise<ControlMessage> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.messages.slice(from).find(pred);
        if (m) {
          this.waiters.delete(check as () => void);
          clearTimeout(timer);
          resolve(m);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check as () => void);
        reject(new Error(`no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check as () => void);
    });
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

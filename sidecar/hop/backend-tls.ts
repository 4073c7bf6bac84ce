// BackendTLSPolicy (GEP-1897) on the outbound side: TLS origination to the
// endpoints of a Service outside the mesh. Built once per config: one secure
// context with the policy's CAs (or the system roots), SNI = the policy's
// hostname, and the server certificate must chain to those CAs and name that
// hostname. Nothing here ever falls back to plaintext: a policy that cannot
// be built, and any handshake that fails verification, become a 503 naming
// the policy (see proxy-errors: code WEFT_BACKEND_TLS).
import { connect as tlsConnect, createSecureContext, checkServerIdentity, rootCertificates, type SecureContext, type PeerCertificate } from 'node:tls';
import { isIP, type Socket } from 'node:net';
import http2, { type ClientHttp2Session } from 'node:http2';
import type { Dispatcher, buildConnector } from 'undici';
import { newPool, type Pool } from './undici-lite.js';
import { Pool as EnginePool } from '../http1/pool.js';
import type { TimerWheel } from '../http1/timer-wheel.js';
import type { BackendTLS } from '../../api/index.js';
import type { EndpointRt } from '../config/config-apply.js';

const CONNECT_TIMEOUT_MS = 5_000;
const H2_IDLE_MS = 60_000;
const POOL_OPTIONS = { pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 600_000, headersTimeout: 0, bodyTimeout: 0, connections: 64 };

export class BackendTlsError extends Error {
  readonly code = 'WEFT_BACKEND_TLS';
}

/** Counts a connection opened (SidecarMetrics.connection with direction "outbound"). */
export type TlsConnectionSink = (socket: Socket, peer: string, tls: boolean) => void;

/** TLS origination for one backend: pools per endpoint, all sharing one context. */
export class BackendTlsOrigin {
  private readonly pools = new Map<string, Pool>();
  private readonly h2 = new Map<string, ClientHttp2Session>();
  /** Connections that failed verification (fail closed), for /metrics and tests. */
  failures = 0;

  constructor(
    readonly tls: BackendTLS,
    private readonly context: SecureContext,
    private readonly count?: TlsConnectionSink,
  ) {}

  /** Same settings (hostname and trust) as `tls`: the origin, its pools and sessions can be kept. */
  sameAs(tls: BackendTLS): boolean {
    return tls.hostname === this.tls.hostname && (tls.caPem ?? '') === (this.tls.caPem ?? '') && !!tls.system === !!this.tls.system && tls.policy === this.tls.policy;
  }

  private readonly enginePools = new Map<string, EnginePool>();

  /**
   * The engine's HTTP/1.1 pool to an endpoint (outbound-engine.ts), with the
   * same verification as dispatcher(); a connect failure becomes the same
   * BackendTlsError through engineError().
   */
  enginePool(ep: EndpointRt, wheel?: TimerWheel): EnginePool {
    const key = `${ep.ip}:${ep.port}`;
    let p = this.enginePools.get(key);
    if (!p || p.isClosed) {
      const { hostname } = this.tls;
      p = new EnginePool({
        host: ep.ip,
        port: ep.port,
        ...(wheel ? { wheel } : {}),
        idleTimeoutMs: 60_000,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        tls: {
          servername: isIP(hostname) ? undefined : hostname,
          secureContext: this.context,
          ALPNProtocols: ['http/1.1'],
          rejectUnauthorized: true,
          checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(hostname, cert),
        },
        onConnected: (s) => {
          s.setKeepAlive(true, 60_000);
          this.count?.(s, hostname, true);
        },
      });
      this.enginePools.set(key, p);
    }
    return p;
  }

  /** A connection of enginePool() that failed before it was up: counted, and said as dispatcher()'s connector says it. */
  engineError(ep: EndpointRt, e: Error & { code?: string }): BackendTlsError {
    this.failures++;
    const { hostname, policy } = this.tls;
    return new BackendTlsError(`BackendTLSPolicy ${policy}: TLS to ${hostname} at ${ep.ip}:${ep.port} failed: ${e.message}${e.code ? ` (${e.code})` : ''}`);
  }

  dispatcher(ep: EndpointRt): Dispatcher {
    const key = `${ep.ip}:${ep.port}`;
    let p = this.pools.get(key);
    if (!p || p.closed || p.destroyed) {
      const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip;
      p = newPool(`https://${host}:${ep.port}`, { ...POOL_OPTIONS, connect: this.connector(ep.ip, ep.port) });
      this.pools.set(key, p);
    }
    return p;
  }

  /** An HTTP/2 session over TLS (ALPN h2) to the endpoint, for the h2/gRPC path; same verification. */
  h2Session(ep: EndpointRt): ClientHttp2Session {
    const key = `${ep.ip}:${ep.port}`;
    const cur = this.h2.get(key);
    if (cur && !cur.closed && !cur.destroyed) return cur;
    const { hostname, policy } = this.tls;
    const host = ep.ip.includes(':') ? `[${ep.ip}]` : ep.ip;
    const s = http2.connect(`https://${host}:${ep.port}`, {
      createConnection: () => {
        const sock = tlsConnect({
          host: ep.ip,
          port: ep.port,
          servername: isIP(hostname) ? undefined : hostname,
          secureContext: this.context,
          ALPNProtocols: ['h2'],
          rejectUnauthorized: true,
          checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(hostname, cert),
        });
        sock.setNoDelay(true);
        const timer = setTimeout(() => sock.destroy(Object.assign(new Error('TLS connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
        sock.once('close', () => clearTimeout(timer));
        sock.once('secureConnect', () => {
          clearTimeout(timer);
          this.count?.(sock, hostname, true);
        });
        sock.once('error', (e: Error & { code?: string }) => {
          // First listener: name the policy before http2 cancels the pending streams with this error.
          this.failures++;
          e.message = `BackendTLSPolicy ${policy}: TLS to ${hostname} at ${key} failed: ${e.message}${e.code ? ` (${e.code})` : ''}`;
          // Classified as the HTTP/1 origin's BackendTlsError is: fail closed, 503 (proxy-errors.ts).
          e.code = 'WEFT_BACKEND_TLS';
        });
        return sock;
      },
    });
    s.on('error', () => {});
    // An idle session closes (a Service that left the config must not hold it forever).
    s.setTimeout(H2_IDLE_MS, () => s.close());
    s.once('close', () => {
      if (this.h2.get(key) === s) this.h2.delete(key);
    });
    this.h2.set(key, s);
    return s;
  }

  private connector(ip: string, port: number): buildConnector.connector {
    const { hostname, policy } = this.tls;
    return (_opts, cb) => {
      let done = false;
      const socket = tlsConnect({
        host: ip,
        port,
        // SNI must be a DNS name (RFC 6066): never send an IP.
        servername: isIP(hostname) ? undefined : hostname,
        secureContext: this.context,
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: true,
        checkServerIdentity: (_host: string, cert: PeerCertificate) => checkServerIdentity(hostname, cert),
      });
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      const fail = (e: Error & { code?: string }) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        this.failures++;
        cb(new BackendTlsError(`BackendTLSPolicy ${policy}: TLS to ${hostname} at ${ip}:${port} failed: ${e.message}${e.code ? ` (${e.code})` : ''}`), null);
      };
      const timer = setTimeout(() => fail(Object.assign(new Error('TLS connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
      socket.once('secureConnect', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.removeListener('error', fail);
        this.count?.(socket, hostname, true);
        cb(null, socket);
      });
      socket.once('error', fail);
    };
  }

  /** Closes idle pools now and the rest once their requests finish. */
  close(): void {
    for (const p of this.pools.values()) void p.close().catch(() => {});
    this.pools.clear();
    for (const p of this.enginePools.values()) p.close();
    this.enginePools.clear();
    for (const s of this.h2.values()) s.close();
    this.h2.clear();
  }
}

/**
 * Builds TLS origination for a backend's policy, reusing `prev` when nothing
 * changed (kept connections). `refusal` says why requests must fail closed.
 */
export function buildBackendTls(tls: BackendTLS, prev: BackendTlsOrigin | undefined, count?: TlsConnectionSink): { origin?: BackendTlsOrigin; refusal?: string } {
  if (tls.invalid) return { refusal: `BackendTLSPolicy ${tls.policy}: ${tls.invalid}` };
  if (!tls.hostname) return { refusal: `BackendTLSPolicy ${tls.policy}: validation.hostname is empty` };
  if (prev && prev.sameAs(tls)) return { origin: prev };
  let ca: string[];
  if (tls.system && !tls.caPem) ca = [...rootCertificates];
  else if (tls.caPem && !tls.system) ca = splitPem(tls.caPem);
  else return { refusal: `BackendTLSPolicy ${tls.policy}: exactly one of caCertificateRefs and wellKnownCACertificates is required` };
  if (ca.length === 0) return { refusal: `BackendTLSPolicy ${tls.policy}: caCertificateRefs hold no PEM certificate` };
  let context: SecureContext;
  try {
    context = createSecureContext({ ca });
  } catch (e) {
    return { refusal: `BackendTLSPolicy ${tls.policy}: CA certificates could not be loaded: ${(e as Error).message}` };
  }
  return { origin: new BackendTlsOrigin(tls, context, count) };
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

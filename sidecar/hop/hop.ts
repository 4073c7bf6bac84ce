// The mesh hop, client side: mutual TLS to the peer sidecar's inbound port.
// The server name carries the app port and the peer's identity
// (`<port>.<sa>.<ns>.weft`); the peer must present exactly the SPIFFE ID of
// the endpoint we chose, or the connection is refused (a pod IP reused by
// another workload must not receive this traffic).
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import type { buildConnector } from 'undici';
import { spiffeIdOfCert } from '../../certs/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';

const CONNECT_TIMEOUT_MS = 5_000;
export const HOP_ALPN = ['http/1.1'];

export class PeerIdentityError extends Error {
  readonly code = 'WEFT_PEER_IDENTITY';
}

/** Counts a connection the sidecar opened (tcp_* metrics); SidecarMetrics.connection has this shape. */
export type ConnectionSink = (socket: Socket, peer: string, tls: boolean) => void;

export function meshConnector(identity: IdentityHolder, ip: string, port: number, serverName: string, expectSpiffe: string, count?: ConnectionSink): buildConnector.connector {
  return (_opts, cb) => {
    const id = identity.current;
    if (!id) {
      cb(new Error('no mesh certificate yet'), null);
      return;
    }
    const socket = tlsConnect({
      host: ip,
      port,
      servername: serverName,
      secureContext: id.context,
      ALPNProtocols: HOP_ALPN,
      rejectUnauthorized: true,
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const got = spiffeIdOfCert(cert);
        if (got !== expectSpiffe) return new PeerIdentityError(`peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expectSpiffe}`);
        return undefined;
      },
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    settle(socket, 'secureConnect', () => count?.(socket, expectSpiffe, true), cb);
  };
}

/** Plain TCP to an endpoint without a sidecar (or the app behind the inbound). */
export function plainConnector(ip: string, port: number, count?: ConnectionSink): buildConnector.connector {
  return (_opts, cb) => {
    const socket = netConnect({ host: ip, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
    settle(socket, 'connect', () => count?.(socket, '', false), cb);
  };
}

/**
 * Hands `socket` to undici once `ready` fires, or fails it on the first
 * error or after CONNECT_TIMEOUT_MS — whichever comes first, exactly once.
 */
function settle(socket: Socket, ready: 'connect' | 'secureConnect', onReady: () => void, cb: Parameters<buildConnector.connector>[1]): void {
  let done = false;
  const fail = (e: Error) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.destroy();
    cb(e, null);
  };
  const timer = setTimeout(() => fail(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), CONNECT_TIMEOUT_MS);
  socket.once(ready, () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.removeListener('error', fail);
    onReady();
    cb(null, socket);
  });
  socket.once('error', fail);
}

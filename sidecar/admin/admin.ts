// The admin listener (POD_IP:7090): /ready, /live, /config, /metrics,
// /identity, /resilience, POST /shutdown. /ready is 200 only with a certificate and a first
// directory from control (kubelet and `weft up` wait on it).
import { createServer, type Server } from 'node:http';
import { certSha256, certValidity, splitPemBundle } from '../../certs/index.js';
import type { Identity, IdentityHolder } from '../config/bootstrap.js';
import type { MeshState } from '../config/config-apply.js';
import type { ConfigStream } from '../config/config-stream.js';
import type { SidecarMetrics } from './metrics.js';
import { APP_PROBE_PREFIX, type AppProbe } from '../../api/index.js';
import { serveAppProbe } from './app-probe.js';
import { parseTapQuery, type TapHub } from '../observe/tap.js';

export interface AdminOptions {
  identity: IdentityHolder;
  state: MeshState;
  stream: ConfigStream;
  metrics: SidecarMetrics;
  self: Record<string, unknown>;
  onShutdown: () => void;
  /** True once draining: /ready answers 503 so nothing new is sent here. */
  draining: () => boolean;
  /** GET /resilience: per backend in flight, shed, retry budget use and endpoint states (resilience.ts). */
  resilience?: () => unknown;
  /** The inbound authorization in force (authz-state.ts), shown in /config. */
  inbound?: () => unknown;

  /** The app's probes the injector rewrote to /app-probe/... (WEFT_APP_PROBES), forwarded to the app at podIP. */
  appProbes?: { probes: Readonly<Record<string, AppProbe>>; podIP: string };
  /** `GET /tap?service=ns/name&destination=ns/workload&direction=&max=`: live requests as NDJSON (`weft tap`). */
  tap?: TapHub;
}

export function isReady(identity: IdentityHolder, state: MeshState): boolean {
  return !!identity.current && !!state.directory;
}

export function configSnapshot(o: AdminOptions): unknown {
  const id = o.identity.current;
  return {
    self: o.self,
    ready: isReady(o.identity, o.state),
    certificate: id ? { spiffeId: id.spiffe, notBefore: id.notBefore.toISOString(), notAfter: id.notAfter.toISOString() } : null,
    control: { connected: o.stream.connected, nacks: Object.fromEntries(o.stream.lastNack) },
    directory: o.state.directory ? { version: o.state.directory.version, services: o.state.directory.entries } : null,
    services: Object.fromEntries([...o.state.services].map(([k, s]) => [k, { version: s.version, config: s.config }])),
    ...(o.inbound ? { inbound: o.inbound() } : {}),
  };
}

export interface IdentityView {
  spiffeId: string;
  leaf: { notBefore: string; notAfter: string; sha256: string; issuerSha256: string } | null;
  trustBundle: { subject: string; notAfter: string; sha256: string }[];
}

/**
 * GET /identity: the leaf in use and the anchors new handshakes trust. Each
 * sha256 is the lowercase hex SHA-256 of the certificate's DER, what
 * `openssl x509 -noout -fingerprint -sha256` prints without the colons.
 */
export function identityView(spiffe: string, id: Identity | undefined): IdentityView {
  if (!id) return { spiffeId: spiffe, leaf: null, trustBundle: [] };
  const bundle: IdentityView['trustBundle'] = [];
  for (const b of splitPemBundle(id.bundlePem)) {
    try {
      const v = certValidity(b);
      bundle.push({ subject: v.subject, notAfter: v.notAfter.toISOString(), sha256: certSha256(b) });
    } catch {
      // control validated the bundle; an unreadable block is not trusted by TLS either
    }
  }
  return {
    spiffeId: id.spiffe,
    leaf: { notBefore: id.notBefore.toISOString(), notAfter: id.notAfter.toISOString(), sha256: id.leafSha256, issuerSha256: id.issuerSha256 },
    trustBundle: bundle,
  };
}

export function createAdmin(o: AdminOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (path === '/live') return send(200, 'live\n');
    if (path === '/ready') {
      if (o.draining()) return send(503, 'not ready: draining\n');
      return isReady(o.identity, o.state) ? send(200, 'ready\n') : send(503, `not ready: ${o.identity.current ? 'no config from control yet' : 'no certificate yet'}\n`);
    }
    if (path === '/identity') return send(200, JSON.stringify(identityView(o.identity.spiffe, o.identity.current), null, 2) + '\n', 'application/json');
    if (path === '/config') return send(200, JSON.stringify(configSnapshot(o), null, 2) + '\n', 'application/json');
    if (path === '/resilience' && o.resilience) return send(200, JSON.stringify(o.resilience(), null, 2) + '\n', 'application/json');
    if (path === '/metrics') {
      o.metrics.render().then(
        (text) => send(200, text, o.metrics.contentType),
        (e: Error) => send(500, e.message),
      );
      return;
    }
    if (path === '/shutdown') {
      if (req.method !== 'POST') return send(405, 'POST only\n');
      // Only the pod itself may stop its sidecar (the admin port is reachable
      // from other pods for probes and scraping).
      const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      if (!(from.startsWith('127.') || from === '::1' || from === o.self.podIP)) return send(403, 'shutdown is allowed from the pod itself only\n');
      send(202, 'shutting down\n');
      setImmediate(o.onShutdown);
      return;
    }
    if (o.appProbes && path.startsWith(APP_PROBE_PREFIX) && serveAppProbe(req, res, path, o.appProbes.probes, o.appProbes.podIP)) return;
    if (path === '/tap' && o.tap) {
      // Live requests show paths and identities: like /shutdown, only from the
      // pod itself (in a cluster, through `kubectl port-forward`).
      const src = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
      if (!(src.startsWith('127.') || src === '::1' || src === o.self.podIP)) return send(403, 'tap is allowed from the pod itself only (kubectl port-forward)\n');
      const q = parseTapQuery(new URL(req.url ?? '/', 'http://admin').searchParams);
      if ('error' in q) return send(400, `tap: ${q.error}\n`);
      if (!o.tap.subscribe(res, q.filter, q.max)) return send(503, 'tap: too many subscribers\n');
      return;
    }
    send(404, 'not found\n');
  });
}

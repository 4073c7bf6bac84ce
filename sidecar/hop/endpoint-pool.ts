// Pooled keep-alive connections per endpoint: one undici Pool per (pod IP,
// hop server name) for meshed endpoints, per ip:port for plain ones, one Agent
// for traffic leaving the mesh. Pools are shared by every Service that
// reaches the same endpoint, and closed when no config names them any more.
import type { Dispatcher } from 'undici';
import { newAgent, newPool, type Agent, type Pool } from './undici-lite.js';
import { hopServerName, PORTS } from '../../api/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';
import type { EndpointRt } from '../config/config-apply.js';
import { meshConnector, plainConnector, type ConnectionSink } from './hop.js';
import { H2Sessions } from './hop-h2.js';
import { MuxHop } from './hop-mux.js';
import type { Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { Pool as EnginePool } from '../http1/pool.js';
import type { TimerWheel } from '../http1/timer-wheel.js';
import { spiffeIdOfCert } from '../../certs/index.js';
import { HOP_ALPN, PeerIdentityError } from './hop.js';

const POOL_OPTIONS = {
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
  headersTimeout: 0,
  bodyTimeout: 0,
};

export class EndpointPools {
  /** undici Pools and MuxHops (a MuxHop has the face sweep() and close() use: stats, close, destroy). */
  private readonly pools = new Map<string, Pool>();
  /** The Agent for traffic leaving the mesh: made (and undici loaded) by the first such request. */
  private externalAgent: Agent | undefined = undefined;
  /** HTTP/2 client sessions: the outbound's mesh hops and h2c endpoints, and the inbound's h2c leg to the app. */
  readonly h2Mesh: H2Sessions;
  readonly h2App: H2Sessions;

  constructor(
    private readonly identity: IdentityHolder,
    /** The peers' inbound port (7002, or a test's override). */
    readonly inboundPort: number = PORTS.inbound,
    private readonly connections = 64,
    /** Counts upstream connections (tcp_* metrics, direction "outbound"); pinned app pools count as "inbound". */
    private readonly count?: (socket: Socket, direction: 'outbound' | 'inbound', peer: string, tls: boolean) => void,
    /**
     * The hop to meshed endpoints: weft-mux/1 (default: one multiplexed
     * connection per peer and port; a peer without it is served by the
     * HTTP/1.1 pool), or the HTTP/1.1 pool alone (WEFT_HOP=http1).
     */
    private readonly hopMux = process.env.WEFT_HOP !== 'http1',
  ) {
    this.h2Mesh = new H2Sessions(identity);
    this.h2App = new H2Sessions(undefined);
  }

  get external(): Agent {
    return (this.externalAgent ??= newAgent({ ...POOL_OPTIONS, keepAliveTimeout: 10_000, connections: this.connections }));
  }

  /** The engine's HTTP/1.1 pools (sidecar/http1/pool.ts): plain endpoints, and meshed ones over the mTLS HTTP/1.1 hop. */
  private readonly enginePools = new Map<string, EnginePool>();
  private readonly engineOf = new WeakMap<EndpointRt, EnginePool>();
  /** The timer wheel the engine pools' idle connections expire on (the outbound engine adapter's). */
  engineWheel: TimerWheel | undefined = undefined;

  /**
   * How the engine's HTTP/1.1 adapter reaches an endpoint: its weft-mux/1
   * hop (the raw entry; MuxHop.openRaw returns null for a peer without
   * weft-mux/1), or an engine pool — plain TCP for an endpoint without a
   * sidecar, mTLS HTTP/1.1 to the peer's inbound otherwise (WEFT_HOP=http1,
   * or the mux hop's fallback).
   */
  engineHop(ep: EndpointRt): MuxHop | EnginePool {
    // A plain endpoint goes straight to its engine pool (forEndpoint would make it an undici Pool it never uses).
    if (ep.identity && ep.spiffe) {
      const d = this.forEndpoint(ep);
      if (d instanceof MuxHop && !d.fallsBack) return d;
    }
    return this.enginePool(ep);
  }

  /** The engine pool of an endpoint (cached per endpoint). */
  enginePool(ep: EndpointRt): EnginePool {
    const cached = this.engineOf.get(ep);
    if (cached && !cached.isClosed) return cached;
    let key: string;
    let make: () => EnginePool;
    const wheel = this.engineWheel;
    if (ep.identity && ep.spiffe) {
      const sni = hopServerName(ep.port, ep.identity.serviceAccount, ep.identity.namespace);
      const expect = ep.spiffe;
      const ip = ep.ip;
      key = `${ip}|${sni}|${expect}|engine`;
      const count = this.sink('outbound');
      make = () =>
        new EnginePool({
          host: ip,
          port: this.inboundPort,
          ...(wheel ? { wheel } : {}),
          idleTimeoutMs: 60_000,
          connectTimeoutMs: 5_000,
          tls: () => ({
            servername: sni,
            secureContext: this.identity.current?.context,
            ALPNProtocols: HOP_ALPN,
            rejectUnauthorized: true,
            checkServerIdentity: (_host: string, cert: PeerCertificate) => {
              const got = spiffeIdOfCert(cert);
              return got === expect ? undefined : new PeerIdentityError(`peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expect}`);
            },
          }),
          // Every secure connect, resumed or not: the peer must be the endpoint we chose.
          verifyPeer: (s: TLSSocket) => {
            const got = spiffeIdOfCert(s.getPeerCertificate());
            return got === expect ? null : `peer ${ip} presented ${got ?? 'no SPIFFE ID'}, expected ${expect}`;
          },
          onConnected: (s) => {
            s.setKeepAlive(true, 60_000);
            count?.(s, expect, true);
          },
        });
    } else {
      key = `${ep.ip}:${ep.port}|engine`;
      const count = this.sink('outbound');
      make = () =>
        new EnginePool({
          host: ep.ip,
          port: ep.port,
          ...(wheel ? { wheel } : {}),
          idleTimeoutMs: 60_000,
          connectTimeoutMs: 5_000,
          onConnected: (s) => {
            s.setKeepAlive(true, 60_000);
            count?.(s, '', false);
          },
        });
    }
    let p = this.enginePools.get(key);
    if (!p || p.isClosed) {
      p = make();
      this.enginePools.set(key, p);
    }
    this.engineOf.set(ep, p);
    return p;
  }

  /** The dispatcher of an endpoint (cached on it). */
  forEndpoint(ep: EndpointRt): Dispatcher {
    const d = ep.dispatcher as Pool | undefined;
    if (d && !d.closed && !d.destroyed) return d;
    const pool = ep.identity && ep.spiffe ? this.mesh(ep.ip, ep.port, ep.identity.serviceAccount, ep.identity.namespace, ep.spiffe) : this.plain(ep.ip, ep.port);
    ep.dispatcher = pool;
    return pool;
  }

  mesh(ip: string, appPort: number, sa: string, ns: string, spiffe: string): Dispatcher {
    const sni = hopServerName(appPort, sa, ns);
    const key = `${ip}|${sni}|${spiffe}`;
    if (!this.hopMux) return this.meshHttp1(key, ip, sni, spiffe);
    let p = this.pools.get(key);
    if (!p || p.closed || p.destroyed) {
      p = new MuxHop(this.identity, ip, this.inboundPort, sni, spiffe, () => this.meshHttp1(`${key}|http1`, ip, sni, spiffe), this.sink('outbound')) as unknown as Pool;
      this.pools.set(key, p);
    }
    return p;
  }

  /** The HTTP/1.1 pool of a meshed endpoint (a peer without weft-mux/1, upgrades, WEFT_HOP=http1). */
  private meshHttp1(key: string, ip: string, sni: string, spiffe: string): Pool {
    let p = this.pools.get(key);
    if (!p || p.closed || p.destroyed) {
      p = newPool(`http://${ip}:${this.inboundPort}`, { ...POOL_OPTIONS, connections: this.connections, connect: meshConnector(this.identity, ip, this.inboundPort, sni, spiffe, this.sink('outbound')) });
      this.pools.set(key, p);
    }
    return p;
  }

  private sink(direction: 'outbound' | 'inbound'): ConnectionSink | undefined {
    const c = this.count;
    return c ? (socket, peer, tls) => c(socket, direction, peer, tls) : undefined;
  }

  plain(ip: string, port: number, direction: 'outbound' | 'inbound' = 'outbound'): Pool {
    const key = `${ip}:${port}`;
    let p = this.pools.get(key);
    if (!p) {
      p = newPool(`http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`, { ...POOL_OPTIONS, connections: this.connections, connect: plainConnector(ip, port, this.sink(direction)) });
      this.pools.set(key, p);
    }
    return p;
  }

  /** Pools of the app behind the inbound: never swept. */
  private readonly pinned = new Set<Pool>();

  pin(p: Pool): Pool {
    this.pinned.add(p);
    return p;
  }

  /**
   * Closes pools that no current endpoint uses and that have nothing in
   * flight (endpoints that left the config, pod IPs no longer called).
   * An endpoint object still holding a closed pool gets a new one on next use.
   */
  sweep(liveEndpoints: Iterable<EndpointRt>): number {
    const live = [...liveEndpoints];
    const keep = new Set<Dispatcher>();
    for (const ep of live) if (ep.dispatcher) keep.add(ep.dispatcher as Dispatcher);
    let closed = 0;
    const keepEngine = new Set<EnginePool>();
    for (const ep of live) {
      const e = this.engineOf.get(ep);
      if (e) keepEngine.add(e);
    }
    for (const [k, p] of this.enginePools) {
      if (keepEngine.has(p)) continue;
      // Closing drops the idle connections; one in use is destroyed when it comes back.
      this.enginePools.delete(k);
      p.close();
    }
    for (const [k, p] of this.pools) {
      if (keep.has(p) || this.pinned.has(p)) continue;
      const st = p.stats;
      if (st.running > 0 || st.pending > 0 || st.queued > 0) continue;
      this.pools.delete(k);
      closed++;
      void p.close().catch(() => {});
    }
    return closed;
  }

  get size(): number {
    return this.pools.size;
  }

  private closeEngine(): void {
    for (const p of this.enginePools.values()) p.close();
    this.enginePools.clear();
  }

  async close(): Promise<void> {
    this.closeEngine();
    this.h2Mesh.closeAll();
    this.h2App.closeAll();
    const all = [...this.pools.values()].map((p) => p.close().catch(() => {}));
    this.pools.clear();
    await Promise.all([...all, this.externalAgent?.close().catch(() => {})]);
  }

  async destroy(): Promise<void> {
    this.closeEngine();
    this.h2Mesh.closeAll();
    this.h2App.closeAll();
    const all = [...this.pools.values()].map((p) => p.destroy().catch(() => {}));
    this.pools.clear();
    await Promise.all([...all, this.externalAgent?.destroy().catch(() => {})]);
  }
}

// Pooled keep-alive connections per endpoint: one undici Pool per (pod IP,
// hop server name) for meshed endpoints, per ip:port for plain ones, one Agent
// for traffic leaving the mesh. Pools are shared by every Service that
// reaches the same endpoint, and closed when no config names them any more.
import type { Dispatcher } from 'undici';
import { Agent, Pool } from './undici-lite.js';
import { hopServerName, PORTS } from '../../api/index.js';
import type { IdentityHolder } from '../config/bootstrap.js';
import type { EndpointRt } from '../config/config-apply.js';
import { meshConnector, plainConnector, type ConnectionSink } from './hop.js';
import { H2Sessions } from './hop-h2.js';
import { MuxHop } from './hop-mux.js';
import type { Socket } from 'node:net';

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
  readonly external: Agent;
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
    this.external = new Agent({ ...POOL_OPTIONS, keepAliveTimeout: 10_000, connections });
    this.h2Mesh = new H2Sessions(identity);
    this.h2App = new H2Sessions(undefined);
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
      p = new Pool(`http://${ip}:${this.inboundPort}`, { ...POOL_OPTIONS, connections: this.connections, connect: meshConnector(this.identity, ip, this.inboundPort, sni, spiffe, this.sink('outbound')) });
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
      p = new Pool(`http://${ip.includes(':') ? `[${ip}]` : ip}:${port}`, { ...POOL_OPTIONS, connections: this.connections, connect: plainConnector(ip, port, this.sink(direction)) });
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
  sweep(live: Iterable<EndpointRt>): number {
    const keep = new Set<Dispatcher>();
    for (const ep of live) if (ep.dispatcher) keep.add(ep.dispatcher as Dispatcher);
    let closed = 0;
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

  async close(): Promise<void> {
    this.h2Mesh.closeAll();
    this.h2App.closeAll();
    const all = [...this.pools.values()].map((p) => p.close().catch(() => {}));
    this.pools.clear();
    await Promise.all([...all, this.external.close().catch(() => {})]);
  }

  async destroy(): Promise<void> {
    this.h2Mesh.closeAll();
    this.h2App.closeAll();
    const all = [...this.pools.values()].map((p) => p.destroy().catch(() => {}));
    this.pools.clear();
    await Promise.all([...all, this.external.destroy().catch(() => {})]);
  }
}

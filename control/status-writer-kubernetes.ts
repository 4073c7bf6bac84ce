// Route and policy status in a cluster. compile decides what weft's entries
// say; this edge writes them through the status subresource, only when they
// differ from what the object carries, only while this replica holds the Lease,
// and merged so other controllers' entries stay as they are.
import type { PolicyStatus, RouteStatus } from '../api/index.js';
import { CONTROLLER_NAME } from '../api/index.js';
import { KubeApiError, type KubeClient } from './kubernetes-client.js';
import { kindSpec, type KubernetesSource, type RawObject } from './source-kubernetes.js';
import { carryPolicyStatusTimes, carryRouteStatusTimes, mergePolicyStatus, mergeRouteStatus } from './status.js';
import type { ResourceStatus } from './types.js';

export const LEASE_NAMESPACE = 'weft-system';
export const LEASE_NAME = 'weft-control-status';

/** Deterministic JSON (sorted keys) for "did it change" comparisons. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as object)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** metav1.MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

interface Lease {
  apiVersion: 'coordination.k8s.io/v1';
  kind: 'Lease';
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: { holderIdentity?: string; leaseDurationSeconds?: number; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

export interface LeaseOptions {
  client: KubeClient;
  identity: string;
  namespace?: string;
  name?: string;
  leaseDurationSeconds?: number;
  /** How often the holder renews, and others try to take over. */
  retryPeriodMs?: number;
  onChange?: (leader: boolean) => void;
  log?: (line: string) => void;
  now?: () => Date;
}

/** Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it. */
export class LeaseElector {
  private leader = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastRenew = 0;
  private readonly o: Required<Omit<LeaseOptions, 'onChange' | 'log'>> & Pick<LeaseOptions, 'onChange' | 'log'>;

  constructor(o: LeaseOptions) {
    this.o = { namespace: LEASE_NAMESPACE, name: LEASE_NAME, leaseDurationSeconds: 15, retryPeriodMs: 2000, now: () => new Date(), ...o };
  }

  isLeader(): boolean {
    // A holder that could not renew within the lease duration must assume it lost the lease.
    if (this.leader && Date.now() - this.lastRenew > this.o.leaseDurationSeconds * 1000) this.setLeader(false);
    return this.leader;
  }

  start(): void {
    void this.tick();
  }

  /** Stops renewing; a holder releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // A renewal in flight must land before we release, or it would take the lease back.
    await this.inflight;
    if (this.leader) {
      this.setLeader(false);
      try {
        const l = await this.get();
        if (l && l.spec.holderIdentity === this.o.identity) {
          await this.put({ ...l, spec: { ...l.spec, holderIdentity: '', leaseDurationSeconds: 1 } });
        }
      } catch {
        // best effort: the lease expires anyway
      }
    }
  }

  private setLeader(v: boolean): void {
    if (this.leader === v) return;
    this.leader = v;
    this.o.log?.(`lease ${this.o.namespace}/${this.o.name}: ${v ? 'acquired' : 'lost'} by ${this.o.identity}`);
    this.o.onChange?.(v);
  }

  private path(name?: string): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases${name ? `/${name}` : ''}`;
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return await this.o.client.request<Lease>(this.path(this.o.name));
    } catch (e) {
      if (e instanceof KubeApiError && e.code === 404) return undefined;
      throw e;
    }
  }

  private put(l: Lease): Promise<Lease> {
    return this.o.client.request<Lease>(this.path(this.o.name), { method: 'PUT', body: l });
  }

  /** One try to acquire or renew; returns whether we hold the lease after it. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.o.now();
    const mine = { holderIdentity: this.o.identity, leaseDurationSeconds: this.o.leaseDurationSeconds, renewTime: microTime(now) };
    const cur = await this.get();
    if (!cur) {
      await this.o.client.request(this.path(), {
        method: 'POST',
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.o.name, namespace: this.o.namespace },
          spec: { ...mine, acquireTime: microTime(now), leaseTransitions: 0 },
        },
      });
      return true;
    }
    const s = cur.spec;
    if (s.holderIdentity === this.o.identity) {
      await this.put({ ...cur, spec: { ...s, ...mine } });
      return true;
    }
    const renewed = s.renewTime ? Date.parse(s.renewTime) : 0;
    const expired = !s.holderIdentity || renewed + (s.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000 < now.getTime();
    if (!expired) return false;
    // Take over; the resourceVersion makes two contenders race safely (one gets 409).
    await this.put({ ...cur, spec: { ...s, ...mine, acquireTime: microTime(now), leaseTransitions: (s.leaseTransitions ?? 0) + 1 } });
    return true;
  }

  private inflight: Promise<void> | undefined;

  private tick(): Promise<void> {
    this.inflight = this.tickOnce();
    return this.inflight;
  }

  private async tickOnce(): Promise<void> {
    if (this.stopped) return;
    try {
      const held = await this.tryAcquireOrRenew();
      if (held) this.lastRenew = Date.now();
      this.setLeader(held);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.code === 409)) this.o.log?.(`lease: ${(e as Error).message}`);
      this.isLeader(); // drops leadership once the lease would have expired
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.o.retryPeriodMs);
    this.timer.unref?.();
  }
}

export interface StatusWriterOptions {
  client: KubeClient;
  source: KubernetesSource;
  /** Write only while this returns true (LeaseElector.isLeader). */
  isLeader: () => boolean;
  log?: (line: string) => void;
  now?: () => Date;
  /** Coalesce bursts of updates. */
  debounceMs?: number;
}

export interface WriteReport {
  written: string[];
  unchanged: number;
  failed: string[];
}

const STATUS_KINDS = ['HTTPRoute', 'GRPCRoute', 'BackendLBPolicy', 'BackendTLSPolicy', 'AuthorizationPolicy', 'XBackendTrafficPolicy'];
const isRouteKind = (k: string) => k === 'HTTPRoute' || k === 'GRPCRoute';

function ourEntries(kind: string, status: unknown): unknown[] {
  const s = (status ?? {}) as { parents?: { controllerName?: string }[]; ancestors?: { controllerName?: string }[] };
  const list = isRouteKind(kind) ? s.parents : s.ancestors;
  return (list ?? []).filter((e) => e.controllerName === CONTROLLER_NAME);
}

export class KubernetesStatusWriter {
  private desired = new Map<string, ResourceStatus>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<WriteReport> | undefined;
  private again = false;
  readonly totals = { writes: 0, conflicts: 0, failures: 0 };

  constructor(private readonly o: StatusWriterOptions) {}

  /** compile's statuses (all of them, each time); writes follow if we hold the lease. */
  update(statuses: ResourceStatus[]): void {
    this.desired = new Map(statuses.filter((s) => STATUS_KINDS.includes(s.kind)).map((s) => [`${s.kind}/${s.namespace}/${s.name}`, s]));
    this.schedule();
  }

  /** Call when leadership is gained or objects changed, to catch up. */
  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile();
    }, this.o.debounceMs ?? 50);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One pass over every status weft owns; serialized (a pass in flight queues one more). */
  async reconcile(): Promise<WriteReport> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.pass();
    try {
      return await this.running;
    } finally {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    }
  }

  private next(kind: string, existing: unknown, desired: ResourceStatus | undefined, now: string): unknown {
    if (isRouteKind(kind)) {
      const ex = existing as RouteStatus | undefined;
      const ours: RouteStatus = desired ? carryRouteStatusTimes(ex, desired.status as RouteStatus, now) : { parents: [] };
      return { ...(existing as object | undefined), ...mergeRouteStatus(ex, ours) };
    }
    const ex = existing as PolicyStatus | undefined;
    const ours: PolicyStatus = desired ? carryPolicyStatusTimes(ex, desired.status as PolicyStatus, now) : { ancestors: [] };
    return { ...(existing as object | undefined), ...mergePolicyStatus(ex, ours) };
  }

  private async pass(): Promise<WriteReport> {
    const report: WriteReport = { written: [], unchanged: 0, failed: [] };
    if (!this.o.isLeader()) return report;
    const now = (this.o.now ?? (() => new Date()))().toISOString().replace(/\.\d{3}Z$/, 'Z');
    // What compile wants, plus objects still carrying weft entries compile no longer produces.
    const targets = new Map<string, { kind: string; namespace: string; name: string }>();
    for (const [k, s] of this.desired) targets.set(k, { kind: s.kind, namespace: s.namespace, name: s.name });
    for (const kind of STATUS_KINDS) {
      for (const o of this.o.source.rawObjects(kind)) {
        if (ourEntries(kind, o.status).length > 0) {
          const ns = o.metadata.namespace ?? 'default';
          targets.set(`${kind}/${ns}/${o.metadata.name}`, { kind, namespace: ns, name: o.metadata.name });
        }
      }
    }
    for (const [key, t] of targets) {
      if (!this.o.isLeader()) break;
      const desired = this.desired.get(key);
      let obj = this.o.source.raw(t.kind, t.namespace, t.name);
      if (!obj) continue; // deleted, or not seen yet: the watch will tell us
      for (let attempt = 0; attempt < 3; attempt++) {
        const next = this.next(t.kind, obj.status, desired, now);
        if (canonical(ourEntries(t.kind, next)) === canonical(ourEntries(t.kind, obj.status)) && canonical(next) === canonical(obj.status ?? {})) {
          report.unchanged++;
          break;
        }
        try {
          await this.write(obj, next);
          this.totals.writes++;
          report.written.push(key);
          break;
        } catch (e) {
          if (e instanceof KubeApiError && e.code === 409 && attempt < 2) {
            // Someone else wrote in between: read the object again and merge onto it.
            this.totals.conflicts++;
            try {
              obj = await this.read(obj);
            } catch (e2) {
              if (e2 instanceof KubeApiError && e2.code === 404) break;
              throw e2;
            }
            continue;
          }
          if (e instanceof KubeApiError && e.code === 404) break;
          this.totals.failures++;
          report.failed.push(`${key}: ${(e as Error).message}`);
          this.o.log?.(`status ${key}: ${(e as Error).message}`);
          break;
        }
      }
    }
    return report;
  }

  private objectPath(o: RawObject): string {
    const s = kindSpec(o.kind);
    if (!s) throw new Error(`no API path for ${o.kind}`);
    return `${s.path.replace(/\/[^/]+$/, '')}/namespaces/${o.metadata.namespace ?? 'default'}/${s.path.split('/').pop()}/${o.metadata.name}`;
  }

  private read(o: RawObject): Promise<RawObject> {
    return this.o.client.request<RawObject>(this.objectPath(o));
  }

  private write(o: RawObject, status: unknown): Promise<RawObject> {
    // PUT on /status with the resourceVersion we read: optimistic concurrency, so
    // another controller's concurrent entry is never overwritten blindly.
    return this.o.client.request<RawObject>(`${this.objectPath(o)}/status`, {
      method: 'PUT',
      body: { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, namespace: o.metadata.namespace, resourceVersion: o.metadata.resourceVersion }, status },
    });
  }
}

// The Kubernetes source: one reflector per kind lists, then watches from the
// list's resourceVersion (bookmarks keep it fresh), relists on 410 Gone, and
// re-watches after a dropped connection. Every object is validated like a
// file document; an invalid update keeps serving the object's last good
// version, with an error naming resource and field. Each kind is its own
// store source ("kubernetes/<Kind>"), so a relist replaces exactly that kind.
import { performance } from 'node:perf_hooks';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { AnyResource, BackendTLSPolicy } from '../api/index.js';
import { DEFAULT_INBOUND_POLICY_ANNOTATION } from '../api/index.js';
import { KubeApiError, KubeClient, isStatus } from './kubernetes-client.js';
import { keyOf, resourceKey, type Store } from './store.js';
import type { ConfigError, RegisteredWorkload } from './types.js';
import { validateResource } from './validate.js';

const GW = 'gateway.networking.k8s.io';

export interface KindSpec {
  kind: string;
  apiVersion: string;
  /** Collection path across all namespaces. */
  path: string;
  /** A CRD that may not be installed: a 404 means "none yet", retried later. */
  optional: boolean;
  /** Keep the raw object (with status) for the status writer. */
  keepRaw: boolean;
  namespaced: boolean;
}

const spec = (kind: string, group: string, version: string, plural: string, o: Partial<KindSpec> = {}): KindSpec => ({
  kind,
  apiVersion: group ? `${group}/${version}` : version,
  path: `${group ? `/apis/${group}` : '/api'}/${version}/${plural}`,
  optional: false,
  keepRaw: false,
  namespaced: true,
  ...o,
});

export const KINDS: KindSpec[] = [
  spec('Namespace', '', 'v1', 'namespaces', { namespaced: false }),
  spec('Service', '', 'v1', 'services'),
  spec('EndpointSlice', 'discovery.k8s.io', 'v1', 'endpointslices'),
  spec('ConfigMap', '', 'v1', 'configmaps'),
  spec('HTTPRoute', GW, 'v1', 'httproutes', { optional: true, keepRaw: true }),
  spec('GRPCRoute', GW, 'v1', 'grpcroutes', { optional: true, keepRaw: true }),
  spec('ReferenceGrant', GW, 'v1beta1', 'referencegrants', { optional: true }),
  spec('BackendLBPolicy', GW, 'v1alpha2', 'backendlbpolicies', { optional: true, keepRaw: true }),
  spec('BackendTLSPolicy', GW, 'v1alpha3', 'backendtlspolicies', { optional: true, keepRaw: true }),
  // GEP-3388 retry budgets: experimental channel (v1.3+) or `weft install`'s CRD.
  spec('XBackendTrafficPolicy', 'gateway.networking.x-k8s.io', 'v1alpha1', 'xbackendtrafficpolicies', { optional: true, keepRaw: true }),
  // weft's own CRD (weft install ships it); optional so control starts before it exists.
  spec('AuthorizationPolicy', 'policy.weft.io', 'v1alpha1', 'authorizationpolicies', { optional: true, keepRaw: true }),
  // Pods are not compiled; they say which endpoint IPs have a sidecar (mTLS
  // at podIP:7002) and under which service account: store.setRegistered.
  spec('Pod', '', 'v1', 'pods'),
];

const INJECTED_ANNOTATION = 'weft.io/injected';

interface RawProbe {
  httpGet?: { path?: string; port?: number | string };
}
interface RawPod extends RawObject {
  spec?: {
    serviceAccountName?: string;
    containers?: { ports?: { containerPort?: number; protocol?: string; name?: string }[]; readinessProbe?: RawProbe; livenessProbe?: RawProbe; startupProbe?: RawProbe }[];
  };
  status?: { podIP?: string; phase?: string };
}

/** A running pod with a weft sidecar → the workload entry compile matches endpoint IPs against. */
export function podWorkload(p: RawPod): RegisteredWorkload | undefined {
  const m = p.metadata;
  const ann = (m['annotations'] ?? {}) as Record<string, string>;
  const ip = p.status?.podIP;
  if (ann[INJECTED_ANNOTATION] === undefined || !ip) return undefined;
  if (p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return undefined;
  const owners = (m['ownerReferences'] ?? []) as { kind?: string; name?: string; controller?: boolean }[];
  const owner = owners.find((o) => o.controller) ?? owners[0];
  // A ReplicaSet's name is its Deployment's plus a hash: report the Deployment.
  const workload = owner?.kind === 'ReplicaSet' && owner.name ? owner.name.replace(/-[a-z0-9]{6,10}$/, '') : owner?.name ?? m.name;
  const ports = new Set<number>();
  for (const c of p.spec?.containers ?? []) for (const port of c.ports ?? []) if ((port.protocol ?? 'TCP') === 'TCP' && port.containerPort) ports.add(port.containerPort);
  return {
    namespace: m.namespace ?? 'default',
    workload,
    serviceAccount: p.spec?.serviceAccountName ?? 'default',
    podName: m.name,
    podIP: ip,
    labels: (m['labels'] ?? {}) as Record<string, string>,
    appPorts: [...ports].sort((a, b) => a - b),
    meshed: true,
    ...(ann[DEFAULT_INBOUND_POLICY_ANNOTATION] !== undefined ? { defaultInboundPolicy: ann[DEFAULT_INBOUND_POLICY_ANNOTATION] } : {}),
    ...podProbes(p),
  };
}

/** The pod's kubelet HTTP probes (path, port): they stay allowed under every inbound policy. */
function podProbes(p: RawPod): { probes?: Array<{ port: number; path: string }> } {
  const out = new Map<string, { port: number; path: string }>();
  for (const c of p.spec?.containers ?? []) {
    for (const pr of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
      const g = pr?.httpGet;
      if (!g) continue;
      let port = typeof g.port === 'number' ? g.port : Number.NaN;
      if (typeof g.port === 'string') port = /^\d+$/.test(g.port) ? Number(g.port) : c.ports?.find((x) => x.name === g.port)?.containerPort ?? Number.NaN;
      if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
      const path = (g.path || '/').split('?')[0]!;
      out.set(`${port} ${path}`, { port, path });
    }
  }
  return out.size ? { probes: [...out.values()] } : {};
}

export function kindSpec(kind: string): KindSpec | undefined {
  return KINDS.find((k) => k.kind === kind);
}

export interface RawObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; [k: string]: unknown };
  status?: unknown;
  [k: string]: unknown;
}

interface ListResponse {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: RawObject[];
}

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  store: Store;
  log?: (line: string) => void;
  /** Which kinds to reflect (default: all of KINDS). */
  kinds?: string[];
  /** Server-side watch timeout; the watch is then renewed from the last resourceVersion. */
  watchTimeoutSeconds?: number;
  /** Page size of lists. */
  pageSize?: number;
  /** First retry delay after an error (doubles up to maxBackoffMs). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** How often to look again for a CRD that was not installed. */
  missingCrdRetryMs?: number;
  /** Called on every change with the kind, for the status writer and the trust anchor publisher. */
  onChange?: (kind: string) => void;
}

export interface ReflectorStats {
  lists: number;
  relists: number;
  watches: number;
  events: number;
  bookmarks: number;
  errors: number;
  resourceVersion: string;
  synced: boolean;
  missing: boolean;
}

const SOURCE_PREFIX = 'kubernetes/';

function strip(o: RawObject): RawObject {
  // managedFields is large and nothing here reads it.
  if (o.metadata && 'managedFields' in o.metadata) delete o.metadata['managedFields'];
  return o;
}

class Reflector {
  readonly stats: ReflectorStats = { lists: 0, relists: 0, watches: 0, events: 0, bookmarks: 0, errors: 0, resourceVersion: '', synced: false, missing: false };
  private readonly good = new Map<string, AnyResource>();
  private readonly raw = new Map<string, RawObject>();
  private readonly errs = new Map<string, ConfigError[]>();
  private stopped = false;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private firstSync: (() => void) | undefined;
  readonly synced: Promise<void>;
  /** Objects the store sees (ConfigMaps: only referenced ones). */
  publishFilter: ((r: AnyResource) => boolean) | undefined;

  constructor(
    readonly spec: KindSpec,
    private readonly src: KubernetesSource,
  ) {
    this.synced = new Promise((resolve) => (this.firstSync = resolve));
  }

  get sourceId(): string {
    return SOURCE_PREFIX + this.spec.kind;
  }

  start(): void {
    void this.list(false);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort?.abort();
  }

  rawObject(namespace: string | undefined, name: string): RawObject | undefined {
    return this.raw.get(resourceKey(this.spec.kind, this.spec.namespaced ? namespace : undefined, name));
  }

  rawObjects(): RawObject[] {
    return [...this.raw.values()];
  }

  goodObjects(): AnyResource[] {
    return [...this.good.values()];
  }

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
    this.timer.unref?.();
  }

  private backoff(): number {
    const o = this.src.opts;
    const base = Math.min(o.maxBackoffMs ?? 30_000, (o.backoffMs ?? 500) * 2 ** Math.min(this.failures, 10));
    this.failures++;
    return base / 2 + Math.random() * (base / 2);
  }

  private key(o: RawObject): string {
    return resourceKey(this.spec.kind, this.spec.namespaced ? o.metadata?.namespace || 'default' : undefined, o.metadata?.name ?? '');
  }

  /** Validates and records one object (an invalid one leaves the last good version served). */
  private readonly pods = new Map<string, RegisteredWorkload>();

  private accept(o: RawObject): void {
    strip(o);
    if (this.spec.kind === 'Pod') {
      const w = podWorkload(o as RawPod);
      if (w) this.pods.set(this.key(o), w);
      else this.pods.delete(this.key(o));
      return;
    }
    // List items carry no kind/apiVersion; watch events do. Either way we read this version.
    o.kind = this.spec.kind;
    o.apiVersion = this.spec.apiVersion;
    const k = this.key(o);
    if (this.spec.keepRaw) this.raw.set(k, o);
    const { resource, errors } = validateResource(o, 'kubernetes', { strictFields: false });
    if (resource && errors.length === 0) {
      this.good.set(keyOf(resource), resource);
      this.errs.delete(k);
    } else {
      // Keep the last good version (if any); the error says why the new one is not served.
      this.errs.set(k, errors.length ? errors : [{ source: 'kubernetes', resource: `${this.spec.kind} ${k}`, field: '', message: 'invalid' }]);
    }
  }

  private forget(o: RawObject): void {
    const k = this.key(o);
    this.pods.delete(k);
    this.raw.delete(k);
    this.good.delete(k);
    this.errs.delete(k);
  }

  private errors(): ConfigError[] {
    return [...this.errs.values()].flat();
  }

  /** One object changed: an upsert or removal in the store, not a rebuild of the whole kind. */
  private publishOne(o: RawObject, changedAt: number, errorsChanged: boolean): void {
    if (this.publishFilter || this.spec.kind === 'Pod') return this.publish(changedAt);
    const store = this.src.opts.store;
    const k = this.key(o);
    const r = this.good.get(k);
    if (r) store.upsert(this.sourceId, r);
    else store.remove(this.sourceId, this.spec.kind, this.spec.namespaced ? o.metadata.namespace || 'default' : undefined, o.metadata.name);
    if (errorsChanged) store.setErrors(this.sourceId, this.errors());
  }

  publish(changedAt?: number): void {
    if (this.spec.kind === 'Pod') {
      this.src.opts.store.setRegistered([...this.pods.values()]);
      return;
    }
    const items = [...this.good.values()].filter((r) => !this.publishFilter || this.publishFilter(r));
    this.src.opts.store.replaceSource(this.sourceId, items, this.errors(), changedAt);
  }

  private async list(relist: boolean): Promise<void> {
    if (this.stopped) return;
    const o = this.src.opts;
    const seen: RawObject[] = [];
    let rv = '';
    try {
      let cont: string | undefined;
      do {
        const q = new URLSearchParams({ limit: String(o.pageSize ?? 500) });
        if (cont) q.set('continue', cont);
        const page = await this.src.client.request<ListResponse>(`${this.spec.path}?${q}`);
        for (const it of page.items ?? []) seen.push(it);
        rv = page.metadata?.resourceVersion ?? rv;
        cont = page.metadata?.continue || undefined;
      } while (cont && !this.stopped);
    } catch (e) {
      if (this.stopped) return;
      const code = e instanceof KubeApiError ? e.code : 0;
      if (code === 404 && this.spec.optional) {
        if (!this.stats.missing) this.src.log(`${this.spec.kind}: ${this.spec.path} not served (CRD not installed?); serving none, looking again every ${Math.round((o.missingCrdRetryMs ?? 30_000) / 1000)} s`);
        this.stats.missing = true;
        this.good.clear();
        this.raw.clear();
        this.errs.clear();
        this.publish();
        this.markSynced();
        this.later(() => void this.list(true), o.missingCrdRetryMs ?? 30_000);
        return;
      }
      this.stats.errors++;
      const wait = this.backoff();
      this.src.log(`${this.spec.kind}: list failed (${(e as Error).message}); retrying in ${Math.round(wait)} ms`);
      this.later(() => void this.list(relist), wait);
      return;
    }
    if (this.stopped) return;
    this.stats.missing = false;
    this.stats.lists++;
    if (relist) this.stats.relists++;
    this.good.clear();
    this.raw.clear();
    this.errs.clear();
    this.pods.clear();
    for (const it of seen) this.accept(it);
    this.stats.resourceVersion = rv;
    this.publish();
    this.markSynced();
    this.src.changed(this.spec.kind);
    this.failures = 0;
    void this.watch();
  }

  private markSynced(): void {
    this.stats.synced = true;
    this.firstSync?.();
    this.firstSync = undefined;
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    const o = this.src.opts;
    let gone = false;
    let sawEvent = false;
    const openedAt = performance.now();
    this.stats.watches++;
    const w = new Watch(this.src.client.kc);
    const onEvent = (type: string, obj: unknown) => {
      if (this.stopped) return;
      sawEvent = true;
      if (type === 'ERROR') {
        // A watch that started too far back, or fell behind compaction: 410 Gone → relist.
        const st = isStatus(obj) ? obj : undefined;
        if (st?.code === 410) gone = true;
        else this.src.log(`${this.spec.kind}: watch error ${st?.code ?? '?'} ${st?.reason ?? ''}: ${st?.message ?? JSON.stringify(obj)}`);
        this.abort?.abort();
        return;
      }
      const ro = obj as RawObject;
      const rv = ro?.metadata?.resourceVersion;
      if (type === 'BOOKMARK') {
        this.stats.bookmarks++;
        if (rv) this.stats.resourceVersion = rv;
        return;
      }
      if (!ro || typeof ro !== 'object' || !ro.metadata) return;
      this.stats.events++;
      const at = performance.now();
      const errsBefore = this.errs.size;
      const hadErr = this.errs.has(this.key(ro));
      if (type === 'ADDED' || type === 'MODIFIED') this.accept(ro);
      else if (type === 'DELETED') this.forget(ro);
      else return;
      if (rv) this.stats.resourceVersion = rv;
      this.publishOne(ro, at, hadErr || this.errs.has(this.key(ro)) || errsBefore !== this.errs.size);
      this.src.changed(this.spec.kind);
    };
    const onDone = (err: unknown) => {
      if (this.stopped) return;
      const code = (err as { statusCode?: number } | null)?.statusCode;
      if (gone || code === 410) {
        this.src.log(`${this.spec.kind}: resourceVersion ${this.stats.resourceVersion} is gone (410); relisting`);
        this.later(() => void this.list(true), 0);
        return;
      }
      if (err && (err as Error).name !== 'AbortError') {
        this.stats.errors++;
        const wait = this.backoff();
        this.src.log(`${this.spec.kind}: watch ended (${(err as Error).message ?? String(err)}); resuming from ${this.stats.resourceVersion} in ${Math.round(wait)} ms`);
        this.later(() => void this.watch(), wait);
        return;
      }
      // Server-side timeout or a clean close: resume from the last resourceVersion,
      // at once if the watch was healthy, after a short pause if it closed right away.
      if (sawEvent || performance.now() - openedAt > 1000) {
        this.failures = 0;
        this.later(() => void this.watch(), 0);
      } else this.later(() => void this.watch(), Math.min(this.backoff(), 1000));
    };
    try {
      const ctl = await w.watch(
        this.spec.path,
        {
          resourceVersion: this.stats.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: o.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300),
        },
        onEvent,
        onDone,
      );
      // stop() may have run while the request was in flight.
      if (this.stopped) ctl.abort();
      else this.abort = ctl;
    } catch (e) {
      onDone(e);
    }
  }
}

export class KubernetesSource {
  readonly client: KubeClient;
  private readonly reflectors = new Map<string, Reflector>();
  readonly log: (line: string) => void;

  constructor(readonly opts: KubernetesSourceOptions) {
    this.client = new KubeClient(opts.kubeConfig);
    this.log = opts.log ?? ((l) => process.stderr.write(`${new Date().toISOString()} kubernetes ${l}\n`));
    const kinds = opts.kinds ?? KINDS.map((k) => k.kind);
    for (const kind of kinds) {
      const s = kindSpec(kind);
      if (!s) throw new Error(`kubernetes source: unknown kind ${kind}`);
      this.reflectors.set(kind, new Reflector(s, this));
    }
    // Only ConfigMaps a BackendTLSPolicy references reach the store (CA bundles);
    // the rest of the cluster's ConfigMaps stay out of compile's way.
    const cm = this.reflectors.get('ConfigMap');
    if (cm) cm.publishFilter = (r) => this.referencedConfigMaps().has(`${r.metadata.namespace}/${r.metadata.name}`);
  }

  private referencedConfigMaps(): Set<string> {
    const out = new Set<string>();
    for (const p of (this.reflectors.get('BackendTLSPolicy')?.goodObjects() ?? []) as BackendTLSPolicy[]) {
      for (const ref of p.spec?.validation?.caCertificateRefs ?? []) {
        if ((ref.kind ?? 'ConfigMap') === 'ConfigMap' && (ref.group ?? '') === '') out.add(`${p.metadata.namespace}/${ref.name}`);
      }
    }
    return out;
  }

  /** Starts every reflector; resolves once each has finished its first list. */
  async start(): Promise<void> {
    for (const r of this.reflectors.values()) r.start();
    await Promise.all([...this.reflectors.values()].map((r) => r.synced));
  }

  stop(): void {
    for (const r of this.reflectors.values()) r.stop();
  }

  /** @internal called by reflectors. */
  changed(kind: string): void {
    if (kind === 'BackendTLSPolicy') this.reflectors.get('ConfigMap')?.publish();
    this.opts.onChange?.(kind);
  }

  /** The object as the API server last sent it, status included (route and policy kinds). */
  raw(kind: string, namespace: string | undefined, name: string): RawObject | undefined {
    return this.reflectors.get(kind)?.rawObject(namespace, name);
  }

  /** Every valid object of a kind as last seen (ConfigMaps included, unfiltered). */
  objects(kind: string): AnyResource[] {
    return this.reflectors.get(kind)?.goodObjects() ?? [];
  }

  rawObjects(kind: string): RawObject[] {
    return this.reflectors.get(kind)?.rawObjects() ?? [];
  }

  stats(): Record<string, ReflectorStats> {
    const out: Record<string, ReflectorStats> = {};
    for (const [k, r] of this.reflectors) out[k] = { ...r.stats };
    return out;
  }

  synced(): boolean {
    return [...this.reflectors.values()].every((r) => r.stats.synced);
  }
}

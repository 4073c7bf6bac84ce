// The typed store between sources and compile. Sources own their resources:
// the file source replaces its whole set at once (replaceSource), a watch-based
// source (Kubernetes) sends single upserts and removals. Registered workloads
// (connected sidecars, local mode) come from the registry. snapshot() is what
// compile reads; listeners hear about every change and decide themselves when
// to recompile (the push engine debounces).
import type { AnyResource } from '../api/index.js';
import { performance } from 'node:perf_hooks';
import { snapshotOf, type ConfigError, type RegisteredWorkload, type StoreSnapshot } from './types.js';

export function resourceKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}

export function keyOf(r: AnyResource): string {
  return resourceKey(r.kind, r.metadata.namespace, r.metadata.name);
}

interface SourceState {
  resources: Map<string, AnyResource>;
  errors: ConfigError[];
  synced: boolean;
}

export interface StoreOptions {
  /** Mesh-wide secret for session tokens (base64), copied into every snapshot. */
  sessionKey: string;
}

/** `at`: performance.now() of the underlying change (a file event may precede the store update). */
export type StoreListener = (at: number) => void;

export class Store {
  private readonly sources = new Map<string, SourceState>();
  private registeredList: RegisteredWorkload[] = [];
  private readonly listeners = new Set<StoreListener>();
  private cached: StoreSnapshot | undefined;
  private gen = 0;
  private readonly sessionKey: string;

  constructor(opts: StoreOptions) {
    this.sessionKey = opts.sessionKey;
  }

  /** Increments on every change; lets callers tell whether anything moved. */
  get generation(): number {
    return this.gen;
  }

  private source(id: string): SourceState {
    let s = this.sources.get(id);
    if (!s) {
      s = { resources: new Map(), errors: [], synced: false };
      this.sources.set(id, s);
    }
    return s;
  }

  /**
   * Replaces everything a source holds (file source: one full scan). Marks it
   * synced. `changedAt` (performance.now() clock): when the change happened at
   * the source, so push times count from the edit, not from the rescan.
   */
  replaceSource(sourceId: string, resources: AnyResource[], errors: ConfigError[], changedAt?: number): void {
    const s = this.source(sourceId);
    const next = new Map<string, AnyResource>();
    for (const r of resources) next.set(keyOf(r), r);
    s.resources = next;
    s.errors = errors;
    s.synced = true;
    this.changed(changedAt);
  }

  upsert(sourceId: string, resource: AnyResource): void {
    this.source(sourceId).resources.set(keyOf(resource), resource);
    this.changed();
  }

  remove(sourceId: string, kind: string, namespace: string | undefined, name: string): void {
    if (this.source(sourceId).resources.delete(resourceKey(kind, namespace, name))) this.changed();
  }

  setErrors(sourceId: string, errors: ConfigError[]): void {
    this.source(sourceId).errors = errors;
    this.changed();
  }

  /** A watch-based source finished its initial list. */
  markSynced(sourceId: string, synced = true): void {
    const s = this.source(sourceId);
    if (s.synced !== synced) {
      s.synced = synced;
      this.changed();
    }
  }

  removeSource(sourceId: string): void {
    if (this.sources.delete(sourceId)) this.changed();
  }

  setRegistered(workloads: RegisteredWorkload[]): void {
    this.registeredList = workloads;
    this.changed();
  }

  registered(): RegisteredWorkload[] {
    return this.registeredList;
  }

  /** Every resource, first source wins when two sources hold the same object. */
  resources(): AnyResource[] {
    const seen = new Map<string, AnyResource>();
    for (const s of this.sources.values()) {
      for (const [k, r] of s.resources) if (!seen.has(k)) seen.set(k, r);
    }
    return [...seen.values()];
  }

  errors(): ConfigError[] {
    const out: ConfigError[] = [];
    for (const s of this.sources.values()) out.push(...s.errors);
    return out;
  }

  sourcesSynced(): Record<string, boolean> {
    const out: Record<string, boolean> = {};
    for (const [id, s] of this.sources) out[id] = s.synced;
    return out;
  }

  snapshot(): StoreSnapshot {
    if (!this.cached) this.cached = snapshotOf(this.resources(), this.registeredList, this.sessionKey);
    return this.cached;
  }

  /** Calls `fn` after every change; returns the unsubscribe function. */
  onChange(fn: StoreListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private changed(at: number = performance.now()): void {
    this.cached = undefined;
    this.gen++;
    for (const fn of [...this.listeners]) fn(at);
  }
}

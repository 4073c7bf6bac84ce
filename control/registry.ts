// Registered workloads (local mode): a sidecar that said Hello is an endpoint
// of every Service whose selector matches its labels. Entries outlive brief
// disconnects (a grace period) and control restarts (STATE/registry.json is
// reloaded as provisional entries that expire unless the sidecar reconnects),
// so neither a sidecar reconnecting nor control restarting empties an
// endpoint set under live traffic.
//
// Several control replicas sharing STATE (local-mode HA): each writes its own
// STATE/registry-<replica>.json with a heartbeat and reads the others', so a
// sidecar connected to any replica is an endpoint in every replica's views;
// a replica that stops heartbeating for the grace period takes its entries
// with it (its sidecars have reconnected elsewhere by then).
import { existsSync, readdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RegisteredWorkload } from './types.js';

export type RegistrationState = 'connected' | 'grace' | 'provisional';

export interface RegistryEntry {
  workload: RegisteredWorkload;
  state: RegistrationState;
  /** Open streams for this workload (a reconnect may overlap the old stream). */
  connections: number;
  /** Unix ms when a grace or provisional entry is dropped. */
  expiresAt?: number;
}

export interface RegistryOptions {
  /** Where to persist (STATE/registry.json); none: memory only. */
  file?: string;
  graceMs?: number;
  provisionalMs?: number;
  /** Coalescing window of writes to `file` (default 100 ms). */
  persistDelayMs?: number;
  onChange: (workloads: RegisteredWorkload[]) => void;
  log?: (line: string) => void;
  /** Read the other replicas' registry files next to `file` (default true when `file` is set). */
  peers?: boolean;
  /** How often this replica rewrites its file as a heartbeat, and reads the others' (ms). */
  heartbeatMs?: number;
  peerScanMs?: number;
}

interface PersistedFile {
  version: 1;
  workloads: RegisteredWorkload[];
  /** Unix ms of the writer's last heartbeat (HA: peers older than the grace are gone). */
  heartbeatAt?: number;
}

/** registry.json, or registry-<replica>.json in HA. */
export const REGISTRY_FILE_PATTERN = /^registry(-[A-Za-z0-9._-]+)?\.json$/;

interface PeerFile {
  /** Every write is a rename (a new inode); a heartbeat only touches the mtime. */
  ino: number;
  size: number;
  ctimeMs: number;
  mtimeMs: number;
  heartbeatAt: number;
  workloads: RegisteredWorkload[];
}

/** One registration per pod IP (local mode gives each replica its own), else per namespace/pod. */
export function registrationKey(w: RegisteredWorkload): string {
  return w.podIP ? `ip:${w.podIP}` : `pod:${w.namespace}/${w.podName}`;
}

function sameWorkload(a: RegisteredWorkload, b: RegisteredWorkload): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isRegisteredWorkload(v: unknown): v is RegisteredWorkload {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    typeof o.namespace === 'string' &&
    typeof o.workload === 'string' &&
    typeof o.serviceAccount === 'string' &&
    typeof o.podName === 'string' &&
    typeof o.podIP === 'string' &&
    typeof o.labels === 'object' &&
    o.labels !== null &&
    Array.isArray(o.appPorts)
  );
}

export class Registry {
  private readonly entries = new Map<string, RegistryEntry>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly graceMs: number;
  private readonly provisionalMs: number;
  private closed = false;
  private persistTimer: NodeJS.Timeout | undefined;
  private readonly persistDelayMs: number;
  private readonly peerFiles = new Map<string, PeerFile>();
  private peerKey = '[]';
  private peerTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastWritten: string | undefined;

  constructor(private readonly opts: RegistryOptions) {
    this.graceMs = opts.graceMs ?? 10_000;
    this.provisionalMs = opts.provisionalMs ?? 30_000;
    this.persistDelayMs = opts.persistDelayMs ?? 100;
    if (opts.file && opts.peers !== false) {
      this.scanPeers();
      this.peerTimer = setInterval(() => this.scanPeers(), opts.peerScanMs ?? 250);
      this.peerTimer.unref();
      this.heartbeatTimer = setInterval(() => this.persistNow(), opts.heartbeatMs ?? 1000);
      this.heartbeatTimer.unref();
    }
  }

  /** The registrations of the other replicas that are alive (heartbeat within the grace). */
  private livePeerWorkloads(): RegisteredWorkload[] {
    const now = Date.now();
    const out: RegisteredWorkload[] = [];
    for (const f of this.peerFiles.values()) if (now - f.heartbeatAt <= this.graceMs) out.push(...f.workloads);
    return out;
  }

  private scanPeers(): void {
    const file = this.opts.file;
    if (!file || this.closed) return;
    const dir = dirname(file);
    const own = basename(file);
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n !== own && REGISTRY_FILE_PATTERN.test(n));
    } catch {
      return;
    }
    const present = new Set(names);
    for (const n of [...this.peerFiles.keys()]) if (!present.has(n)) this.peerFiles.delete(n);
    for (const n of names) {
      const path = join(dir, n);
      try {
        const st = statSync(path);
        const prev = this.peerFiles.get(n);
        // Same inode, size and content-write time: only touched by its writer's heartbeat.
        // (The inode alone is not enough: a rename's new file may reuse a freed inode number.)
        if (prev && prev.ino === st.ino && prev.size === st.size && prev.ctimeMs === st.ctimeMs) {
          prev.heartbeatAt = Math.max(prev.heartbeatAt, st.mtimeMs);
          continue;
        }
        const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<PersistedFile>;
        const workloads = Array.isArray(parsed.workloads) ? parsed.workloads.filter(isRegisteredWorkload) : [];
        // A file without a heartbeat is a single control's, from before: as old as its mtime.
        this.peerFiles.set(n, { ino: st.ino, size: st.size, ctimeMs: st.ctimeMs, mtimeMs: st.mtimeMs, heartbeatAt: Math.max(st.mtimeMs, typeof parsed.heartbeatAt === 'number' ? parsed.heartbeatAt : 0), workloads });
      } catch {
        // being replaced right now, or unreadable: the next scan
      }
    }
    const key = JSON.stringify(this.livePeerWorkloads().map((w) => [registrationKey(w), w]).sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
    if (key !== this.peerKey) {
      this.peerKey = key;
      this.changed(true, false);
    }
  }

  /** Reloads the registrations a previous control persisted, as provisional entries. */
  load(): number {
    const file = this.opts.file;
    if (!file || !existsSync(file)) return 0;
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      this.opts.log?.(`registry: ignoring unreadable ${file}: ${(e as Error).message}`);
      return 0;
    }
    const list = (parsed as Partial<PersistedFile>)?.workloads;
    if (!Array.isArray(list)) return 0;
    let n = 0;
    for (const w of list) {
      if (!isRegisteredWorkload(w)) continue;
      const key = registrationKey(w);
      this.entries.set(key, { workload: w, state: 'provisional', connections: 0 });
      this.expireLater(key, this.provisionalMs);
      n++;
    }
    if (n > 0) this.changed(true, false);
    return n;
  }

  /** A sidecar's stream said Hello; returns the release function for when the stream ends. */
  connect(w: RegisteredWorkload): () => void {
    const key = registrationKey(w);
    const prev = this.entries.get(key);
    this.clearTimer(key);
    // Keep the entry object: releases of overlapping streams count down the same one.
    const entry: RegistryEntry = prev ?? { workload: w, state: 'connected', connections: 0 };
    const moved = !prev || !sameWorkload(prev.workload, w);
    entry.workload = w;
    entry.connections = (entry.state === 'connected' ? entry.connections : 0) + 1;
    entry.state = 'connected';
    delete entry.expiresAt;
    this.entries.set(key, entry);
    this.changed(moved, true);
    let released = false;
    return () => {
      if (released || this.closed) return;
      released = true;
      const e = this.entries.get(key);
      if (!e || e !== entry) return; // replaced by a newer registration
      e.connections--;
      if (e.connections > 0) return;
      e.state = 'grace';
      e.expiresAt = Date.now() + this.graceMs;
      this.expireLater(key, this.graceMs);
      this.persistSoon();
    };
  }

  /**
   * The sidecar said Goodbye (it is draining): its endpoints leave every
   * view now instead of after the grace period. Its stream stays open (it
   * still receives config for its app's outbound calls); the release of
   * that stream then finds nothing to count down.
   */
  leave(w: RegisteredWorkload): boolean {
    const key = registrationKey(w);
    const e = this.entries.get(key);
    if (!e) return false;
    this.clearTimer(key);
    this.entries.delete(key);
    this.opts.log?.(`registry: ${w.namespace}/${w.podName || w.podIP} removed (draining)`);
    this.changed(true, false);
    // At once, not coalesced: the other replicas drop it from their views too.
    this.persistNow();
    return true;
  }

  /**
   * Every registered workload: this replica's, then the live peers' not
   * registered here, sorted by key so every replica compiles the same list
   * (content-derived versions then agree across replicas).
   */
  list(): RegisteredWorkload[] {
    const out = new Map<string, RegisteredWorkload>();
    for (const [k, e] of this.entries) out.set(k, e.workload);
    for (const w of this.livePeerWorkloads()) {
      const k = registrationKey(w);
      if (!out.has(k)) out.set(k, w);
    }
    return [...out.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, w]) => w);
  }

  /** This replica's own registrations (what it persists). */
  private own(): RegisteredWorkload[] {
    return [...this.entries.values()].map((e) => e.workload);
  }

  all(): RegistryEntry[] {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  /** Persists what is registered now and stops the timers (control shutting down: keep entries for the next start). */
  close(): void {
    if (this.closed) return;
    this.persistNow();
    this.closed = true;
    if (this.persistTimer) clearTimeout(this.persistTimer);
    if (this.peerTimer) clearInterval(this.peerTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private expireLater(key: string, ms: number): void {
    this.clearTimer(key);
    const e = this.entries.get(key);
    if (e) e.expiresAt = Date.now() + ms;
    const t = setTimeout(() => {
      this.timers.delete(key);
      const cur = this.entries.get(key);
      if (!cur || cur.state === 'connected') return;
      this.entries.delete(key);
      this.opts.log?.(
        `registry: ${cur.workload.namespace}/${cur.workload.podName || cur.workload.podIP} removed (${cur.state} entry expired)`,
      );
      this.changed(true);
    }, ms);
    t.unref();
    this.timers.set(key, t);
  }

  private clearTimer(key: string): void {
    const t = this.timers.get(key);
    if (t) {
      clearTimeout(t);
      this.timers.delete(key);
    }
  }

  private changed(notify: boolean, persist = true): void {
    if (this.closed) return;
    if (persist) this.persistSoon();
    if (notify) this.opts.onChange(this.list());
  }

  /**
   * Coalesces writes: a thousand sidecars connecting must not rewrite the
   * file a thousand times. A crash inside the window loses only the newest
   * registrations, whose sidecars reconnect to the next control anyway.
   */
  private persistSoon(): void {
    if (!this.opts.file || this.closed || this.persistTimer) return;
    this.persistTimer = setTimeout(() => {
      this.persistTimer = undefined;
      this.persistNow();
    }, this.persistDelayMs);
    this.persistTimer.unref();
  }

  private persistNow(): void {
    const file = this.opts.file;
    if (!file || this.closed) return;
    const workloads = this.own();
    const text = JSON.stringify(workloads);
    try {
      // Unchanged: a heartbeat is a touch (peers see the mtime, not a re-read of thousands of entries).
      if (text === this.lastWritten && existsSync(file)) {
        const now = new Date();
        utimesSync(file, now, now);
        return;
      }
      const data: PersistedFile = { version: 1, workloads, heartbeatAt: Date.now() };
      const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      writeFileSync(tmp, JSON.stringify(data, null, 1));
      renameSync(tmp, file);
      this.lastWritten = text;
    } catch (e) {
      this.opts.log?.(`registry: cannot persist ${file}: ${(e as Error).message}`);
    }
  }
}

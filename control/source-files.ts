// The YAML-directory source: every `.yaml`/`.yml` file under a directory
// (recursively; hidden files and directories skipped), multi-document, each
// document validated. Watched with fs.watch (plus a slow safety rescan, or a
// fast poll where recursive watching is unavailable); bursts of events are
// debounced, so an edit is applied well within a second.
//
// Bad input loses nothing. A file whose YAML does not parse keeps serving the
// resources of its last good version; an invalid document keeps serving its
// own last good version (same kind, namespace and name) while the file's other
// documents move on. Either way the error names the file, the resource and the
// field, is logged once per change, and stays visible in errors().
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AnyResource } from '../api/index.js';
import { decodeDocuments, decodeText, sizeError } from './source-decode.js';
import { keyOf } from './store.js';
import { formatConfigError, type ConfigError } from './types.js';
import { validateResource } from './validate.js';

export interface FileSourceOptions {
  dir: string;
  /**
   * Every time the served set changes (and once after the first scan).
   * `changedAt`: performance.now() of the first file event of the burst.
   */
  onUpdate?: (resources: AnyResource[], errors: ConfigError[], changedAt: number) => void;
  log?: (line: string) => void;
  /** Quiet time after the last file event before rescanning. */
  debounceMs?: number;
  /** Rescan interval when fs.watch is unavailable. */
  pollMs?: number;
  /** Rescan interval alongside fs.watch (catches missed events). */
  safetyScanMs?: number;
  watch?: boolean;
}

interface FileState {
  sig: string;
  /** The bytes last parsed (undefined when the file was not read: too large, unreadable). */
  bytes: Buffer | undefined;
  /** What this file serves: its last good version, document by document. */
  served: AnyResource[];
  errors: ConfigError[];
}

const YAML_FILE = /\.ya?ml$/i;

/**
 * Whether a watch event can change what we serve: not inside a hidden
 * directory (STATE often lives in DIR/.weft-state and is written constantly),
 * and a YAML file or something without an extension (a directory).
 */
function relevant(name: string | Buffer | null): boolean {
  if (name === null) return true;
  const parts = String(name).split(/[\\/]/);
  if (parts.some((p) => p.startsWith('.'))) return false;
  const last = parts[parts.length - 1] ?? '';
  return YAML_FILE.test(last) || !/\.[A-Za-z0-9~]+$/.test(last);
}

/** Kind, namespace and name as written, to find a broken document's last good version. */
function identityOf(doc: unknown): string | undefined {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const o = doc as Record<string, unknown>;
  const meta = o.metadata as Record<string, unknown> | undefined;
  if (typeof o.kind !== 'string' || typeof meta !== 'object' || meta === null || typeof meta.name !== 'string') return undefined;
  const ns = o.kind === 'Namespace' ? undefined : typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
  return `${o.kind}/${ns ?? ''}/${meta.name}`;
}

/** Where a document is, for errors about a document that names no resource. */
function documentLabel(index: number, line?: number): string {
  return `document ${index}${line ? ` (line ${line})` : ''}`;
}

/**
 * One file's content → the resources it serves and its errors. Pure: `lastGood`
 * is what the file served before this version. Never throws: whatever the
 * bytes, the answer is resources and errors.
 */
export function parseFile(
  source: string,
  content: string | Uint8Array,
  lastGood: AnyResource[] = [],
): { resources: AnyResource[]; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  let text: string;
  if (typeof content === 'string') {
    const tooBig = sizeError(Buffer.byteLength(content));
    if (tooBig) return { resources: lastGood, errors: [{ source, resource: '', field: '', message: tooBig }] };
    text = content;
  } else {
    const t = decodeText(content);
    if (!t.ok) return { resources: lastGood, errors: [{ source, resource: '', field: '', message: t.message }] };
    text = t.text;
  }
  const decoded = decodeDocuments(text);
  // A file that does not decode keeps all of its last good version.
  if (!decoded.ok) {
    for (const e of decoded.errors) {
      errors.push({ source, resource: e.index > 0 ? documentLabel(e.index) : '', field: '', message: e.message });
    }
    return { resources: lastGood, errors };
  }
  const values: Array<{ v: unknown; where: string }> = [];
  for (const doc of decoded.docs) {
    const v = doc.value;
    if (v === null || v === undefined) continue;
    // `kind: List` (kubectl's wrapper) holds its objects in `items`.
    if (typeof v === 'object' && !Array.isArray(v) && (v as Record<string, unknown>).kind === 'List') {
      const items = (v as Record<string, unknown>).items;
      if (Array.isArray(items)) items.forEach((it, i) => values.push({ v: it, where: `${documentLabel(doc.index, doc.line)}, items[${i}]` }));
      else errors.push({ source, resource: documentLabel(doc.index, doc.line), field: 'items', message: 'a List must have an items list' });
      continue;
    }
    values.push({ v, where: documentLabel(doc.index, doc.line) });
  }

  const last = new Map(lastGood.map((r) => [keyOf(r), r]));
  const out = new Map<string, AnyResource>();
  for (const { v, where } of values) {
    let res: ReturnType<typeof validateResource>;
    try {
      res = validateResource(v, source);
    } catch (e) {
      // A bug, not the user's fault; still this document's error, never control's crash.
      res = { errors: [{ source, resource: '', field: '', message: `internal error while validating: ${(e as Error).message}` }] };
    }
    if (res.resource && res.errors.length === 0) {
      const k = keyOf(res.resource);
      if (out.has(k)) {
        errors.push({
          source,
          resource: `${res.resource.kind} ${res.resource.metadata.namespace ? `${res.resource.metadata.namespace}/` : ''}${res.resource.metadata.name}`,
          field: 'metadata.name',
          message: 'Duplicate value: defined twice in this file (the first one is used)',
        });
        continue;
      }
      out.set(k, res.resource);
      continue;
    }
    for (const e of res.errors) errors.push(e.resource ? e : { ...e, resource: where });
    // Keep serving this document's last good version, if there was one;
    // else what is safer served than dropped (see validateResource).
    const id = identityOf(v);
    const prev = id !== undefined ? last.get(id) : undefined;
    if (id !== undefined && prev && !out.has(id)) out.set(id, prev);
    else if (res.failClosed && !out.has(keyOf(res.failClosed))) out.set(keyOf(res.failClosed), res.failClosed);
  }
  return { resources: [...out.values()], errors };
}

async function listYamlFiles(dir: string, errors: ConfigError[]): Promise<{ files: string[]; dirs: string[] }> {
  const out: string[] = [];
  const dirs: string[] = [];
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 32) return;
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (e) {
      if (d === dir) errors.push({ source: dir, resource: '', field: '', message: `cannot read directory: ${(e as Error).message}` });
      return;
    }
    dirs.push(d);
    for (const ent of entries) {
      if (ent.name.startsWith('.')) continue;
      const p = join(d, ent.name);
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        try {
          const s = await stat(p);
          isDir = s.isDirectory();
          isFile = s.isFile();
        } catch {
          continue;
        }
      }
      if (isDir) await walk(p, depth + 1);
      else if (isFile && YAML_FILE.test(ent.name)) out.push(p);
    }
  };
  await walk(dir, 0);
  return { files: out.sort(), dirs };
}

export class FileSource {
  private readonly files = new Map<string, FileState>();
  private dirErrors: ConfigError[] = [];
  private servedResources: AnyResource[] = [];
  private servedErrors: ConfigError[] = [];
  /**
   * One non-recursive watcher per directory. Node 20's recursive fs.watch on
   * Linux watches files, and loses a file once an editor (or an atomic
   * write) renames a new version over it; a directory watch sees every
   * rename into it.
   */
  private readonly watchers = new Map<string, FSWatcher>();
  private watching = false;
  private polling = false;
  private debounceTimer: NodeJS.Timeout | undefined;
  private intervalTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<boolean> | undefined;
  private again = false;
  /** First file event of the burst being debounced (performance.now()). */
  private firstEventAt: number | undefined;
  private closed = false;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: FileSourceOptions) {
    this.log = opts.log ?? (() => {});
  }

  resources(): AnyResource[] {
    return this.servedResources;
  }

  errors(): ConfigError[] {
    return this.servedErrors;
  }

  /** First scan (always reported through onUpdate), then watching. */
  async start(): Promise<void> {
    this.watching = this.opts.watch !== false;
    await this.rescan(true);
    if (!this.watching || this.closed) return;
    this.startInterval(this.polling ? (this.opts.pollMs ?? 250) : (this.opts.safetyScanMs ?? 2000));
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    if (this.intervalTimer) clearInterval(this.intervalTimer);
  }

  /** Watches exactly the directories of the last scan. */
  private syncWatchers(dirs: string[]): void {
    if (!this.watching || this.polling || this.closed) return;
    const want = new Set(dirs);
    for (const [d, w] of this.watchers) {
      if (!want.has(d)) {
        w.close();
        this.watchers.delete(d);
      }
    }
    for (const d of want) {
      if (this.watchers.has(d)) continue;
      try {
        const w = watch(d, { persistent: false }, (_event, name) => {
          if (relevant(name)) this.trigger();
        });
        w.on('error', () => {
          // The directory went away (or was replaced): the next scan re-syncs.
          w.close();
          if (this.watchers.get(d) === w) this.watchers.delete(d);
          this.trigger();
        });
        this.watchers.set(d, w);
      } catch (e) {
        if (d !== this.opts.dir && (e as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.log(`config: cannot watch ${d} (${(e as Error).message}); polling every ${this.opts.pollMs ?? 250} ms instead`);
        this.polling = true;
        for (const w of this.watchers.values()) w.close();
        this.watchers.clear();
        if (this.intervalTimer) this.startInterval(this.opts.pollMs ?? 250);
        return;
      }
    }
  }

  private startInterval(ms: number): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = setInterval(() => void this.rescan(false), ms);
    this.intervalTimer.unref();
  }

  private trigger(): void {
    if (this.closed) return;
    this.firstEventAt ??= performance.now();
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      void this.rescan(false);
    }, this.opts.debounceMs ?? 100);
  }

  /** Rescans the directory; reports through onUpdate when anything changed. Serialised. */
  async rescan(force = false): Promise<boolean> {
    if (this.scanning) {
      this.again = true;
      this.firstEventAt = undefined; // folded into the scan under way, which reports an earlier time
      return this.scanning;
    }
    const eventAt = this.firstEventAt ?? performance.now();
    this.firstEventAt = undefined;
    this.scanning = (async () => {
      let changed = force;
      do {
        this.again = false;
        try {
          if (await this.scanOnce()) changed = true;
        } catch (e) {
          // A bug in a scan must not become an unhandled rejection (which ends control):
          // log it and keep serving what we had; the next event or safety scan retries.
          this.log(`config: scan failed: ${(e as Error).stack ?? String(e)}`);
        }
      } while (this.again && !this.closed);
      return changed;
    })();
    try {
      const changed = await this.scanning;
      if (changed && !this.closed) {
        try {
          this.opts.onUpdate?.(this.servedResources, this.servedErrors, eventAt);
        } catch (e) {
          this.log(`config: applying the update failed: ${(e as Error).stack ?? String(e)}`);
        }
      }
      return changed;
    } finally {
      this.scanning = undefined;
    }
  }

  private async scanOnce(): Promise<boolean> {
    const dir = this.opts.dir;
    const dirErrors: ConfigError[] = [];
    const { files: paths, dirs } = await listYamlFiles(dir, dirErrors);
    this.syncWatchers(dirs);
    let changed = JSON.stringify(dirErrors) !== JSON.stringify(this.dirErrors);
    this.dirErrors = dirErrors;
    const present = new Set(paths);
    for (const p of [...this.files.keys()]) {
      if (!present.has(p)) {
        this.files.delete(p);
        this.log(`config: ${relative(dir, p) || p} removed`);
        changed = true;
      }
    }
    for (const p of paths) {
      const prev = this.files.get(p);
      const name = relative(dir, p) || p;
      let sig: string;
      let bytes: Buffer | undefined;
      let parsed: { resources: AnyResource[]; errors: ConfigError[] };
      try {
        const s = await stat(p);
        sig = `${s.mtimeMs}:${s.size}:${s.ino}`;
        if (prev && prev.sig === sig) continue;
        const tooBig = sizeError(s.size);
        if (tooBig) {
          // Not read at all: the size alone is the error; the last good version keeps serving.
          parsed = { resources: prev?.served ?? [], errors: [{ source: p, resource: '', field: '', message: tooBig }] };
        } else {
          bytes = await readFile(p);
          if (prev?.bytes && prev.bytes.equals(bytes)) {
            prev.sig = sig;
            continue;
          }
          parsed = parseFile(p, bytes, prev?.served);
        }
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue; // vanished between listing and reading: the next scan sees it gone
        // Unreadable (permissions, EIO, a FIFO, ...): that file's error, with its last good version kept.
        sig = `unreadable:${code ?? ''}`;
        if (prev && prev.sig === sig) continue;
        parsed = { resources: prev?.served ?? [], errors: [{ source: p, resource: '', field: '', message: `cannot read file: ${(e as Error).message}` }] };
      }
      this.files.set(p, { sig, bytes, served: parsed.resources, errors: parsed.errors });
      changed = true;
      if (parsed.errors.length === 0) {
        this.log(`config: ${name}: ${parsed.resources.length} resource(s)${prev ? ' (changed)' : ''}`);
      } else {
        for (const e of parsed.errors) this.log(`config error: ${formatConfigError(e)}`);
        if (prev) this.log(`config: ${name}: keeping the last good version of what the errors touch`);
      }
    }
    if (changed) this.combine();
    return changed;
  }

  /** All files' resources; an object defined in two files is served from the first path (sorted). */
  private combine(): void {
    const byKey = new Map<string, { r: AnyResource; file: string }>();
    const errors: ConfigError[] = [...this.dirErrors];
    for (const p of [...this.files.keys()].sort()) {
      const f = this.files.get(p)!;
      errors.push(...f.errors);
      for (const r of f.served) {
        const k = keyOf(r);
        const first = byKey.get(k);
        if (first) {
          errors.push({
            source: p,
            resource: `${r.kind} ${r.metadata.namespace ? `${r.metadata.namespace}/` : ''}${r.metadata.name}`,
            field: 'metadata.name',
            message: `Duplicate value: already defined in ${first.file} (that one is used)`,
          });
          continue;
        }
        byKey.set(k, { r, file: p });
      }
    }
    this.servedResources = [...byKey.values()].map((x) => x.r);
    this.servedErrors = errors;
  }
}

/** One-shot read of a directory (weft get --config-dir): what control would serve from it. */
export async function loadDirectory(dir: string): Promise<{ resources: AnyResource[]; errors: ConfigError[] }> {
  const src = new FileSource({ dir, watch: false });
  await src.rescan(true);
  src.close();
  return { resources: src.resources(), errors: src.errors() };
}

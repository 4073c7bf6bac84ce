// Workload edits while `weft up` runs: added workloads start, removed ones
// stop, a changed replica count scales, any other change restarts the
// workload's pods on the same addresses. Invalid Workloads change nothing.
import { statSync, watch, type FSWatcher } from 'node:fs';
import type { Say } from './up-console.js';
import type { Pods } from './up-pods.js';
import { assignIndexes, loadWorkloads, podsOf, sameSpec, workloadKey, yamlFiles, type LocalWorkload } from './up-workloads.js';

export interface ReconcileContext {
  dir: string;
  prefix: string;
  pods: Pods;
  say: Say;
  isStopping: () => boolean;
  /** Called once the pods match an edit that changed any. */
  afterChange: () => void;
}

export class WorkloadReconciler {
  /** The Workload errors of the last load (the running pods stay as they were). */
  errors: string[];
  private indexes: Map<string, number>;
  private current: Map<string, LocalWorkload>;
  private lastSig: string;
  private watcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private reconciling: Promise<void> = Promise.resolve();
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    private readonly c: ReconcileContext,
    workloads: readonly LocalWorkload[],
    errors: string[],
  ) {
    this.errors = errors;
    this.indexes = assignIndexes(workloads);
    this.current = new Map(workloads.map((w) => [workloadKey(w), w]));
    this.lastSig = this.signature();
  }

  // fs.watch is fast but misses some replace-by-rename saves on Node 20's
  // recursive watcher; a cheap stat signature polled every second catches
  // those, and both paths reconcile only when the signature changed.
  watch(): void {
    this.poller = setInterval(() => this.maybeReconcile(), 1000);
    try {
      this.watcher = watch(this.c.dir, { recursive: true, persistent: false }, (_ev, filename) => {
        // STATE and editors' temp files live in hidden paths.
        if (filename && String(filename).split(/[\\/]/).some((seg) => seg.startsWith('.'))) return;
        if (this.debounce) clearTimeout(this.debounce);
        this.debounce = setTimeout(() => this.maybeReconcile(), 200);
      });
      this.watcher.on('error', () => undefined);
    } catch {
      /* the poller alone then */
    }
  }

  /** No more reloads; resolves once a reload under way has finished. */
  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.debounce) clearTimeout(this.debounce);
    if (this.poller) clearInterval(this.poller);
    await this.reconciling;
  }

  private signature(): string {
    return yamlFiles(this.c.dir)
      .map((f) => {
        try {
          const st = statSync(f);
          return `${f}:${st.mtimeMs}:${st.size}:${st.ino}`;
        } catch {
          return f;
        }
      })
      .join('|');
  }

  private maybeReconcile(): void {
    if (this.c.isStopping()) return;
    const sig = this.signature();
    if (sig === this.lastSig) return;
    this.lastSig = sig;
    this.reconciling = this.reconciling
      .then(() => (this.c.isStopping() ? undefined : this.reconcile()))
      .catch((e: unknown) => this.c.say(`reloading Workloads failed: ${(e as Error).message}`));
  }

  private async reconcile(): Promise<void> {
    const { dir, prefix, pods, say } = this.c;
    const loaded = loadWorkloads(dir);
    this.errors = loaded.errors;
    if (this.errors.length) {
      for (const e of this.errors) say(e);
      say('Workload errors: running workloads are left as they are until fixed');
      return;
    }
    const next = new Map(loaded.workloads.map((w) => [workloadKey(w), w]));
    const indexes = (this.indexes = assignIndexes(loaded.workloads, this.indexes));
    const stopPods = (runs: typeof pods.runs) => Promise.all(runs.map((r) => pods.stop(r))).then(() => undefined);
    const startPods = (list: ReturnType<typeof podsOf>) => Promise.all(list.map((p) => pods.start(p))).then(() => undefined);
    const work: Array<Promise<void>> = [];
    for (const [k, old] of this.current) {
      const w = next.get(k);
      const mine = pods.runs.filter((r) => workloadKey(r.pod.workload) === k);
      if (!w) {
        say(`Workload ${k} removed: stopping its pods`);
        work.push(stopPods(mine));
      } else if (!sameSpec(old, w)) {
        say(`Workload ${k} changed: restarting its pods`);
        work.push(stopPods(mine).then(() => startPods(podsOf(w, indexes.get(k)!, prefix))));
      } else if (old.replicas !== w.replicas) {
        say(`Workload ${k}: ${old.replicas} → ${w.replicas} replicas`);
        const want = podsOf(w, indexes.get(k)!, prefix);
        work.push(stopPods(mine.filter((r) => r.pod.replica >= w.replicas)));
        work.push(startPods(want.filter((p) => p.replica >= old.replicas)));
      }
    }
    for (const [k, w] of next) {
      if (this.current.has(k)) continue;
      say(`Workload ${k} added`);
      work.push(startPods(podsOf(w, indexes.get(k)!, prefix)));
    }
    this.current = next;
    await Promise.all(work);
    pods.writePods();
    if (work.length) this.c.afterChange();
  }
}

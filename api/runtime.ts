// How a sidecar's Node.js process is started, wherever it is launched: the
// injected container (injector/), the image (Dockerfile: keep its ENV equal,
// a test checks) and `weft up` (cli/). A proxy's memory is mostly V8's young
// generation (3 × the semi-space, 16 MiB each by default, so up to 48 MiB that
// fills under load and is never given back) and glibc's per-thread malloc
// arenas; both are bounded here. Figures in bench/results.md.

/**
 * V8 flags for the sidecar (NODE_OPTIONS accepts them on Node 20 and on the
 * LTS): a 1 MiB semi-space, and ONE V8 background worker instead of four.
 *
 * The semi-space: at 2 MiB, after a burst of load and a pause, a sidecar on
 * Node 26 at a moderate rate kept starting incremental major GCs back to back
 * (one every ~200 ms, old space 14–17 MB, 1–12 ms of pause each: V8 starts
 * marking when the old generation's slack is smaller than what the young
 * generation may promote) — at 1,000 req/s through two sidecars, 180–230 µs
 * of CPU per request per sidecar and p99 6–10 ms. At 1 MiB the loop did not
 * start in 7 runs of the same sequence (87–115 µs, p99 2.3–3.0 ms). At
 * maximum load it costs little: a fresh pair made 44.6–47.1k req/s vs
 * 40.9–41.4k at 2 MiB, gRPC within 4%; in the bench's runtime sequence
 * (HTTP, the open loop, then gRPC on one pair) HTTP was 5% and gRPC 9% slower.
 *
 * The pool: on a 2-core node the default pool's concurrent GC threads take
 * the CPU the sidecars, the app and the caller need, and the tail latency at
 * a moderate rate doubled (p99 13–14 ms with the default pool, 7–8 ms with
 * one worker, same throughput and CPU per request at maximum).
 */
export const SIDECAR_NODE_OPTIONS = '--max-semi-space-size=1 --v8-pool-size=1';

/** Environment for the sidecar process: two malloc arenas instead of 8 × cores. */
export const SIDECAR_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_ARENA_MAX: '2',
});

/** NODE_OPTIONS for a sidecar, keeping what the operator already set (theirs win, by coming last). */
export function sidecarNodeOptions(existing: string | undefined): string {
  return existing ? `${SIDECAR_NODE_OPTIONS} ${existing}` : SIDECAR_NODE_OPTIONS;
}

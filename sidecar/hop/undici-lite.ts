// undici's Pool and Agent without the rest of the package, loaded on first
// use. undici's index loads fetch, WebSocket, caches, mocks and more (~110
// modules: 60-100 ms of start-up, ~9 MB RSS); the dispatchers need ~23, and
// even those cost ~37 ms of start-up on Node 26 (in a sidecar, ~1 MB of
// RSS: most of what they map is shared with what is loaded anyway). The
// mesh's own hot path (the HTTP/1.1 engine and the weft-mux/1 hop) never
// needs them: only the
// undici adapter, peers without weft-mux/1, BackendTLSPolicy origination and
// traffic leaving the mesh do — so a sidecar that serves none of those never
// loads undici. undici 7 has no exports map, so its files are reachable by
// path; the types are the package's own. If a later undici moves them, the
// whole package is loaded instead.
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

interface Lib {
  Pool: typeof undici.Pool;
  Agent: typeof undici.Agent;
}

function load(): Lib {
  try {
    return { Pool: require('undici/lib/dispatcher/pool.js') as typeof undici.Pool, Agent: require('undici/lib/dispatcher/agent.js') as typeof undici.Agent };
  } catch {
    const u = require('undici') as typeof undici;
    return { Pool: u.Pool, Agent: u.Agent };
  }
}

let lib: Lib | undefined;

export type Pool = undici.Pool;
export type Agent = undici.Agent;

/** A new undici Pool (undici's dispatchers are loaded by the first call). */
export function newPool(origin: string, opts: undici.Pool.Options): Pool {
  return new (lib ??= load()).Pool(origin, opts);
}

/** A new undici Agent (undici's dispatchers are loaded by the first call). */
export function newAgent(opts: undici.Agent.Options): Agent {
  return new (lib ??= load()).Agent(opts);
}

/** Whether undici's dispatchers have been loaded in this process (for tests of the lazy load). */
export function undiciLoaded(): boolean {
  return lib !== undefined;
}

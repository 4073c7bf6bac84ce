// undici's Pool and Agent without the rest of the package. undici's index
// loads fetch, WebSocket, caches, mocks and more (~110 modules: 60-100 ms of
// start-up, ~9 MB RSS); the dispatchers need ~23. undici 7 has no exports
// map, so its files are reachable by path; the types are the package's own.
// If a later undici moves them, the whole package is loaded instead.
import { createRequire } from 'node:module';
import type * as undici from 'undici';

const require = createRequire(import.meta.url);

function load(): { Pool: typeof undici.Pool; Agent: typeof undici.Agent } {
  try {
    return { Pool: require('undici/lib/dispatcher/pool.js') as typeof undici.Pool, Agent: require('undici/lib/dispatcher/agent.js') as typeof undici.Agent };
  } catch {
    const u = require('undici') as typeof undici;
    return { Pool: u.Pool, Agent: u.Agent };
  }
}

const loaded = load();
export const Pool = loaded.Pool;
export type Pool = undici.Pool;
export const Agent = loaded.Agent;
export type Agent = undici.Agent;

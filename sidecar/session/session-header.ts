// Session persistence, Header type: the client sends the token back in the
// header the config names; the sidecar returns a new token in a response
// header of the same name whenever a session starts or is refreshed.
import type { HeaderView } from '../route/request.js';

/** The session header's value (the first, when sent twice). */
export function readSessionHeader(headers: HeaderView, name: string): string | undefined {
  const v = headers.get(name.toLowerCase());
  if (v === undefined) return undefined;
  const comma = v.indexOf(',');
  return (comma < 0 ? v : v.slice(0, comma)).trim() || undefined;
}

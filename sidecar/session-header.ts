// Session persistence, Header type: the client sends the token back in the
// header the config names; the sidecar returns a new token in a response
// header of the same name whenever a session starts or is refreshed.
import type { IncomingHttpHeaders } from 'node:http';

/** The session header's value (header names are lower-case in node's objects). */
export function readSessionHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return undefined;
  return (typeof v === 'string' ? v : v[0])?.trim() || undefined;
}

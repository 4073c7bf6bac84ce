// From a matched rule to one endpoint: the weighted backendRef, then the
// endpoint of that backend (session persistence first when configured, else
// P2C on EWMA latency).
import type { IncomingMessage } from 'node:http';
import type { BuiltBackend, BuiltRouteBackend, BuiltRule, EndpointRt } from './config-apply.js';

/**
 * Session persistence hook (GEP-1619). session-cookie.ts / session-header.ts
 * register one with `setSessionAffinity`; it is consulted only for rules or
 * backends that carry `session`. `pick` returns the pinned endpoint (or
 * undefined to balance normally); `onResponse` may add the cookie/header that
 * pins the next request to `ep` (it receives the response header list the
 * sidecar is about to write).
 */
export interface SessionAffinity {
  /** The rule's backend that holds the pinned endpoint (persistence beats weights, even weight 0), or undefined. */
  pickBackend?(rule: BuiltRule, req: { headers: IncomingMessage['headers'] }): BuiltRouteBackend | undefined;
  pick(rule: BuiltRule, backend: BuiltBackend, req: IncomingMessage): EndpointRt | undefined;
  onResponse(rule: BuiltRule, backend: BuiltBackend, ep: EndpointRt, req: IncomingMessage, headers: string[]): void;
}

let affinity: SessionAffinity | undefined;

export function setSessionAffinity(a: SessionAffinity | undefined): void {
  affinity = a;
}

export function sessionAffinity(): SessionAffinity | undefined {
  return affinity;
}

export function chooseBackend(rule: BuiltRule, req?: { headers: IncomingMessage['headers'] }): BuiltRouteBackend | undefined {
  if (req && rule.session && affinity?.pickBackend) {
    const pinned = affinity.pickBackend(rule, req);
    if (pinned) return pinned;
  }
  return rule.backends.pick();
}

export function chooseEndpoint(rule: BuiltRule, backend: BuiltBackend, req: IncomingMessage): EndpointRt | undefined {
  if (affinity && (rule.session || backend.session)) {
    const pinned = affinity.pick(rule, backend, req);
    if (pinned) return pinned;
  }
  return backend.balancer.pick();
}

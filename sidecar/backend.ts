// From a matched rule to one endpoint: the weighted backendRef, then the
// endpoint of that backend — session persistence first when the rule or the
// backend carries `session` (GEP-1619), else P2C on EWMA latency.
import type { BuiltBackend, BuiltRouteBackend, BuiltRule, EndpointRt } from './config-apply.js';
import type { HeaderView } from './request.js';
import { pinnedEndpoint, pinnedRouteBackend } from './session-token.js';

export function chooseBackend(rule: BuiltRule, headers: HeaderView, now: number, rand?: () => number): BuiltRouteBackend | undefined {
  if (rule.session) {
    const pinned = pinnedRouteBackend(rule, headers, now);
    if (pinned) return pinned;
  }
  return rule.backends.pick(rand);
}

export function chooseEndpoint(rule: BuiltRule, backend: BuiltBackend, headers: HeaderView, now: number): EndpointRt | undefined {
  if (rule.session || backend.session) {
    const pinned = pinnedEndpoint(rule, backend, headers, now);
    if (pinned) return pinned;
  }
  return backend.balancer.pick();
}

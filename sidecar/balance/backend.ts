// From a matched rule to one endpoint: the weighted backendRef, then the
// endpoint of that backend — session persistence first when the rule or the
// backend carries `session` (GEP-1619), else P2C on EWMA latency.
import type { BuiltBackend, BuiltRouteBackend, BuiltRule, EndpointRt } from '../config/config-apply.js';
import type { HeaderView } from '../route/request.js';
import { pinnedEndpoint, pinnedRouteBackend } from '../session/session-token.js';
import { pickFrom } from './balancer-p2c-ewma.js';
import { availableEndpoints, dueProbe, isAvailable, markPicked } from './failure-accrual.js';

export function chooseBackend(rule: BuiltRule, headers: HeaderView, now: number, rand?: () => number): BuiltRouteBackend | undefined {
  if (rule.session) {
    const pinned = pinnedRouteBackend(rule, headers, now);
    if (pinned) return pinned;
  }
  return rule.backends.pick(rand);
}

/**
 * Session failover: a pinned endpoint that failure accrual took out of the
 * balancer is passed over at once (the response then pins the new one).
 * Ejected endpoints are left out unless every endpoint is (failure-accrual.ts).
 */
export function chooseEndpoint(rule: BuiltRule, backend: BuiltBackend, headers: HeaderView, now: number, rand?: () => number): EndpointRt | undefined {
  if (rule.session || backend.session) {
    const pinned = pinnedEndpoint(rule, backend, headers, now);
    if (pinned && isAvailable(pinned.accrual, now)) {
      markPicked(pinned.accrual, now);
      return pinned;
    }
  }
  return pickEndpoint(backend.balancer.fallback, now, rand);
}

/** P2C among the endpoints failure accrual leaves in the balancer (all of them when none is left). */
export function pickEndpoint(list: readonly EndpointRt[], now: number, rand?: () => number): EndpointRt | undefined {
  const available = availableEndpoints(list, now);
  const ep = (available !== list || list.some((e) => e.accrual.phase !== 'active') ? dueProbe(list, now) : undefined) ?? pickFrom(available, rand);
  if (ep && ep.accrual.phase !== 'active') markPicked(ep.accrual, now);
  return ep;
}

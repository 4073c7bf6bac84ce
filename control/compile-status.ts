// Route status for Service parents (GEP-1426, apis/v1 RouteParentStatus):
// per parentRef an Accepted and a ResolvedRefs condition with the spec's
// reasons, and PartiallyInvalid when some rules were dropped.
import type { Condition } from '../api/index.js';
import type { Attachment, RouteInfo } from './compile-routes.js';
import { EPOCH, RouteReason, condition, routeParentStatus } from './status.js';
import type { ConfigError, ResourceStatus } from './types.js';

export function routeStatuses(
  infos: RouteInfo[],
  atts: Attachment[],
  grpcHeld: Set<string>,
  errors: ConfigError[],
): ResourceStatus[] {
  const out: ResourceStatus[] = [];
  const byInfo = new Map<RouteInfo, Attachment[]>();
  for (const a of atts) byInfo.set(a.info, [...(byInfo.get(a.info) ?? []), a]);
  for (const info of infos) {
    const meta = info.route.metadata;
    const gen = meta.generation;
    const time = meta.creationTimestamp ?? EPOCH;
    const resource = `${info.kind} ${info.key}`;
    const dropped = info.rules.filter((r) => r.dropped);
    for (const r of dropped) {
      errors.push({ source: 'compile', resource, field: `spec.rules[${r.index}]`, message: `rule dropped: ${r.dropped}` });
    }
    for (const p of info.refProblems) {
      const [field, ...rest] = p.message.split(': ');
      errors.push({ source: 'compile', resource, field: `spec.${field}`, message: `${p.reason}: ${rest.join(': ')}` });
    }
    const allDropped = info.rules.length > 0 && dropped.length === info.rules.length;
    const parents = (byInfo.get(info) ?? []).map((a) => {
        const conds: Condition[] = [];
        if (a.noMatch) {
          errors.push({ source: 'compile', resource, field: `spec.parentRefs[${a.parentIndex}]`, message: `NoMatchingParent: ${a.noMatch}` });
          conds.push(condition('Accepted', false, RouteReason.NoMatchingParent, a.noMatch, gen, time));
        } else if (allDropped) {
          conds.push(condition('Accepted', false, RouteReason.UnsupportedValue, `all rules are invalid: ${dropped.map((r) => `rules[${r.index}]: ${r.dropped}`).join('; ')}`, gen, time));
        } else {
          const role = a.svcKey.startsWith(`${info.namespace}/`)
            ? 'producer route: applies to callers in every namespace without their own consumer routes'
            : `consumer route: applies to callers in namespace ${info.namespace}`;
          const lost: number[] = [];
          if (info.kind === 'HTTPRoute') {
            for (const port of a.ports) {
              if (grpcHeld.has(`${a.svcKey}:${port}|${info.namespace}`)) lost.push(port);
            }
          }
          if (lost.length === a.ports.length) {
            const msg = `a GRPCRoute governs Service ${a.svcKey} port(s) ${lost.join(', ')}; GRPCRoute wins over HTTPRoute (GEP-1426)`;
            errors.push({ source: 'compile', resource, field: `spec.parentRefs[${a.parentIndex}]`, message: `Conflicted: ${msg}` });
            conds.push(condition('Accepted', false, RouteReason.Conflicted, msg, gen, time));
          } else {
            const won = a.ports.filter((p) => !lost.includes(p));
            let msg = `attached to Service ${a.svcKey} port(s) ${won.join(', ')} (${role})`;
            if (info.route.spec.hostnames?.length) msg += '; spec.hostnames is ignored for Service parents (GEP-1426)';
            if (lost.length > 0) msg += `; not port(s) ${lost.join(', ')}, where a GRPCRoute wins (GEP-1426)`;
            conds.push(condition('Accepted', true, RouteReason.Accepted, msg, gen, time));
          }
        }
        if (info.refProblems.length > 0) {
          conds.push(condition('ResolvedRefs', false, info.refProblems[0]!.reason, info.refProblems.map((p) => p.message).join('; '), gen, time));
        } else if (info.filterProblems.length > 0) {
          conds.push(condition('ResolvedRefs', false, RouteReason.InvalidKind, info.filterProblems.join('; '), gen, time));
        } else {
          conds.push(condition('ResolvedRefs', true, RouteReason.ResolvedRefs, 'all references resolved', gen, time));
        }
        if (dropped.length > 0 && !allDropped && !a.noMatch) {
          conds.push(condition('PartiallyInvalid', true, RouteReason.UnsupportedValue, `Dropped Rule(s): ${dropped.map((r) => `rules[${r.index}]: ${r.dropped}`).join('; ')}`, gen, time));
        }
        return routeParentStatus(a.parentRef, conds);
      });
    out.push({ kind: info.kind, namespace: info.namespace, name: info.name, generation: gen, status: { parents: parents.slice(0, 32) } });
  }
  return out;
}

// Condition timestamps and shared status lists (metav1.Condition contract,
// Gateway API: controllers own only entries carrying their controllerName).
import t from 'tap';
import type { Condition, RouteStatus } from '../../api/index.js';
import { CONTROLLER_NAME } from '../../api/index.js';
import { carryPolicyStatusTimes, carryRouteStatusTimes, carryTransitionTimes, condition, mergePolicyStatus, mergeRouteStatus } from '../status.js';

const OLD = '2026-01-01T00:00:00Z';
const NOW = '2026-06-01T12:00:00Z';
const c = (type: string, ok: boolean, reason: string, time = '1970-01-01T00:00:00Z'): Condition => condition(type, ok, reason, 'm', 1, time);

t.test('a condition keeps its transition time while status and reason hold', async (t) => {
  const prev = [c('Accepted', true, 'Accepted', OLD), c('ResolvedRefs', true, 'ResolvedRefs', OLD)];
  const next = [c('Accepted', true, 'Accepted'), c('ResolvedRefs', false, 'BackendNotFound'), c('PartiallyInvalid', true, 'UnsupportedValue')];
  const out = carryTransitionTimes(prev, next, NOW);
  t.same(out.map((x) => [x.type, x.lastTransitionTime]), [
    ['Accepted', OLD],
    ['ResolvedRefs', NOW],
    ['PartiallyInvalid', NOW],
  ]);
  t.same(carryTransitionTimes(undefined, [c('Accepted', true, 'Accepted')], NOW)[0]!.lastTransitionTime, NOW);
  t.same(carryTransitionTimes([c('Accepted', true, 'Accepted', OLD)], [c('Accepted', true, 'Other')], NOW)[0]!.lastTransitionTime, NOW, 'a changed reason is a transition');
});

t.test('route and policy statuses carry times entry by entry', async (t) => {
  const ref = { group: '', kind: 'Service', name: 'echo', port: 80 };
  const prev: RouteStatus = { parents: [{ parentRef: ref, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted', OLD)] }] };
  const next: RouteStatus = {
    parents: [
      { parentRef: { ...ref }, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted')] },
      { parentRef: { ...ref, port: 8080 }, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted')] },
    ],
  };
  const out = carryRouteStatusTimes(prev, next, NOW);
  t.equal(out.parents[0]!.conditions[0]!.lastTransitionTime, OLD);
  t.equal(out.parents[1]!.conditions[0]!.lastTransitionTime, NOW, 'another port is another parent');
  const pol = carryPolicyStatusTimes(
    { ancestors: [{ ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', false, 'Invalid', OLD)] }] },
    { ancestors: [{ ancestorRef: ref, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted')] }] },
    NOW,
  );
  t.equal(pol.ancestors[0]!.conditions[0]!.lastTransitionTime, NOW);
});

t.test("merging keeps other controllers' entries and replaces ours", async (t) => {
  const other = { parentRef: { name: 'gw' }, controllerName: 'example.com/gateway', conditions: [c('Accepted', true, 'Accepted')] };
  const stale = { parentRef: { group: '', kind: 'Service', name: 'old' }, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted')] };
  const ours = { parentRef: { group: '', kind: 'Service', name: 'echo' }, controllerName: CONTROLLER_NAME, conditions: [c('Accepted', true, 'Accepted')] };
  t.same(mergeRouteStatus({ parents: [other, stale] }, { parents: [ours] }).parents, [other, ours], 'stale entries of ours are cleaned up');
  t.same(mergeRouteStatus(undefined, { parents: [ours] }).parents, [ours]);
  const anc = { ancestorRef: { name: 'gw' }, controllerName: 'x.io/y', conditions: [] };
  t.same(mergePolicyStatus({ ancestors: [anc] }, { ancestors: [] }).ancestors, [anc]);
});

t.test('condition() fills the metav1.Condition fields', async (t) => {
  t.same(condition('Accepted', false, 'NoMatchingParent', 'why', 7, OLD), {
    type: 'Accepted',
    status: 'False',
    reason: 'NoMatchingParent',
    message: 'why',
    lastTransitionTime: OLD,
    observedGeneration: 7,
  });
  t.notOk('observedGeneration' in condition('Accepted', true, 'Accepted', '', undefined, OLD));
});

t.test('condition messages stay within the 32768-byte limit of metav1.Condition', async (t) => {
  const long = condition('ResolvedRefs', false, 'BackendNotFound', 'x'.repeat(40_000), 1, OLD);
  t.ok(long.message.length <= 32768);
  t.match(long.message, /\.\.\. \(truncated\)$/);
});

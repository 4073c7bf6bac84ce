// AuthorizationPolicy validation (GEP-3779's rules): each bad input is
// refused with an error naming the field; good input passes untouched.
import t from 'tap';
import { validateResource } from '../validate.js';

const AP = 'policy.weft.io/v1alpha1';
const POD = { group: '', kind: 'Pod', selector: { matchLabels: { app: 'cart' } } };
const ap = (spec: Record<string, unknown>) => ({ apiVersion: AP, kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { targetRefs: [POD], action: 'ALLOW', ...spec } });
const src = (s: Record<string, unknown>) => ap({ rules: [{ sources: [s] }] });

t.test('well-formed policies pass', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['no rules (allows nothing)', ap({})],
    ['sources omitted', ap({ rules: [{}] })],
    ['sources []', ap({ rules: [{ sources: [] }] })],
    ['service account, namespace omitted', src({ type: 'ServiceAccount', serviceAccount: { name: 'web' } })],
    ['service account "*" of another namespace', src({ type: 'ServiceAccount', serviceAccount: { namespace: 'ops', name: '*' } })],
    ['SPIFFE', src({ type: 'SPIFFE', spiffe: 'spiffe://cluster.local/ns/ops/sa/probe' })],
    ['SPIFFE of another trust domain', src({ type: 'SPIFFE', spiffe: 'spiffe://example.org/workload/x' })],
    ['ports', ap({ rules: [{ networkAttributes: { ports: [8080, 9090] } }] })],
    ['selector {} (every pod)', ap({ targetRefs: [{ group: '', kind: 'Pod', selector: {} }] })],
    ['matchExpressions', ap({ targetRefs: [{ group: '', kind: 'Pod', selector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] } }] })],
    ['another kind by name (status says unsupported)', ap({ targetRefs: [{ group: '', kind: 'Service', name: 'cart' }] })],
  ];
  for (const [name, obj] of cases) {
    const r = validateResource(obj, 'f.yaml');
    t.same(r.errors, [], name);
    t.equal(r.resource?.kind, 'AuthorizationPolicy', name);
  }
});

t.test('GEP-3779 violations name the field', async (t) => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['action DENY', ap({ action: 'DENY' }), 'spec.action', /Unsupported value: "DENY": supported values: "ALLOW"/],
    ['action missing', { ...ap({}), spec: { targetRefs: [POD] } }, 'spec.action', /Required value/],
    ['kind Pod without selector', ap({ targetRefs: [{ group: '', kind: 'Pod' }] }), 'spec.targetRefs[0].selector', /Required value: targetRefs of kind Pod must have a selector/],
    ['kind Pod with a name', ap({ targetRefs: [{ ...POD, name: 'cart-0' }] }), 'spec.targetRefs[0].name', /Forbidden: .*may not have a name/],
    ['selector on another kind', ap({ targetRefs: [{ group: '', kind: 'Service', name: 'cart', selector: {} }] }), 'spec.targetRefs[0].selector', /Forbidden: a selector is only allowed on targetRefs of kind Pod, not Service/],
    ['no targetRefs', ap({ targetRefs: [] }), 'spec.targetRefs', /at least 1 items/],
    ['spiffe without scheme', src({ type: 'SPIFFE', spiffe: 'cluster.local/ns/a/sa/b' }), 'spec.rules[0].sources[0].spiffe', /must be of the form spiffe:\/\/<trust domain>\/<path>/],
    ['spiffe without path', src({ type: 'SPIFFE', spiffe: 'spiffe://cluster.local' }), 'spec.rules[0].sources[0].spiffe', /spiffe:\/\/<trust domain>\/<path>/],
    ['SPIFFE type with a serviceAccount', src({ type: 'SPIFFE', serviceAccount: { name: 'web' } }), 'spec.rules[0].sources[0].serviceAccount', /Forbidden: a source of type SPIFFE/],
    ['SPIFFE type without spiffe', src({ type: 'SPIFFE' }), 'spec.rules[0].sources[0].spiffe', /Required value/],
    ['ServiceAccount type with spiffe', src({ type: 'ServiceAccount', spiffe: 'spiffe://cluster.local/ns/a/sa/b' }), 'spec.rules[0].sources[0].spiffe', /Forbidden: a source of type ServiceAccount/],
    ['ServiceAccount type without serviceAccount', src({ type: 'ServiceAccount' }), 'spec.rules[0].sources[0].serviceAccount', /Required value/],
    ['service account name missing', src({ type: 'ServiceAccount', serviceAccount: { namespace: 'x' } }), 'spec.rules[0].sources[0].serviceAccount.name', /Required value/],
    ['bad source type', src({ type: 'IPBlock' }), 'spec.rules[0].sources[0].type', /Unsupported value: "IPBlock"/],
    ['port 0', ap({ rules: [{ networkAttributes: { ports: [0] } }] }), 'spec.rules[0].networkAttributes.ports[0]', /greater than or equal to 1/],
    ['bad selector operator', ap({ targetRefs: [{ group: '', kind: 'Pod', selector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } }] }), 'spec.targetRefs[0].selector.matchExpressions[0].operator', /Unsupported value/],
    ['In without values', ap({ targetRefs: [{ group: '', kind: 'Pod', selector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }] }), 'spec.targetRefs[0].selector.matchExpressions[0].values', /Required value/],
    ['wrong apiVersion', { ...ap({}), apiVersion: 'security.istio.io/v1' }, 'apiVersion', /supported values for AuthorizationPolicy: "policy.weft.io\/v1alpha1"/],
  ];
  for (const [name, obj, field, msg] of cases) {
    const r = validateResource(obj, 'f.yaml');
    t.equal(r.resource, undefined, `${name}: refused`);
    const e = r.errors.find((x) => x.field === field);
    t.ok(e, `${name}: error names ${field} (got ${r.errors.map((x) => `${x.field}: ${x.message}`).join(' | ')})`);
    if (e) {
      t.match(e.message, msg, `${name}: message`);
      t.equal(e.resource, 'AuthorizationPolicy shop/p', `${name}: names the resource`);
    }
  }
});

t.test('Workload inbound fields', async (t) => {
  const wl = (spec: Record<string, unknown>) => ({ apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'w', namespace: 'ns' }, spec: { command: ['node'], ...spec } });
  t.same(validateResource(wl({ defaultInboundPolicy: 'deny', probePaths: ['/healthz'] }), 'f').errors, []);
  const bad = validateResource(wl({ defaultInboundPolicy: 'closed', probePaths: ['healthz'] }), 'f').errors;
  t.match(bad.find((e) => e.field === 'spec.defaultInboundPolicy')?.message, /Unsupported value: "closed": supported values: "all-unauthenticated", "all-authenticated", "deny", "audit"/);
  t.match(bad.find((e) => e.field === 'spec.probePaths[0]')?.message, /must be an absolute path/);
});

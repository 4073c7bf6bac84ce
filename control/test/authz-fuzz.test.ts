// Property tests for authorization (fast-check; `npm run fuzz` runs many
// more): whatever a user writes as an AuthorizationPolicy, validation
// answers with errors or a resource and never throws; compile never throws
// on what validation accepted; and for every accepted policy set, the
// sidecar's compiled checker decides exactly what GEP-3779's semantics,
// written out naively here, decide.
import t from 'tap';
import fc from 'fast-check';
import type { AuthorizationPolicy, DefaultInboundPolicy } from '../../api/index.js';
import { buildAuthorizer } from '../../sidecar/inbound/authorize.js';
import { compile } from '../compile.js';
import { snapshotOf } from '../types.js';
import { validateResource } from '../validate.js';

const RUNS = Number(process.env.WEFT_FUZZ_RUNS ?? 150);
const SEED = 3779;

const NAMESPACES = ['shop', 'ops', 'evil'];
const SAS = ['web', 'other', 'probe', '*'];
const PORTS = [8080, 8081, 9000];
const source = fc.oneof(
  fc.record({ type: fc.constant('ServiceAccount'), serviceAccount: fc.record({ name: fc.constantFrom(...SAS), namespace: fc.option(fc.constantFrom(...NAMESPACES), { nil: undefined }) }, { requiredKeys: ['name'] }) }),
  fc.record({ type: fc.constant('SPIFFE'), spiffe: fc.constantFrom('spiffe://cluster.local/ns/ops/sa/probe', 'spiffe://cluster.local/ns/shop/sa/web', 'spiffe://other.td/x') }),
);
const rule = fc.record({ sources: fc.option(fc.array(source, { maxLength: 3 }), { nil: undefined }), networkAttributes: fc.option(fc.record({ ports: fc.array(fc.constantFrom(...PORTS), { maxLength: 2 }) }), { nil: undefined }) }, { requiredKeys: [] });
const policy = fc.record({
  name: fc.constantFrom('a', 'b', 'c'),
  namespace: fc.constantFrom('shop', 'ops'),
  selector: fc.constantFrom({}, { matchLabels: { app: 'cart' } }, { matchLabels: { app: 'web' } }),
  rules: fc.option(fc.array(rule, { maxLength: 3 }), { nil: undefined }),
});

t.test('validation never throws, whatever the input', async (t) => {
  const anyValue = fc.anything({ maxDepth: 4 });
  const doc = fc.record({
    apiVersion: fc.constant('policy.weft.io/v1alpha1'),
    kind: fc.constant('AuthorizationPolicy'),
    metadata: fc.oneof(fc.record({ name: fc.constant('p'), namespace: fc.constant('shop') }), anyValue),
    spec: fc.oneof(anyValue, fc.record({ targetRefs: anyValue, action: fc.oneof(fc.constant('ALLOW'), anyValue), rules: fc.oneof(fc.array(fc.oneof(rule, anyValue), { maxLength: 3 }), anyValue) }, { requiredKeys: [] })),
  });
  fc.assert(
    fc.property(doc, (d) => {
      const r = validateResource(d, 'fuzz');
      if (r.resource) compile(snapshotOf([r.resource], []));
      return r.resource !== undefined || r.errors.length > 0;
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.pass(`${RUNS} documents`);
});

t.test('the compiled checker decides what GEP-3779 says', async (t) => {
  const callers = ['', ...NAMESPACES.flatMap((ns) => ['web', 'other', 'probe'].map((sa) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`)), 'spiffe://other.td/x'];
  fc.assert(
    fc.property(fc.array(policy, { maxLength: 4 }), fc.constantFrom<DefaultInboundPolicy>('all-unauthenticated', 'all-authenticated', 'deny', 'audit'), (ps, mode) => {
      const resources = ps.map((p) => validateResource({ apiVersion: 'policy.weft.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: p.name, namespace: p.namespace }, spec: { targetRefs: [{ group: '', kind: 'Pod', selector: p.selector }], action: 'ALLOW', ...(p.rules ? { rules: p.rules } : {}) } }, 'fuzz'));
      if (resources.some((r) => !r.resource)) return false;
      const accepted = resources.map((r) => r.resource as AuthorizationPolicy);
      // Duplicate names: the last one wins as in a store keyed by name.
      const byKey = new Map(accepted.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, p]));
      const c = compile(snapshotOf([...byKey.values()], []), { defaultInboundPolicy: mode });
      const pod = { namespace: 'shop', name: 'cart-0', workload: 'cart', labels: { app: 'cart' }, podIP: '' };
      const check = buildAuthorizer(c.inbound(pod));
      // The reference: GEP-3779 written out, no precompilation.
      const targeting = [...byKey.values()].filter((p) => p.metadata.namespace === 'shop' && p.spec.targetRefs.some((r) => !r.selector!.matchLabels || r.selector!.matchLabels['app'] === 'cart'));
      for (const caller of callers) {
        for (const port of PORTS) {
          const ruleAllows = (r: NonNullable<AuthorizationPolicy['spec']['rules']>[number], ns: string) => {
            if (r.networkAttributes?.ports && !r.networkAttributes.ports.includes(port)) return false;
            if (r.sources === undefined) return true;
            return r.sources.some((s) => {
              if (s.type === 'SPIFFE') return s.spiffe === caller;
              const sns = s.serviceAccount!.namespace ?? ns;
              return s.serviceAccount!.name === '*' ? caller.startsWith(`spiffe://cluster.local/ns/${sns}/sa/`) : caller === `spiffe://cluster.local/ns/${sns}/sa/${s.serviceAccount!.name}`;
            });
          };
          let want: 'allow' | 'deny' | 'audit';
          if (targeting.length > 0) {
            const ok = targeting.some((p) => (p.spec.rules ?? []).some((r) => ruleAllows(r, p.metadata.namespace!)));
            want = ok ? 'allow' : mode === 'audit' ? 'audit' : 'deny';
          } else {
            want = mode === 'all-unauthenticated' ? 'allow' : mode === 'all-authenticated' ? (caller ? 'allow' : 'deny') : mode === 'audit' ? 'audit' : 'deny';
          }
          const got = check.check(port, caller, '/').decision;
          if (got !== want) throw new Error(`caller ${caller || '(plaintext)'} port ${port} mode ${mode}: got ${got}, GEP-3779 says ${want}\n${JSON.stringify(targeting.map((p) => p.spec))}`);
        }
      }
      return true;
    }),
    { numRuns: RUNS, seed: SEED },
  );
  t.pass(`${RUNS} policy sets × ${callers.length} callers × ${PORTS.length} ports`);
});

// Fuzzing the config source: random YAML and JSON, random bytes, and random
// mutations of valid routes and policies. Never a throw; a document is
// accepted, or its errors each carry a message and (for a resource) the field
// at fault; whatever is accepted compiles without a throw.
import t from 'tap';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { compile } from '../compile.js';
import { parseFile } from '../source-files.js';
import { snapshotOf } from '../types.js';

const runs = Number(process.env.WEFT_FUZZ_RUNS ?? 200);
const GW = 'gateway.networking.k8s.io';

const VALID: Record<string, unknown>[] = [
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: 'ns' }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
  {
    apiVersion: `${GW}/v1`, kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns' },
    spec: {
      parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 80 }],
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/a' }, headers: [{ name: 'x', value: 'y' }] }], filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: 'b' }] } }], backendRefs: [{ name: 'echo', port: 80, weight: 3 }], timeouts: { request: '5s' }, retry: { codes: [503], attempts: 2, backoff: '100ms' } },
        { backendRefs: [{ name: 'echo', port: 80 }], sessionPersistence: { sessionName: 's', type: 'Cookie' } },
      ],
    },
  },
  { apiVersion: `${GW}/v1`, kind: 'GRPCRoute', metadata: { name: 'g', namespace: 'ns' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 80 }], rules: [{ matches: [{ method: { service: 'a.B', method: 'C' } }], backendRefs: [{ name: 'echo', port: 80 }] }] } },
  { apiVersion: `${GW}/v1alpha2`, kind: 'BackendLBPolicy', metadata: { name: 'lb', namespace: 'ns' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], sessionPersistence: { type: 'Header', sessionName: 'h' } } },
  { apiVersion: `${GW}/v1alpha3`, kind: 'BackendTLSPolicy', metadata: { name: 'tls', namespace: 'ns' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], validation: { hostname: 'echo.example', wellKnownCACertificates: 'System' } } },
  { apiVersion: `${GW}/v1beta1`, kind: 'ReferenceGrant', metadata: { name: 'rg', namespace: 'ns' }, spec: { from: [{ group: GW, kind: 'HTTPRoute', namespace: 'other' }], to: [{ group: '', kind: 'Service' }] } },
];

type Path = Array<string | number>;
function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...prefix, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...prefix, k], out);
  return out;
}

type Mutation = { kind: 'set'; value: unknown } | { kind: 'delete' } | { kind: 'rename'; to: string };
function mutate(doc: unknown, p: Path, m: Mutation): unknown {
  if (p.length === 0) return m.kind === 'set' ? m.value : doc;
  const root = structuredClone(doc) as Record<string | number, unknown>;
  let cur = root;
  for (const k of p.slice(0, -1)) cur = cur[k] as Record<string | number, unknown>;
  const last = p[p.length - 1]!;
  if (m.kind === 'set') cur[last] = m.value;
  else if (m.kind === 'delete') {
    if (Array.isArray(cur)) cur.splice(Number(last), 1);
    else delete cur[last];
  } else if (!Array.isArray(cur)) {
    cur[m.to] = cur[last];
    delete cur[last];
  }
  return root;
}

const scalar = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom('', '/', '//', 'Service', 'PathPrefix', '0s', '-1', 'ns', 'x'.repeat(300)));
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 8 }), scalar, { maxKeys: 3 }), fc.anything({ maxDepth: 3 }));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  value.map((v) => ({ kind: 'set' as const, value: v })),
  fc.constant({ kind: 'delete' as const }),
  fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('backendRef', 'matchs', 'spec', 'kind', '__proto__', 'constructor')).map((to) => ({ kind: 'rename' as const, to })),
);
const mutatedDoc = fc.tuple(fc.integer({ min: 0, max: VALID.length - 1 }), fc.array(fc.tuple(fc.nat(), mutation), { minLength: 1, maxLength: 3 })).map(([i, ms]) => {
  let d: unknown = VALID[i];
  for (const [n, m] of ms) {
    const ps = paths(d);
    d = mutate(d, ps[n % ps.length]!, m);
  }
  return d;
});

function check(text: string | Uint8Array, mutated: boolean): boolean {
  const out = parseFile('/fuzz/x.yaml', text);
  for (const e of out.errors) {
    if (typeof e.message !== 'string' || e.message.length === 0) throw new Error(`an error without a message: ${JSON.stringify(e)}`);
    // A mutated resource's errors name the field (kind, apiVersion, metadata.name, spec...).
    if (mutated && /^(HTTPRoute|GRPCRoute|Service|BackendLBPolicy|BackendTLSPolicy|ReferenceGrant) /.test(e.resource) && !e.field) {
      throw new Error(`an error naming no field: ${JSON.stringify(e)}`);
    }
  }
  compile(snapshotOf(out.resources, [])); // what is accepted compiles
  return true;
}

t.test('mutations of valid routes and policies: accepted or errors naming a field; compile never throws', async (t) => {
  fc.assert(fc.property(fc.array(mutatedDoc, { minLength: 1, maxLength: 4 }), (ds) => check(ds.map((d) => stringify(d ?? null)).join('---\n'), true)), { seed: 16, numRuns: runs });
  fc.assert(fc.property(fc.array(mutatedDoc, { minLength: 1, maxLength: 2 }), (ds) => check(ds.map((d) => JSON.stringify(d) ?? 'null').join('\n---\n'), true)), { seed: 17, numRuns: runs });
  t.pass(`${runs * 2} mutated files`);
});

t.test('random YAML, JSON, text and bytes never throw', async (t) => {
  fc.assert(fc.property(fc.anything({ maxDepth: 5 }), (v) => check(stringify(v, { aliasDuplicateObjects: true }) ?? "", false)), { seed: 18, numRuns: runs });
  fc.assert(fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => check(JSON.stringify(v), false)), { seed: 19, numRuns: runs });
  const yamlish = fc.array(fc.constantFrom('a', ':', ' ', '\n', '-', '&x', '*x', '[', ']', '{', '}', ',', '---', '"', "'", '!!str', '!!binary', '<<:', '? ', '|', '>', '#', '%YAML 1.2', '\t', 'kind: HTTPRoute', 'apiVersion: v1'), { maxLength: 60 }).map((xs) => xs.join(''));
  fc.assert(fc.property(yamlish, (s) => check(s, false)), { seed: 20, numRuns: runs });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (b) => check(b, false)), { seed: 21, numRuns: runs });
  t.pass(`${runs * 4} random files`);
});

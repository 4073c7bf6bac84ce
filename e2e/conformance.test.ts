// Every Gateway API mesh conformance scenario (e2e/conformance/scenarios.ts)
// through real sidecars of a local mesh, and the report `weft conformance`
// prints from the results.
import t from 'tap';
import { runConformance } from '../conformance/index.js';
import { SCENARIOS } from '../conformance/index.js';
import { buildReport, applySupport } from '../conformance/index.js';
import { SUPPORTED_FEATURES } from '../cli/cmd-conformance.js';

t.setTimeout(300_000);

t.test('every mesh HTTP conformance scenario passes through real sidecars', async (t) => {
  const results = await runConformance({ log: (l) => t.comment(l) });
  t.equal(results.length, SCENARIOS.length, 'every scenario has a result');
  for (const r of results) {
    if (r.result === 'SKIPPED') {
      // Only the scenario that needs ClusterIP interception may skip here; it runs in the netns bed.
      t.equal(r.name, 'MeshFrontendHostname', `${r.name} skipped: ${r.reason}`);
      continue;
    }
    t.equal(r.result, 'SUCCEEDED', `${r.name}: ${r.cases.filter((c) => !c.ok).map((c) => `${c.name}: ${c.error}`).join('; ')}`);
    t.ok(r.cases.length > 0, `${r.name} checked at least one case`);
  }
  const report = buildReport(applySupport(results, SUPPORTED_FEATURES, ['Mesh', 'HTTPRoute', 'GRPCRoute']), {
    profiles: ['MESH-HTTP', 'MESH-GRPC'],
    supportedFeatures: SUPPORTED_FEATURES,
    date: '2026-01-01T00:00:00Z',
    version: 'v0.1.0',
  });
  const p = report.profiles[0]!;
  t.equal(p.core.result, 'success');
  t.equal(p.core.statistics.Passed, 7, 'core: MeshBasic, MeshTrafficSplit and the five core-only newer tests');
  t.equal(p.extended?.statistics.Failed, 0);
  t.same(p.extended?.skippedTests, ['MeshFrontendHostname']);
  const g = report.profiles[1]!;
  t.equal(g.name, 'MESH-GRPC');
  t.equal(g.core.result, 'success');
  t.ok(g.core.statistics.Passed >= 3, 'MESH-GRPC core: MeshBasic and the GRPCRoute scenarios');
});

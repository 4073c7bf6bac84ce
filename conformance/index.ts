// conformance/: the Gateway API mesh conformance scenarios (MESH-HTTP,
// MESH-GRPC), the runner that drives them through a local mesh of real
// sidecars, and the ConformanceReport they produce. `weft conformance` runs
// it; e2e/conformance*.test.ts run it in npm test.
export { runConformance, checkResponse } from './runner.js';
export { SCENARIOS, MESH_NS, CONSUMER_NS, baseManifests, type Case, type Expect, type Scenario } from './scenarios.js';
export { buildReport, applySupport, profileReport, PROFILES, type ScenarioOutcome } from './report.js';

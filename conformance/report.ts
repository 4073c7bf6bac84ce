// Builds a Gateway API ConformanceReport from scenario results, computed the
// way the upstream suite does (conformance/utils/suite/reports.go): a test
// belongs to a profile when all its features are in the profile's core or
// extended set; it counts as extended as soon as one feature is not core;
// NOT_SUPPORTED tests are not counted; a block's result is failure if any
// test failed, else partial if any was skipped, else success.

export type TestResult = 'SUCCEEDED' | 'FAILED' | 'SKIPPED' | 'NOT_SUPPORTED';

export interface ScenarioOutcome {
  name: string;
  features: string[];
  result: TestResult;
  provisional?: boolean;
  reason?: string;
}

export interface ProfileDef {
  name: 'MESH-HTTP' | 'MESH-GRPC';
  core: string[];
  extended: string[];
}

const MESH_EXTENDED = [
  'MeshClusterIPMatching',
  'MeshConsumerRoute',
  'MeshHTTPRouteRewritePath',
  'MeshHTTPRouteSchemeRedirect',
  'MeshHTTPRouteRedirectPort',
  'MeshHTTPRouteRedirectPath',
  'MeshHTTPRouteBackendRequestHeaderModification',
  'MeshHTTPRouteQueryParamMatching',
  'MeshHTTPRouteNamedRouteRule',
];

/** v1.1.0's HTTPRoute extended features (all listed under MESH-HTTP there). */
const HTTPROUTE_EXTENDED_V11 = [
  'HTTPRouteQueryParamMatching',
  'HTTPRouteMethodMatching',
  'HTTPRouteResponseHeaderModification',
  'HTTPRoutePortRedirect',
  'HTTPRouteSchemeRedirect',
  'HTTPRoutePathRedirect',
  'HTTPRouteHostRewrite',
  'HTTPRoutePathRewrite',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestMultipleMirrors',
  'HTTPRouteRequestTimeout',
  'HTTPRouteBackendTimeout',
  'HTTPRouteParentRefPort',
  'HTTPRouteBackendRequestHeaderModification',
];

/** Redirect status codes the mesh tests added after v1.1.0 need. */
const REDIRECT_CODES = ['HTTPRoute303RedirectStatusCode', 'HTTPRoute307RedirectStatusCode', 'HTTPRoute308RedirectStatusCode'];

export const PROFILES: Record<'MESH-HTTP' | 'MESH-GRPC', ProfileDef> = {
  'MESH-HTTP': { name: 'MESH-HTTP', core: ['Mesh', 'HTTPRoute'], extended: [...HTTPROUTE_EXTENDED_V11, ...MESH_EXTENDED, ...REDIRECT_CODES] },
  'MESH-GRPC': { name: 'MESH-GRPC', core: ['Mesh', 'GRPCRoute'], extended: [...MESH_EXTENDED] },
};

export interface Statistics {
  Passed: number;
  Skipped: number;
  Failed: number;
}

export interface StatusBlock {
  result: 'success' | 'partial' | 'failure';
  statistics: Statistics;
  skippedTests?: string[];
  failedTests?: string[];
}

export interface ProfileReport {
  name: string;
  summary: string;
  core: StatusBlock;
  extended?: StatusBlock & { supportedFeatures?: string[]; unsupportedFeatures?: string[] };
}

export interface ConformanceReport {
  apiVersion: 'gateway.networking.k8s.io/v1';
  kind: 'ConformanceReport';
  date: string;
  gatewayAPIVersion: string;
  gatewayAPIChannel: 'standard' | 'experimental';
  mode: string;
  implementation: { organization: string; project: string; url: string; version: string; contact: string[] };
  profiles: ProfileReport[];
}

export interface ReportOptions {
  profiles: Array<'MESH-HTTP' | 'MESH-GRPC'>;
  /** Extended features weft claims; the rest of each profile's extended set is unsupported. */
  supportedFeatures: string[];
  date: string;
  version: string;
  mode?: string;
}

function block(results: ScenarioOutcome[]): StatusBlock {
  const statistics: Statistics = { Passed: 0, Skipped: 0, Failed: 0 };
  const skipped: string[] = [];
  const failed: string[] = [];
  for (const r of results) {
    if (r.result === 'SUCCEEDED') statistics.Passed++;
    else if (r.result === 'SKIPPED') {
      statistics.Skipped++;
      skipped.push(r.name);
    } else if (r.result === 'FAILED') {
      statistics.Failed++;
      failed.push(r.name);
    }
  }
  const out: StatusBlock = {
    result: statistics.Failed > 0 ? 'failure' : statistics.Skipped > 0 ? 'partial' : 'success',
    statistics,
  };
  if (skipped.length) out.skippedTests = skipped.sort();
  if (failed.length) out.failedTests = failed.sort();
  return out;
}

function sentence(kind: 'Core' | 'Extended', b: StatusBlock): string {
  if (b.result === 'failure') return `${kind} tests failed with ${b.statistics.Failed} test failures.`;
  if (b.result === 'partial') return `${kind} tests partially succeeded with ${b.statistics.Skipped} test skips.`;
  return `${kind} tests succeeded.`;
}

export function profileReport(def: ProfileDef, results: ScenarioOutcome[], supported: string[]): ProfileReport {
  const inProfile = new Set([...def.core, ...def.extended]);
  const core = new Set(def.core);
  const mine = results.filter((r) => r.result !== 'NOT_SUPPORTED' && r.features.every((f) => inProfile.has(f)));
  const coreResults = mine.filter((r) => r.features.every((f) => core.has(f)));
  const extResults = mine.filter((r) => !r.features.every((f) => core.has(f)));
  const coreBlock = block(coreResults);
  const report: ProfileReport = { name: def.name, summary: sentence('Core', coreBlock), core: coreBlock };
  if (extResults.length) {
    const ext = block(extResults);
    const sup = def.extended.filter((f) => supported.includes(f)).sort();
    const unsup = def.extended.filter((f) => !supported.includes(f)).sort();
    report.extended = { ...ext, ...(sup.length ? { supportedFeatures: sup } : {}), ...(unsup.length ? { unsupportedFeatures: unsup } : {}) };
    report.summary = `${report.summary.slice(0, -1)}. ${sentence('Extended', ext)}`;
  }
  return report;
}

export function buildReport(results: ScenarioOutcome[], o: ReportOptions): ConformanceReport {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'ConformanceReport',
    date: o.date,
    gatewayAPIVersion: 'v1.1.0',
    gatewayAPIChannel: 'experimental',
    mode: o.mode ?? 'default',
    implementation: {
      organization: 'weft',
      project: 'weft',
      url: 'https://github.com/weft-mesh/weft',
      version: o.version,
      contact: ['@weft-mesh/maintainers'],
    },
    profiles: o.profiles.map((p) => profileReport(PROFILES[p], results, o.supportedFeatures)),
  };
}

/** Outcome of a test whose features weft does not claim: NOT_SUPPORTED, as upstream. */
export function applySupport(results: ScenarioOutcome[], supported: string[], core: string[]): ScenarioOutcome[] {
  const ok = new Set([...supported, ...core]);
  return results.map((r) =>
    r.features.every((f) => ok.has(f)) ? r : { ...r, result: 'NOT_SUPPORTED' as const, reason: r.reason ?? 'feature not supported' },
  );
}

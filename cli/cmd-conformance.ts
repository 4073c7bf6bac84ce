// `weft conformance`: runs the Gateway API mesh conformance scenarios against
// a local mesh it starts itself, and prints a ConformanceReport.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { WEFT_VERSION } from '../api/index.js';
import { parseFlags, UsageError } from './args.js';
import { runConformance, buildReport, applySupport, PROFILES } from '../conformance/index.js';

const HELP = `usage: weft conformance [--profile MESH-HTTP[,MESH-GRPC]] [--run-test NAME,...] [--output FILE] [--verbose]

Starts a local mesh (weft up) with the Gateway API conformance base manifests,
runs every mesh scenario through real sidecars and prints a ConformanceReport
(gateway.networking.k8s.io/v1). Exit code 1 when a test failed.`;

/**
 * Extended features weft claims: every extended feature of the mesh profiles
 * (each has a scenario here or is covered by weft's own tests: timeouts,
 * mirrors, method matching, host rewrite).
 */
export const SUPPORTED_FEATURES = [...PROFILES['MESH-HTTP'].extended];

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    profile: { type: 'string', default: 'MESH-HTTP,MESH-GRPC' },
    'run-test': { type: 'string' },
    output: { type: 'string', short: 'o' },
    verbose: { type: 'boolean', short: 'v' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const profiles = String(values.profile)
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  for (const p of profiles) if (!(p in PROFILES)) throw new UsageError(`--profile: unknown profile "${p}" (MESH-HTTP, MESH-GRPC)`);
  const only = values['run-test'] ? String(values['run-test']).split(',') : undefined;
  const log = (line: string) => process.stderr.write(`conformance: ${line}\n`);
  const results = await runConformance({ only, log: values.verbose ? log : (l) => (/SUCCEEDED|FAILED|SKIPPED|✗/.test(l) ? log(l) : undefined) });
  const outcomes = applySupport(results, SUPPORTED_FEATURES, ['Mesh', 'HTTPRoute', 'GRPCRoute']);
  const report = buildReport(outcomes, {
    profiles: profiles as Array<'MESH-HTTP' | 'MESH-GRPC'>,
    supportedFeatures: SUPPORTED_FEATURES,
    date: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    version: `v${WEFT_VERSION}`,
  });
  const skipped = outcomes.filter((r) => r.result === 'SKIPPED');
  const provisional = outcomes.filter((r) => r.provisional).map((r) => r.name);
  const header = [
    '# weft mesh conformance, local mode (weft up): every scenario sent through real sidecars.',
    ...skipped.map((r) => `# skipped ${r.name}: ${r.reason}`),
    ...(provisional.length ? [`# provisional upstream tests run and counted: ${provisional.join(', ')}`] : []),
  ].join('\n');
  const text = `${header}\n${stringify(report, { sortMapEntries: true })}`;
  if (values.output) writeFileSync(String(values.output), text);
  process.stdout.write(text);
  return outcomes.some((r) => r.result === 'FAILED') ? 1 : 0;
}

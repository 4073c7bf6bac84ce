// Control-plane metrics (api/metrics.ts CONTROL_METRICS). Each control owns its
// own prom-client Registry, so several controls in one process (tests) never
// collide on the global one.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CONTROL_METRICS, METRIC_LABELS } from '../api/index.js';

/** Compile and push times: sub-millisecond up to tens of seconds. */
const CONTROL_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** NACK reasons are sidecar-written text: keep the label set bounded. */
const MAX_NACK_REASONS = 32;

function labels(name: string): string[] {
  return [...(METRIC_LABELS[name] ?? [])];
}

export class ControlMetrics {
  readonly registry = new Registry();
  readonly connectedSidecars: Gauge;
  readonly compileDuration: Histogram;
  readonly pushDuration: Histogram;
  private readonly nacks: Counter;
  readonly certsSigned: Counter;
  private readonly sourceSynced: Gauge;
  readonly configErrors: Gauge;
  private readonly configVersion: Gauge;
  readonly anchorExpiry: Gauge;
  readonly issuerExpiry: Gauge;
  /** Requests refused by a limit of control's gRPC port, by limit. */
  readonly limitRejections: Counter;
  private readonly nackReasons = new Set<string>();
  private currentVersion: string | undefined;

  constructor() {
    const registers = [this.registry];
    const C = CONTROL_METRICS;
    this.connectedSidecars = new Gauge({ name: C.connectedSidecars, help: 'Sidecars with an open Discovery stream.', registers });
    this.compileDuration = new Histogram({
      name: C.compileDuration,
      help: 'Time to compile the store into the mesh config.',
      buckets: CONTROL_BUCKETS,
      registers,
    });
    this.pushDuration = new Histogram({
      name: C.pushDuration,
      help: 'Time from a configuration change to the last ACK of the updates it caused.',
      buckets: CONTROL_BUCKETS,
      registers,
    });
    this.nacks = new Counter({ name: C.nacks, help: 'Updates sidecars refused, by reason.', labelNames: labels(C.nacks), registers });
    this.certsSigned = new Counter({ name: C.certsSigned, help: 'Workload certificates signed.', registers });
    this.sourceSynced = new Gauge({
      name: C.sourceSynced,
      help: '1 when a config source has completed its initial load.',
      labelNames: labels(C.sourceSynced),
      registers,
    });
    this.configErrors = new Gauge({ name: C.configErrors, help: 'Current configuration errors (invalid resources or files).', registers });
    this.configVersion = new Gauge({
      name: C.configVersion,
      help: 'The directory version control serves (value 1).',
      labelNames: labels(C.configVersion),
      registers,
    });
    this.anchorExpiry = new Gauge({ name: C.anchorExpiry, help: 'Trust anchor notAfter, Unix seconds.', registers });
    this.issuerExpiry = new Gauge({ name: C.issuerExpiry, help: 'Issuer certificate notAfter, Unix seconds.', registers });
    this.limitRejections = new Counter({ name: C.limitRejections, help: "Requests refused by a limit of control's gRPC port.", labelNames: labels(C.limitRejections), registers });
    this.limitRejections.inc({ limit: 'streams_per_peer' }, 0); // exported from the start
  }

  nack(reason: string): void {
    let r = nackReason(reason);
    if (!this.nackReasons.has(r)) {
      if (this.nackReasons.size >= MAX_NACK_REASONS) r = 'other';
      else this.nackReasons.add(r);
    }
    this.nacks.inc({ reason: r });
  }

  setSourceSynced(source: string, synced: boolean): void {
    this.sourceSynced.set({ source }, synced ? 1 : 0);
  }

  setConfigVersion(version: string): void {
    if (this.currentVersion !== undefined) this.configVersion.remove({ version: this.currentVersion });
    this.currentVersion = version;
    this.configVersion.set({ version }, 1);
  }

  /** Called before every scrape to set gauges that are cheaper to read than to track. */
  beforeScrape: (() => void) | undefined;

  text(): Promise<string> {
    this.beforeScrape?.();
    return this.registry.metrics();
  }
}

/**
 * The reason label of a NACK: bounded, so never a Service name, version or
 * index. Drops the "service <key> version <v>: " prefix sidecars put first,
 * keeps the leading phrase up to the next colon, without digits.
 */
export function nackReason(error: string): string {
  const rest = error.replace(/^\s*(service\s+\S+\s+)?version\s+\S+:\s*/i, '').replace(/^\s*(service|directory)\s+\S+:\s*/i, '');
  const head = (rest.split(':')[0] ?? '').trim().toLowerCase();
  const clean = head
    .replace(/[0-9]+/g, '')
    .replace(/[^a-z_ .-]/g, '')
    .replace(/\s+/g, '_')
    .replace(/_+/g, '_')
    .replace(/^[_.]+|[_.]+$/g, '')
    .slice(0, 48);
  return clean || 'unspecified';
}

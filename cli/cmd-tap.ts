// `weft tap`: live requests as the sidecars see them, like `linkerd viz tap`.
// Each sidecar streams matching requests from its admin endpoint
// (GET /tap, NDJSON; sidecar/observe/tap.ts); this command merges the streams and
// prints one line per request until Ctrl-C or --max lines.
//
//   service/NAME   requests to the Service, seen by every calling sidecar (outbound)
//   workload/NAME  requests served by the workload, seen by its own sidecars (inbound)
import http from 'node:http';
import { PORTS } from '../api/index.js';
import { bool, int, list, parseFlags, str, UsageError, waitForSignal } from './args.js';

const HELP = `usage: weft tap [-n NS] service/NAME|workload/NAME [flags]

Streams one line per live request: time, direction, source identity →
destination workload, method, authority, path, status (or grpc-status) and
latency, until Ctrl-C or --max lines.

  service/NAME    requests to the Service, as every calling sidecar saw them
  workload/NAME   requests the workload served, as its own sidecars saw them

Sources (default: the local mesh of \`weft up\`):
  --control-admin H:P   control's admin address, whose /resources lists the
                        sidecars (default 127.0.0.1:${PORTS.controlAdmin})
  --admin URL,...       tap these sidecar admin endpoints instead

flags:
  -n, --namespace NS    the namespace of NAME (default "default")
  --max N               stop after N requests
  --path PREFIX         only requests whose path starts with PREFIX
  --method M            only requests with this method
  -o, --output FORMAT   text (default) or json: one JSON object a line with
                        method, path, status, latencyMs, source, destination, ...

Sidecars send at most 100 requests a second each to one tap; beyond that
(or when this command reads too slowly) requests are skipped and counted,
and a line on stderr says how many.
`;

export interface TapLine {
  time: string;
  direction: string;
  source: string;
  destination: string;
  service: string;
  route: string;
  backend: string;
  endpoint: string;
  method: string;
  authority: string;
  path: string;
  status: number;
  grpcStatus: string;
  latencyMs: number;
  upstreamMs: number;
  proxyError: string;
  traceId: string;
}

/** One record from a sidecar's /tap stream as `weft tap` prints it. */
export function tapLine(r: Record<string, unknown>): TapLine {
  const s = (k: string) => (typeof r[k] === 'string' ? (r[k] as string) : '');
  const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
  return {
    time: new Date(n('time')).toISOString(),
    direction: s('direction'),
    source: s('source'),
    destination: s('destination'),
    service: s('service'),
    route: s('route'),
    backend: s('backend'),
    endpoint: s('endpoint'),
    method: s('method'),
    authority: s('authority'),
    path: s('path'),
    status: n('status'),
    grpcStatus: s('grpcStatus'),
    latencyMs: n('durationMs'),
    upstreamMs: n('upstreamMs'),
    proxyError: s('proxyError'),
    traceId: s('traceId'),
  };
}

export function formatTapLine(l: TapLine): string {
  const status = l.grpcStatus !== '' ? `grpc-status=${l.grpcStatus}` : `status=${l.status}`;
  const dst = l.destination || l.endpoint || l.service || '-';
  const err = l.proxyError ? ` weft-proxy-error="${l.proxyError}"` : '';
  return `${l.time} ${l.direction === 'inbound' ? 'in ' : 'out'} ${l.source || '(no identity)'} -> ${dst} ${l.method} ${l.authority}${l.path} ${status} ${l.latencyMs.toFixed(1)}ms${err}`;
}

/** What to tap: `service/NAME` or `workload/NAME` (also svc/, wl/, deploy/). */
export function parseTapTarget(arg: string, namespace: string): { kind: 'service' | 'workload'; namespace: string; name: string } {
  const m = /^(service|svc|services|workload|wl|workloads|deploy|deployment)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(arg);
  if (!m) throw new UsageError(`"${arg}" is not service/NAME or workload/NAME`);
  const kind = m[1]!.startsWith('s') ? 'service' : 'workload';
  return { kind, namespace, name: m[2]! };
}

interface Registered {
  workload?: { podIP?: string; meshed?: boolean; namespace?: string; workload?: string };
  state?: string;
}

async function sidecarsOf(controlAdmin: string, target: { kind: string; namespace: string; name: string }): Promise<string[]> {
  const base = /^https?:\/\//.test(controlAdmin) ? controlAdmin : `http://${controlAdmin}`;
  let body: { registered?: Registered[] };
  try {
    const res = await fetch(`${base}/resources`, { signal: AbortSignal.timeout(3000) });
    if (res.status !== 200) throw new Error(`answered ${res.status}`);
    body = (await res.json()) as typeof body;
  } catch (e) {
    throw new Error(`cannot reach control's admin endpoint at ${base}: ${(e as Error).message} (is \`weft up\` running? else use --admin)`);
  }
  const ips = new Set<string>();
  for (const r of body.registered ?? []) {
    const w = r.workload;
    if (!w?.podIP || w.meshed === false || r.state === 'provisional') continue;
    if (target.kind === 'workload' && (w.namespace !== target.namespace || w.workload !== target.name)) continue;
    ips.add(w.podIP);
  }
  return [...ips].sort().map((ip) => `http://${ip.includes(':') ? `[${ip}]` : ip}:${PORTS.admin}`);
}

export async function run(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    help: { type: 'boolean', short: 'h' },
    namespace: { type: 'string', short: 'n' },
    'control-admin': { type: 'string' },
    admin: { type: 'string', multiple: true },
    max: { type: 'string' },
    path: { type: 'string' },
    method: { type: 'string' },
    output: { type: 'string', short: 'o' },
  });
  if (bool(p, 'help')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (p.positionals.length !== 1) throw new UsageError('expects one service/NAME or workload/NAME (see weft tap --help)');
  const target = parseTapTarget(p.positionals[0]!, str(p, 'namespace') ?? 'default');
  const max = int(p, 'max', { min: 1 }) ?? Infinity;
  const output = str(p, 'output') ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output: "${output}" is not text or json`);
  const admins = list(p, 'admin').map((a) => (/^https?:\/\//.test(a) ? a : `http://${a}`).replace(/\/$/, ''));
  const controlAdmin = str(p, 'control-admin') ?? `127.0.0.1:${PORTS.controlAdmin}`;

  const q = new URLSearchParams();
  const key = `${target.namespace}/${target.name}`;
  if (target.kind === 'service') {
    q.set('service', key);
    q.set('direction', 'outbound');
  } else {
    q.set('destination', key);
    q.set('direction', 'inbound');
  }
  const path = str(p, 'path');
  if (path) q.set('path', path);
  const method = str(p, 'method');
  if (method) q.set('method', method);
  if (Number.isFinite(max)) q.set('max', String(max));

  const find = async () => (admins.length ? admins : await sidecarsOf(controlAdmin, target));
  let printed = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const streams = new Map<string, http.ClientRequest>();
  let announced = false;
  const connected = new Set<string>();

  const open = (admin: string) => {
    if (streams.has(admin)) return;
    const req = http.get(`${admin}/tap?${q}`, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => process.stderr.write(`weft tap: ${admin}: ${res.statusCode} ${text.trim()}\n`));
        return;
      }
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          let r: Record<string, unknown>;
          try {
            r = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (r.kind === 'tap') {
            connected.add(admin);
            continue;
          }
          if (r.kind === 'dropped') {
            process.stderr.write(`weft tap: ${admin}: ${Number(r.sampled ?? 0) + Number(r.dropped ?? 0)} requests skipped (over the tap's rate or unread)\n`);
            continue;
          }
          if (r.kind !== 'request' || printed >= max) continue;
          const l = tapLine(r);
          process.stdout.write(output === 'json' ? `${JSON.stringify(l)}\n` : `${formatTapLine(l)}\n`);
          if (++printed >= max) finish();
        }
        if (!announced && connected.size > 0 && connected.size >= streams.size) {
          announced = true;
          process.stderr.write(`weft tap: tapping ${target.kind}/${key} through ${connected.size} sidecars (Ctrl-C stops)\n`);
        }
      });
      res.on('close', () => streams.delete(admin));
    });
    req.on('error', () => streams.delete(admin));
    streams.set(admin, req);
  };

  let ts: string[];
  try {
    ts = await find();
  } catch (e) {
    process.stderr.write(`weft tap: ${(e as Error).message}\n`);
    return 1;
  }
  if (ts.length === 0) {
    process.stderr.write(`weft tap: no sidecar ${target.kind === 'workload' ? `of workload ${key} ` : ''}is registered with control at ${controlAdmin}\n`);
    return 1;
  }
  for (const a of ts) open(a);
  // Pods come and go: look again every few seconds (the sidecars of new pods join the tap).
  const rescan = admins.length
    ? undefined
    : setInterval(() => {
        void find().then((list) => list.forEach(open), () => undefined);
      }, 3000);
  void waitForSignal().then(finish);
  await finished;
  if (rescan) clearInterval(rescan);
  for (const r of streams.values()) r.destroy();
  return 0;
}

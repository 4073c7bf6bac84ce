// The control plane at scale:
//  1. 1,000 simulated sidecars in this one process, each on its own gRPC
//     connection (grpc-js local subchannel pool) with its own Discovery
//     stream to a real `weft control` process, all subscribed to one Service;
//     then a route edit (the YAML file rewritten) and the time until every
//     stream has received the new version and ACKed it. The simulator
//     certifies once through weft.v1.Identity and presents that one leaf on
//     every connection (control checks identity per stream, not per cert).
//     SCALE_CONTROL_REPLICAS=R runs R `weft control` replicas sharing STATE
//     and the config directory (local-mode HA, --replica-id), the streams
//     spread round robin over them; control memory is reported per 1,000
//     streams (RSS with the streams minus RSS before them, summed).
//  2. compile() of a generated snapshot of 5,000 Services and 10,000
//     HTTPRoutes: time and retained heap (in a child with --expose-gc).
//  3. The sidecar's route matcher built from 10,000 rules on one Service port
//     (compiled by control, so precedence order is real): ns per match.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import {
  STATE_FILES,
  weftV1,
  type AnyResource,
  type CertifyResponseMsg,
  type ControlMessage,
  type MatchEntry,
  type SidecarMessage,
} from '../api/index.js';
import { generateKeyAndCsr, spiffeId } from '../certs/index.js';
import { compile, validateResource, Store, type RegisteredWorkload } from '../control/index.js';
import { start, stop, waitListening, httpGet, sleep, tail, type Proc } from './procs.js';
import { cpuMs, rssMb } from './procstat.js';
import { CLI } from './weft-chain.js';
import { envNum, fmt, median, quantile } from './stats.js';

export interface ControlScaleResult {
  sidecars: number;
  ack?: { p50Ms: number; p99Ms: number; maxMs: number; perEditMaxMs: number[]; controlReportedMs: number[] };
  replicas?: number;
  /** Control RSS added per 1,000 streams (MB), over all replicas. */
  rssMbPer1000Streams?: number;
  lines: string[];
}

const ADDR = { host: '127.0.95.1', grpc: 7443, admin: 7091 };
const NS = 'scale';
const SERVER_NAME = 'weft-control.weft-system.svc';

function routeYaml(prefix: string): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
---
apiVersion: v1
kind: Service
metadata:
  name: app
  namespace: ${NS}
spec:
  selector:
    app: app
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: app
  namespace: ${NS}
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: app
    port: 80
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}
    backendRefs:
    - name: app
      port: 80
`;
}

interface SimStream {
  call: grpc.ClientDuplexStream<SidecarMessage, ControlMessage>;
  client: grpc.Client;
  version: string | undefined;
  /** performance.now() when the version awaited was received and ACKed. */
  ackedAt: number | undefined;
  errors: number;
}

async function certifyOnce(stateDir: string, target: string): Promise<{ keyPem: string; chainPem: string; bundle: string }> {
  const token = readFileSync(join(stateDir, STATE_FILES.bootstrapToken), 'utf8').trim();
  const bundle = readFileSync(join(stateDir, STATE_FILES.trustBundle), 'utf8');
  const { keyPem, csrPem } = generateKeyAndCsr(spiffeId(NS, 'sim'));
  const { Identity } = weftV1();
  const c = new Identity(target, grpc.credentials.createSsl(Buffer.from(bundle)), { 'grpc.ssl_target_name_override': SERVER_NAME });
  const res = await new Promise<CertifyResponseMsg>((resolve, reject) => {
    (c as unknown as { Certify(req: object, cb: (e: Error | null, r: CertifyResponseMsg) => void): void }).Certify(
      { csr: csrPem, token, namespace: NS, service_account: 'sim' },
      (e, r) => (e ? reject(e) : resolve(r)),
    );
  });
  c.close();
  return { keyPem, chainPem: [res.leaf, ...res.chain].join('\n'), bundle: res.trust_bundle || bundle };
}

async function ackScale(
  dir: string,
  log: (s: string) => void,
  n: number,
  edits: number,
  replicas = 1,
): Promise<{ ack: NonNullable<ControlScaleResult['ack']>; rssMbPer1000Streams: number; lines: string[] }> {
  const configDir = join(dir, 'config');
  const stateDir = join(dir, 'state');
  mkdirSync(configDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const file = join(configDir, 'app.yaml');
  writeFileSync(file, routeYaml('/'));
  // Replica r listens on 127.0.95.(r+1); the first creates STATE, the others share it.
  const hostOf = (r: number): string => (r === 0 ? ADDR.host : `127.0.95.${r + 1}`);
  const startReplica = (r: number): Proc =>
    start(
      replicas > 1 ? `weft-control-scale-${r}` : 'weft-control-scale',
      process.execPath,
      [
        // SCALE_CONTROL_PROF=DIR writes a --cpu-prof of control over the whole run.
        ...(process.env.SCALE_CONTROL_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SCALE_CONTROL_PROF}`] : []),
        CLI, 'control', '--config-dir', configDir, '--state-dir', stateDir, '--listen', `${hostOf(r)}:${ADDR.grpc}`, '--admin', `${hostOf(r)}:${ADDR.admin}`,
        ...(replicas > 1 ? ['--replica-id', `r${r}`] : []),
      ],
      join(dir, replicas > 1 ? `control-${r}.log` : 'control.log'),
    );
  const controls: Proc[] = [startReplica(0)];
  const control = controls[0]!;
  const streams: SimStream[] = [];
  let closing = false;
  try {
    await waitListening(control, ADDR.host, ADDR.grpc, 20_000);
    for (let r = 1; r < replicas; r++) controls.push(startReplica(r));
    for (let r = 1; r < replicas; r++) await waitListening(controls[r]!, hostOf(r), ADDR.grpc, 20_000);
    const targets = controls.map((_, r) => `${hostOf(r)}:${ADDR.grpc}`);
    const target = targets[0]!;
    const rssBase = controls.reduce((sum, c) => sum + rssMb(c.pid), 0);
    const id = await certifyOnce(stateDir, target);
    const creds = grpc.credentials.createSsl(Buffer.from(id.bundle), Buffer.from(id.keyPem), Buffer.from(id.chainPem));
    const { Discovery } = weftV1();
    const service = `${NS}/app`;
    let waiting = new Set<SimStream>();
    let t0 = 0;
    let doneResolve: (() => void) | undefined;

    let reconnects = 0;
    let lastError = '';
    // A stream that fails is reopened after a short pause, as a real sidecar
    // does; it then receives the current version like any new subscriber.
    const attach = (s: SimStream, i: number): void => {
      const call = (s.client as unknown as { Stream(): grpc.ClientDuplexStream<SidecarMessage, ControlMessage> }).Stream();
      s.call = call;
      let gone = false;
      const reopen = (why: string): void => {
        if (gone) return;
        gone = true;
        if (closing) return;
        s.errors++;
        reconnects++;
        lastError = why;
        setTimeout(() => !closing && attach(s, i), 200);
      };
      call.on('data', (m: ControlMessage) => {
        if (m.kind === 'directory' || ('directory' in m && m.directory)) {
          const d = (m as { directory: { version: string } }).directory;
          call.write({ ack: { resource: 'directory', version: d.version, error: '' } });
          return;
        }
        const u = (m as { update?: { service: string; version: string } }).update;
        if (!u) return;
        call.write({ ack: { resource: `service:${u.service}`, version: u.version, error: '' } });
        if (u.service === service && u.version !== s.version) {
          s.version = u.version;
          if (waiting.delete(s)) {
            s.ackedAt = performance.now();
            if (waiting.size === 0) doneResolve?.();
          }
        }
      });
      call.on('error', (e: grpc.ServiceError) => reopen(`${grpc.status[e.code] ?? e.code}: ${e.details}`));
      call.on('end', () => reopen('stream ended by control'));
      call.write({
        hello: {
          namespace: NS,
          workload: `sim${i}`,
          service_account: 'sim',
          pod_ip: `127.96.${Math.floor(i / 250)}.${(i % 250) + 1}`,
          pod_name: `sim${i}`,
          labels: { app: 'sim' },
          app_ports: [],
          sidecar_version: 'bench',
          subscribe: [service],
          strict: false,
        },
      });
    };
    const open = (i: number): SimStream => {
      const client = new Discovery(targets[i % targets.length]!, creds, {
        'grpc.ssl_target_name_override': SERVER_NAME,
        'grpc.use_local_subchannel_pool': 1,
      });
      const s = { client, version: undefined, ackedAt: undefined, errors: 0 } as unknown as SimStream;
      attach(s, i);
      return s;
    };

    const waitAll = (timeoutMs: number): Promise<boolean> =>
      new Promise((resolve) => {
        if (waiting.size === 0) return resolve(true);
        const t = setTimeout(() => {
          doneResolve = undefined;
          resolve(false);
        }, timeoutMs);
        doneResolve = () => {
          clearTimeout(t);
          doneResolve = undefined;
          resolve(true);
        };
      });

    // Connect: every stream must get the Service's first version.
    const cpu0 = controls.reduce((sum, c) => sum + cpuMs(c.pid), 0);
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const s = open(i);
      streams.push(s);
      waiting.add(s);
      if (i % 50 === 49) await sleep(1); // let handshakes progress; no thundering herd of 1,000 at once
    }
    const connected = await waitAll(90_000);
    const connectMs = performance.now() - t0;
    if (!connected) throw new Error(`only ${n - waiting.size} of ${n} streams received ${service} within 90 s (${reconnects} reconnects, last error: ${lastError || 'none'}):\n${tail(control)}`);
    const connectReconnects = reconnects;
    const controlCpuConnect = controls.reduce((sum, c) => sum + cpuMs(c.pid), 0) - cpu0;
    await sleep(1500); // registrations settle (each connect re-registers a workload)
    const rssConnected = controls.reduce((sum, c) => sum + rssMb(c.pid), 0);
    const rssMbPer1000Streams = ((rssConnected - rssBase) * 1000) / n;
    log(`  ${n} streams up and ACKed in ${fmt(connectMs)} ms; control RSS ${fmt(rssConnected, 1)} MB over ${replicas} replica(s) (${fmt(rssMbPer1000Streams, 1)} MB per 1,000 streams)`);

    const lat: number[] = [];
    const perEdit: number[] = [];
    const reported: number[] = [];
    for (let e = 0; e < edits; e++) {
      waiting = new Set(streams);
      for (const s of streams) s.ackedAt = undefined;
      const c0 = controls.reduce((sum, c) => sum + cpuMs(c.pid), 0);
      t0 = performance.now();
      writeFileSync(file, routeYaml(`/edit${e}`));
      const ok = await waitAll(30_000);
      if (!ok) throw new Error(`edit ${e}: ${waiting.size} of ${n} streams never received the new version (${reconnects} reconnects, last error: ${lastError || 'none'}):\n${tail(control)}`);
      const times = streams.map((s) => s.ackedAt! - t0);
      lat.push(...times);
      perEdit.push(Math.max(...times));
      // control's own figure: change → last ACK received (PushReport)
      await sleep(300);
      try {
        const r = await httpGet(ADDR.host, ADDR.admin, '/resources');
        const lp = (JSON.parse(r.body) as { lastPush?: { durationMs?: number } | null }).lastPush;
        if (lp?.durationMs !== undefined) reported.push(lp.durationMs);
      } catch {
        /* admin optional */
      }
      log(`  edit ${e + 1}: all ${n} ACKed after ${fmt(Math.max(...times))} ms (control CPU ${fmt(controls.reduce((sum, c) => sum + cpuMs(c.pid), 0) - c0)} ms)`);
      await sleep(300);
    }
    lat.sort((a, b) => a - b);
    const ack = { p50Ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99), maxMs: lat[lat.length - 1]!, perEditMaxMs: perEdit, controlReportedMs: reported };
    const lines = [
      `- ${n} simulated sidecars, one TLS connection and one Discovery stream each, in one process${replicas > 1 ? `, spread round robin over ${replicas} control replicas sharing STATE (local-mode HA)` : ''}; certified once through Identity/Certify and the same leaf reused on every connection. All subscribe to \`${service}\`.`,
      `- control memory: ${fmt(rssConnected, 1)} MB RSS with ${n} streams over ${replicas} replica(s), ${fmt(rssBase, 1)} MB before them: ${fmt(rssMbPer1000Streams, 1)} MB per 1,000 streams`,
      `- connect: all ${n} streams up with the Service's first version ACKed in ${fmt(connectMs)} ms (control CPU ${fmt(controlCpuConnect)} ms; ${connectReconnects} streams failed and were reopened${connectReconnects ? `, last error: ${lastError}` : ''}); control RSS with ${n} streams ${fmt(rssConnected, 1)} MB; reopened during the edits: ${reconnects - connectReconnects}`,
      `- route edit (HTTPRoute file rewritten) → new version received and ACKed, per stream, over ${edits} edits: p50 ${fmt(ack.p50Ms)} ms, p99 ${fmt(ack.p99Ms)} ms, max ${fmt(ack.maxMs)} ms; last stream per edit ${perEdit.map((x) => fmt(x)).join(', ')} ms${reported.length ? `; control's own change→last-ACK ${reported.map((x) => fmt(x)).join(', ')} ms` : ''}. Includes control's file-watch debounce; measured at the simulator from the write.`,
    ];
    return { ack, rssMbPer1000Streams, lines };
  } finally {
    closing = true;
    for (const s of streams) {
      s.call.cancel();
      s.client.close();
    }
    for (const c of controls) await stop(c);
  }
}

// ---------------------------------------------------------------------------
// compile() and the matcher, in a child with --expose-gc

interface CompileFigures {
  services: number;
  routes: number;
  validateMs: number;
  compileMs: number;
  viewsMs: number;
  viewBytes: number;
  heapBeforeMb: number;
  heapAfterCompileMb: number;
  heapAfterViewsMb: number;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}
const heapMb = (): number => process.memoryUsage().heapUsed / 2 ** 20;

function validated(raw: object[]): AnyResource[] {
  const out: AnyResource[] = [];
  for (const o of raw) {
    const v = validateResource(o, 'bench');
    if (!v.resource || v.errors.length) throw new Error(`generated resource rejected: ${JSON.stringify(v.errors.slice(0, 2))}`);
    out.push(v.resource);
  }
  return out;
}

function genMesh(nServices: number, nRoutes: number): { raw: object[]; registered: RegisteredWorkload[] } {
  const nsCount = Math.max(1, Math.round(nServices / 100));
  const raw: object[] = [];
  const registered: RegisteredWorkload[] = [];
  for (let n = 0; n < nsCount; n++) raw.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `ns${n}` } });
  const svc = (i: number): { ns: string; name: string } => ({ ns: `ns${i % nsCount}`, name: `svc${i}` });
  for (let i = 0; i < nServices; i++) {
    const { ns, name } = svc(i);
    raw.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ns },
      spec: { clusterIP: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, selector: { app: name }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    });
    for (let r = 0; r < 2; r++) {
      registered.push({
        namespace: ns,
        workload: name,
        serviceAccount: name,
        podName: `${name}-${r}`,
        podIP: `10.200.${(2 * i + r) >> 8 & 255}.${(2 * i + r) & 255}`,
        labels: { app: name },
        appPorts: [8080],
        meshed: true,
      });
    }
  }
  for (let k = 0; k < nRoutes; k++) {
    const i = k % nServices;
    const { ns, name } = svc(i);
    const other = svc((i + 1) % nServices);
    raw.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `r${k}`, namespace: ns, creationTimestamp: new Date(1e12 + k * 1000).toISOString() },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name, port: 80 }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: `/r${k}/api` }, headers: [{ name: 'x-tenant', value: `t${k % 7}` }] }],
            backendRefs: [
              { name, port: 80, weight: 90 },
              ...(other.ns === ns ? [{ name: other.name, port: 80, weight: 10 }] : []),
            ],
            filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-route', value: `r${k}` }] } }],
          },
          { matches: [{ path: { type: 'Exact', value: `/r${k}/health` } }], backendRefs: [{ name, port: 80 }] },
        ],
      },
    });
  }
  return { raw, registered };
}

function compileFigures(nServices: number, nRoutes: number): CompileFigures {
  const { raw, registered } = genMesh(nServices, nRoutes);
  gc();
  const heapBefore = heapMb();
  let t = performance.now();
  const resources = validated(raw);
  const store = new Store({ sessionKey: Buffer.alloc(32, 7).toString('base64') });
  store.replaceSource('bench', resources, []);
  store.setRegistered(registered);
  const snap = store.snapshot();
  const validateMs = performance.now() - t;
  gc();
  const heapSnap = heapMb();
  t = performance.now();
  const result = compile(snap);
  const compileMs = performance.now() - t;
  gc();
  const heapAfterCompile = heapMb();
  t = performance.now();
  let viewBytes = 0;
  const views: string[] = [];
  for (const d of result.directory) {
    const v = result.view(`${d.namespace}/${d.name}`, d.namespace);
    if (v) {
      const s = JSON.stringify(v);
      viewBytes += s.length;
      views.push(s);
    }
  }
  const viewsMs = performance.now() - t;
  gc();
  const heapAfterViews = heapMb();
  if (result.errors.length) process.stderr.write(`compile reported ${result.errors.length} errors, first: ${JSON.stringify(result.errors[0])}\n`);
  if (views.length !== result.directory.length || snap.services.length === 0) process.stderr.write('some views missing\n');
  return {
    services: nServices,
    routes: nRoutes,
    validateMs,
    compileMs,
    viewsMs,
    viewBytes,
    heapBeforeMb: heapSnap,
    heapAfterCompileMb: heapAfterCompile,
    heapAfterViewsMb: heapAfterViews,
  };
}

interface MatcherLike {
  readonly size: number;
  match(req: { method: string; path: string; query: string; headers: { get(name: string): string | undefined } }): { rule: number } | undefined;
}

interface MatchFigures {
  rules: number;
  entries: number;
  buildMs: number;
  compileMs: number;
  cases: Array<{ name: string; ns: number; hit: boolean }>;
  error?: string;
}

/** 10,000 rules on one Service port: 625 routes × 16 rules (the CRD's maximum per route). */
async function matchFigures(nRules: number): Promise<MatchFigures> {
  const perRoute = 16;
  const nRoutes = Math.ceil(nRules / perRoute);
  const raw: object[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'm' } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'big', namespace: 'm' }, spec: { clusterIP: '10.9.9.9', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
  ];
  let made = 0;
  for (let r = 0; r < nRoutes; r++) {
    const rules: object[] = [];
    for (let k = 0; k < perRoute && made < nRules; k++, made++) {
      const j = made;
      // A mix like a large API surface: mostly prefixes, some exact paths, some header-qualified.
      const m =
        j % 10 < 6
          ? { path: { type: 'PathPrefix', value: `/api/v${j % 3}/res${j}` } }
          : j % 10 < 9
            ? { path: { type: 'Exact', value: `/api/v${j % 3}/res${j}/status` } }
            : { path: { type: 'PathPrefix', value: `/tenant/res${j}` }, headers: [{ name: 'x-tenant', value: `t${j}` }], method: 'GET' };
      rules.push({ matches: [m], backendRefs: [{ name: 'big', port: 80 }] });
    }
    raw.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `big${r}`, namespace: 'm', creationTimestamp: new Date(1e12 + r * 1000).toISOString() },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'big', port: 80 }], rules },
    });
  }
  const store = new Store({ sessionKey: Buffer.alloc(32, 7).toString('base64') });
  store.replaceSource('bench', validated(raw), []);
  let t = performance.now();
  const res = compile(store.snapshot());
  const view = res.view('m/big', 'm');
  const compileMs = performance.now() - t;
  const entries: MatchEntry[] = view?.ports[0]?.matches ?? [];
  const out: MatchFigures = { rules: made, entries: entries.length, buildMs: NaN, compileMs, cases: [] };
  // The sidecar's public face; bench never reaches into sidecar internals.
  let build: ((e: MatchEntry[]) => MatcherLike) | undefined;
  // The matcher reads headers through the sidecar's HeaderView (by lower-case name), as the adapters hand them over.
  let headerView: ((raw: Record<string, string>) => { get(name: string): string | undefined }) | undefined;
  try {
    const mod = (await import(new URL('../sidecar/index.js', import.meta.url).href)) as {
      buildRouteMatcher?: (e: MatchEntry[]) => MatcherLike;
      headerView?: (raw: Record<string, string>) => { get(name: string): string | undefined };
    };
    build = mod.buildRouteMatcher;
    headerView = mod.headerView;
  } catch (e) {
    out.error = `sidecar/index.js not loadable: ${(e as Error).message.split('\n')[0]}`;
    return out;
  }
  if (!build || !headerView) {
    out.error = `sidecar/index.ts does not export ${build ? 'headerView' : 'buildRouteMatcher'}`;
    return out;
  }
  const headersOf = headerView;
  t = performance.now();
  const matcher = build(entries);
  out.buildMs = performance.now() - t;
  const req = (path: string, headers: Record<string, string> = {}) => ({ method: 'GET', path, query: '', headers: headersOf({ host: 'big.m.svc.cluster.local', 'user-agent': 'bench', ...headers }) });
  const pick = (f: (j: number) => boolean): number[] => {
    const xs: number[] = [];
    for (let j = 0; j < made && xs.length < 64; j += 37) if (f(j)) xs.push(j);
    return xs;
  };
  const cases: Array<{ name: string; reqs: ReturnType<typeof req>[]; expect?: false }> = [
    { name: 'PathPrefix hit (/api/vN/resJ/items/42)', reqs: pick((j) => j % 10 < 6).map((j) => req(`/api/v${j % 3}/res${j}/items/42`)) },
    { name: 'Exact hit (/api/vN/resJ/status)', reqs: pick((j) => j % 10 >= 6 && j % 10 < 9).map((j) => req(`/api/v${j % 3}/res${j}/status`)) },
    { name: 'PathPrefix + header + method hit', reqs: pick((j) => j % 10 === 9).map((j) => req(`/tenant/res${j}/x`, { 'x-tenant': `t${j}` })) },
    { name: 'miss (no rule matches)', reqs: pick(() => true).map((j) => req(`/nothing/here/${j}`)), expect: false },
  ];
  for (const c of cases) {
    const hit = c.reqs.every((r) => (matcher.match(r) !== undefined) === (c.expect ?? true));
    const N = 300_000;
    let sink = 0;
    for (let i = 0; i < 20_000; i++) sink += matcher.match(c.reqs[i % c.reqs.length]!)?.rule ?? 0; // warm up the JIT
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += matcher.match(c.reqs[i % c.reqs.length]!)?.rule ?? 0;
    const ns = Number(process.hrtime.bigint() - t0) / N;
    out.cases.push({ name: c.name, ns, hit: hit && sink >= 0 });
  }
  return out;
}

function runChild(): Promise<{ compile: CompileFigures; match: MatchFigures }> {
  return new Promise((resolve, reject) => {
    const args = ['--expose-gc', '--max-old-space-size=4096', join(process.cwd(), 'dist', 'bench', 'control-scale.js'), 'compile'];
    const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`compile child exited ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`));
      try {
        resolve(JSON.parse(out) as { compile: CompileFigures; match: MatchFigures });
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

export async function runControlScale(dir: string, log: (s: string) => void): Promise<ControlScaleResult> {
  mkdirSync(dir, { recursive: true });
  const n = envNum('SCALE_SIDECARS', 1000);
  const edits = envNum('SCALE_EDITS', 5);
  const replicas = Math.max(1, envNum('SCALE_CONTROL_REPLICAS', 1));
  const lines: string[] = [];
  log(`bench: control plane — compile ${envNum('SCALE_SERVICES', 5000)} Services / ${envNum('SCALE_ROUTES', 10000)} HTTPRoutes, matcher with ${envNum('SCALE_RULES', 10000)} rules`);
  try {
    const f = await runChild();
    const c = f.compile;
    lines.push(
      `- compile(): ${fmt(c.services)} Services (2 registered endpoints each), ${fmt(c.routes)} HTTPRoutes (2 rules each): validate + store ${fmt(c.validateMs)} ms, compile ${fmt(c.compileMs)} ms, all ${fmt(c.services)} views ${fmt(c.viewsMs)} ms (${fmt(c.viewBytes / 2 ** 20, 1)} MB of JSON); heap after GC: snapshot ${fmt(c.heapBeforeMb, 0)} MB → with compile result ${fmt(c.heapAfterCompileMb, 0)} MB → with every view serialized ${fmt(c.heapAfterViewsMb, 0)} MB`,
    );
    const m = f.match;
    if (m.error) lines.push(`- matcher: ${m.rules} rules compiled by control into ${m.entries} match entries on one port (${fmt(m.compileMs)} ms); matching not measured: ${m.error}`);
    else
      lines.push(
        `- matcher: ${fmt(m.rules)} rules on one Service port (control compiled them to ${fmt(m.entries)} match entries in ${fmt(m.compileMs)} ms; the sidecar built its matcher in ${fmt(m.buildMs, 1)} ms): ` +
          m.cases.map((x) => `${x.name} ${fmt(x.ns, 0)} ns${x.hit ? '' : ' (WRONG: not every request matched as expected)'}`).join('; '),
      );
    log('  ' + lines.join('\n  '));
  } catch (e) {
    lines.push(`- compile / matcher: failed: ${(e as Error).message}`);
    log(`bench: ${(e as Error).message}`);
  }
  log(`bench: control plane — ${n} simulated sidecars over ${replicas} control replica(s), ${edits} route edits`);
  try {
    const a = await ackScale(join(dir, 'acks'), log, n, edits, replicas);
    return { sidecars: n, ack: a.ack, replicas, rssMbPer1000Streams: a.rssMbPer1000Streams, lines: [...a.lines, ...lines] };
  } catch (e) {
    lines.unshift(`- ${n} sidecars / route edit: not available: ${(e as Error).message.split('\n')[0]}`);
    return { sidecars: n, lines };
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === 'compile') {
  (async () => {
    const c = compileFigures(envNum('SCALE_SERVICES', 5000), envNum('SCALE_ROUTES', 10000));
    const m = await matchFigures(envNum('SCALE_RULES', 10000));
    process.stdout.write(JSON.stringify({ compile: c, match: m }) + '\n');
    process.exit(0);
  })().catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
void median;

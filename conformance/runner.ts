// Runs the mesh conformance scenarios against a real local mesh: `weft up`
// with the upstream base manifests (echo-v1, echo-v2 in the producer
// namespace, echo-v1 in the consumer namespace), then, scenario by scenario,
// writes its routes into the running mesh's config dir, checks every case
// until it passes three times in a row (upstream's AwaitConvergence), and
// removes the routes again. Used by e2e/conformance.test.ts and by
// `weft conformance`.
import { mkdtempSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMesh, writeConfig, httpRequest, sleep, ECHO_APP, type Mesh, type PodInfo, type HttpResult, type EchoResponse } from './harness.js';
import { SCENARIOS, MESH_NS, CONSUMER_NS, baseManifests, type Case, type Expect, type Scenario } from './scenarios.js';
import type { ScenarioOutcome } from './report.js';
import { echoClient, GRPC_ECHO_APP, unary, type EchoClient } from './grpc-echo.js';

export interface CaseOutcome {
  name: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

export interface RunOutcome extends ScenarioOutcome {
  description: string;
  cases: CaseOutcome[];
  durationMs: number;
}

export interface RunOptions {
  /** Scenario names to run (default: all). */
  only?: string[];
  /** Per case: how long it may take to pass three times in a row. */
  convergenceMs?: number;
  log?: (line: string) => void;
}

/** Checks one response against upstream's compareRequest and redirect rules; '' when it passes. */
export function checkResponse(c: Case, r: HttpResult): string {
  const e: Expect = c.expect;
  const want = e.status ?? 200;
  if (r.status !== want) return `status ${r.status}, want ${want}`;
  const header = (name: string) => {
    const v = r.headers[name.toLowerCase()];
    return Array.isArray(v) ? v.join(',') : v;
  };
  for (const [k, v] of Object.entries(e.headers ?? {})) {
    if (header(k) !== v) return `response header ${k}=${String(header(k))}, want ${v}`;
  }
  for (const k of e.absentHeaders ?? []) {
    if (header(k) !== undefined) return `response header ${k} present (${String(header(k))}), want absent`;
  }
  if (e.redirect) {
    const loc = header('location');
    if (!loc) return 'no Location header on the redirect';
    let u: URL;
    try {
      u = new URL(loc);
    } catch {
      return `Location is not an absolute URL: ${loc}`;
    }
    const req = new URL(`http://${c.host}${c.path || '/'}`);
    const scheme = u.protocol.slice(0, -1);
    const want = { scheme: e.redirect.scheme ?? 'http', host: e.redirect.host ?? u.hostname, path: e.redirect.path ?? req.pathname };
    if (scheme !== want.scheme) return `redirect scheme ${scheme}, want ${want.scheme}`;
    if (u.hostname !== want.host) return `redirect host ${u.hostname}, want ${want.host}`;
    if (u.pathname !== want.path) return `redirect path ${u.pathname}, want ${want.path}`;
    // URL drops a scheme's default port, which is what upstream accepts when no port is expected.
    if ((e.redirect.port ?? '') !== u.port) return `redirect port "${u.port}", want "${e.redirect.port ?? ''}"`;
  }
  const needsBody = e.backend || e.requestHeaders || e.absentRequestHeaders || e.requestPath;
  if (!needsBody) return '';
  let echo: EchoResponse;
  try {
    echo = r.json();
  } catch {
    return `response is not the echo app's JSON: ${r.body.slice(0, 120)}`;
  }
  if (e.backend && !echo.pod.startsWith(e.backend)) return `answered by ${echo.pod}, want ${e.backend}*`;
  const got = (name: string) => echo.headers[name.toLowerCase()]?.join(',');
  for (const [k, v] of Object.entries(e.requestHeaders ?? {})) {
    if (got(k) !== v) return `backend saw ${k}=${String(got(k))}, want ${v}`;
  }
  for (const k of e.absentRequestHeaders ?? []) {
    if (got(k) !== undefined) return `backend saw ${k}=${String(got(k))}, want absent`;
  }
  if (e.requestPath !== undefined) {
    const path = new URL(echo.path, 'http://x').pathname;
    if (path !== e.requestPath) return `backend saw path ${path}, want ${e.requestPath}`;
  }
  return '';
}

function clientOf(mesh: Mesh, c: Case): PodInfo {
  const ns = c.from === 'consumer' ? CONSUMER_NS : MESH_NS;
  const p = mesh.pods.find((x) => x.namespace === ns && x.workload === 'echo-v1');
  if (!p) throw new Error(`no echo-v1 pod in ${ns}`);
  return p;
}

function urlOf(mesh: Mesh, c: Case): string {
  const host = c.host.replace(/\{pod:([a-z0-9-]+)\}/, (_, w: string) => {
    const p = mesh.pods.find((x) => x.namespace === MESH_NS && x.workload === w);
    if (!p) throw new Error(`no pod of ${w}`);
    return p.podIP;
  });
  return `http://${host}${c.path || '/'}`;
}

const grpcClients = new Map<string, EchoClient>();

/** A gRPC case: unary Echo from the client pod's app to its sidecar (h2c), answered as the echo app's JSON would be. */
async function sendGrpc(mesh: Mesh, c: Case): Promise<HttpResult> {
  const client = clientOf(mesh, c);
  const key = `${client.podIP}|${c.host}`;
  let g = grpcClients.get(key);
  if (!g) grpcClients.set(key, (g = echoClient(`${client.podIP}:7001`, c.host)));
  const r = await unary(g, 'Echo', { text: c.name }, { deadlineMs: 5000, metadata: c.headers });
  const echo = { pod: r.pod ?? '', headers: Object.fromEntries(Object.entries(r.metadata ?? {}).map(([k, v]) => [k, [v]])) };
  const body = JSON.stringify(echo);
  return { status: 200, headers: {}, body, json: <T>() => echo as T };
}

function send(mesh: Mesh, c: Case): Promise<HttpResult> {
  if (c.protocol === 'grpc') return sendGrpc(mesh, c);
  const client = clientOf(mesh, c);
  return httpRequest(urlOf(mesh, c), { proxy: `${client.podIP}:7001`, method: c.method, headers: c.headers, timeoutMs: 5000 });
}

/** Passes when the case holds three times in a row within convergenceMs. */
async function converge(mesh: Mesh, c: Case, convergenceMs: number): Promise<CaseOutcome> {
  const deadline = Date.now() + convergenceMs;
  let streak = 0;
  let attempts = 0;
  let last = '';
  while (Date.now() < deadline) {
    attempts++;
    try {
      last = checkResponse(c, await send(mesh, c));
    } catch (e) {
      last = (e as Error).message;
    }
    if (!last) {
      if (++streak === 3) return { name: c.name, ok: true, attempts };
    } else {
      streak = 0;
      await sleep(200);
    }
  }
  return { name: c.name, ok: false, attempts, error: last || 'did not pass three times in a row in time' };
}

async function distribution(mesh: Mesh, s: Scenario): Promise<CaseOutcome> {
  const w = s.weights!;
  let last = '';
  for (let attempt = 1; attempt <= 10; attempt++) {
    const counts = new Map<string, number>();
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < w.requests) {
        next++;
        try {
          const r = await send(mesh, w.request);
          const err = checkResponse(w.request, r);
          if (err) failures++;
          else {
            const pod = r.json().pod;
            const key = Object.keys(w.expected).find((b) => pod.startsWith(b)) ?? pod;
            counts.set(key, (counts.get(key) ?? 0) + 1);
          }
        } catch {
          failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    const problems: string[] = [];
    if (failures) problems.push(`${failures} requests failed`);
    for (const [b, want] of Object.entries(w.expected)) {
      const got = (counts.get(b) ?? 0) / w.requests;
      if (Math.abs(got - want) > w.tolerance) problems.push(`${b} got ${(got * 100).toFixed(1)}%, want ${want * 100}% ± ${w.tolerance * 100}`);
    }
    if (!problems.length) return { name: `${w.request.name} within ${w.tolerance * 100} points`, ok: true, attempts: attempt };
    last = problems.join('; ');
  }
  return { name: 'distribution', ok: false, attempts: 10, error: last };
}

export async function runConformance(o: RunOptions = {}): Promise<RunOutcome[]> {
  const log = o.log ?? (() => {});
  const teardowns: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
  const dir = mkdtempSync(join(tmpdir(), 'weft-conformance-'));
  const out: RunOutcome[] = [];
  try {
    writeConfig(dir, 'base.yaml', baseManifests(ECHO_APP, GRPC_ECHO_APP));
    const mesh = await startMesh(t, dir);
    log(`mesh up: ${mesh.pods.map((p) => `${p.namespace}/${p.pod}=${p.podIP}`).join(' ')}`);
    const chosen = SCENARIOS.filter((s) => !o.only?.length || o.only.includes(s.name));
    for (const s of chosen) {
      const started = Date.now();
      const base = { name: s.name, description: s.description, features: s.features, provisional: s.provisional };
      if (s.localSkip) {
        out.push({ ...base, result: 'SKIPPED', reason: s.localSkip, cases: [], durationMs: 0 });
        log(`${s.name}: SKIPPED (${s.localSkip})`);
        continue;
      }
      const file = join(dir, 'scenario.yaml');
      if (s.manifests) writeConfig(dir, 'scenario.yaml', s.manifests);
      const cases: CaseOutcome[] = [];
      for (const c of s.cases) cases.push(await converge(mesh, c, o.convergenceMs ?? 20_000));
      if (s.weights) cases.push(await distribution(mesh, s));
      if (existsSync(file)) unlinkSync(file);
      const ok = cases.every((c) => c.ok);
      out.push({ ...base, result: ok ? 'SUCCEEDED' : 'FAILED', cases, durationMs: Date.now() - started });
      log(`${s.name}: ${ok ? 'SUCCEEDED' : 'FAILED'} in ${Date.now() - started} ms`);
      for (const c of cases) if (!c.ok) log(`  ✗ ${c.name}: ${c.error}`);
      // Let the removal reach every sidecar before the next scenario's routes land.
      if (s.manifests) await sleep(300);
    }
  } finally {
    for (const g of grpcClients.values()) g.close();
    grpcClients.clear();
    for (const fn of teardowns.reverse()) {
      try {
        await fn();
      } catch {
        /* best effort */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

// `weft stat` from sidecar admin endpoints: two scrapes a window apart become
// RPS, success rate, latency and each backend's share. The sidecars here are
// small HTTP servers speaking the real Prometheus text format, found through
// a control admin endpoint that answers /resources as control does.
import t from 'tap';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { dimensionsOf, keepSeries, parseWindow, promQueries } from '../cmd-stat.js';

const run = promisify(execFile);
const WEFT = new URL('../../dist/cli/weft.js', import.meta.url).pathname;
const host = `127.${10 + Math.floor(Math.random() * 200)}.${1 + Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;

t.test('windows, filters and the PromQL behind the table', async (t) => {
  t.equal(parseWindow('30s'), 30);
  t.equal(parseWindow('1m'), 60);
  t.equal(parseWindow('1500ms'), 1.5);
  t.throws(() => parseWindow('10'), /not a duration/);
  t.throws(() => parseWindow('500ms'), /shorter than 1s/);
  t.same(dimensionsOf('backends'), { by: ['service', 'backend'], direction: 'outbound', share: true });
  t.same(dimensionsOf('workloads').direction, 'inbound');
  t.ok(keepSeries({ dst_namespace: 'a', dst_service: 'web' }, { namespace: 'a', service: 'web' }));
  t.notOk(keepSeries({ dst_namespace: 'b', dst_service: 'web' }, { namespace: 'a' }));
  const q = promQueries(20, 'outbound', { namespace: 'shop', service: 'we"b' });
  t.match(q.requests, /^sum by \(direction, .*backend.*\) \(increase\(weft_requests_total\{direction="outbound",dst_namespace="shop",dst_service="we\\"b"\}\[20s\]\)\)$/);
  t.match(q.buckets, /, le\) \(increase\(weft_request_duration_seconds_bucket\{/);
});

/** A fake sidecar: its counters grow by `perScrape` requests to each backend at every scrape. */
function fakeSidecar(perScrape: Record<string, number>, failEvery: number): http.Server {
  const counts: Record<string, { ok: number; fail: number }> = {};
  return http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const lines = ['# HELP weft_requests_total x', '# TYPE weft_requests_total counter'];
    const hist: string[] = ['# TYPE weft_request_duration_seconds histogram'];
    for (const [backend, n] of Object.entries(perScrape)) {
      const c = (counts[backend] ??= { ok: 0, fail: 0 });
      const fails = Math.floor(n / failEvery);
      c.ok += n - fails;
      c.fail += fails;
      for (const [code, v] of [['200', c.ok], ['500', c.fail]] as const) {
        const l = `direction="outbound",dst_namespace="shop",dst_service="web",route_kind="HTTPRoute",route_namespace="shop",route_name="split",route_rule="",backend="shop/${backend}",status_code="${code}",status_class="${code[0]}xx",grpc_status="",tls="true"`;
        lines.push(`weft_requests_total{${l}} ${v}`);
        // Every request took between 1 and 2.5 ms.
        hist.push(`weft_request_duration_seconds_bucket{${l},le="0.001"} 0`);
        hist.push(`weft_request_duration_seconds_bucket{${l},le="0.0025"} ${v}`);
        hist.push(`weft_request_duration_seconds_bucket{${l},le="+Inf"} ${v}`);
        hist.push(`weft_request_duration_seconds_count{${l}} ${v}`);
      }
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end([...lines, ...hist].join('\n') + '\n');
  });
}

function listen(s: http.Server): Promise<string> {
  return new Promise((r) => s.listen(0, host, () => r(`${host}:${(s.address() as AddressInfo).port}`)));
}

t.test('weft stat backends from two sidecars shows RPS, success and the split', async (t) => {
  // Two client pods; each scrape adds 70 requests to v1 and 30 to v2 per sidecar.
  const a = fakeSidecar({ 'web-v1': 70, 'web-v2': 30 }, 10);
  const b = fakeSidecar({ 'web-v1': 70, 'web-v2': 30 }, 10);
  const addrs = [await listen(a), await listen(b)];
  t.teardown(() => {
    a.close();
    b.close();
  });
  const { stdout } = await run(process.execPath, [WEFT, 'stat', 'backends', '--admin', addrs.map((x) => `http://${x}`).join(','), '--window', '1s', '-o', 'json']);
  const out = JSON.parse(stdout) as { rows: Array<{ service: string; backend: string; requests: number; share: number; successRate: number; latency: Record<string, number> }> };
  t.same(out.rows.map((r) => [r.service, r.backend]), [['shop/web', 'shop/web-v1'], ['shop/web', 'shop/web-v2']]);
  t.same(out.rows.map((r) => r.requests), [140, 60], 'one window of both sidecars');
  t.same(out.rows.map((r) => Math.round(r.share * 1000) / 1000), [0.7, 0.3]);
  t.same(out.rows.map((r) => r.successRate), [0.9, 0.9]);
  for (const r of out.rows) t.ok(r.latency.p50! > 0.001 && r.latency.p50! <= 0.0025, `p50 in its bucket: ${r.latency.p50}`);

  const table = await run(process.execPath, [WEFT, 'stat', '--admin', addrs.join(','), '--window', '1s']);
  t.match(table.stdout, /SERVICE\s+RPS\s+SUCCESS\s+P50\s+P95\s+P99/);
  t.match(table.stdout, /shop\/web\s+\d+(\.\d)?\s+90\.00%/);
});

t.test('weft stat finds the sidecars in control\'s registry', async (t) => {
  // Control lists pod IPs and a sidecar's admin port is always 7090: serve
  // the fake sidecar there, on this file's own loopback address.
  const ip = host;
  const s7090 = fakeSidecar({ 'web-v1': 10 }, 1000);
  await new Promise<void>((r, j) => s7090.once('error', j).listen(7090, ip, () => r()));
  t.teardown(() => s7090.close());
  const control = http.createServer((req, res) => {
    if (req.url !== '/resources') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        resources: [],
        registered: [
          { workload: { namespace: 'shop', workload: 'client', serviceAccount: 'client', podName: 'client-0', podIP: ip, labels: {}, appPorts: [], meshed: true }, state: 'connected', connections: 1 },
          { workload: { namespace: 'shop', workload: 'gone', serviceAccount: 'gone', podName: 'gone-0', podIP: '127.0.0.0', labels: {}, appPorts: [], meshed: true }, state: 'provisional', connections: 0 },
        ],
      }),
    );
  });
  const controlAddr = await listen(control);
  t.teardown(() => control.close());
  const { stdout } = await run(process.execPath, [WEFT, 'stat', '--control-admin', controlAddr, '--window', '1s', '-o', 'json']);
  const out = JSON.parse(stdout) as { source: string; rows: Array<{ service: string; requests: number }> };
  t.match(out.source, /^1 sidecars registered/);
  t.same(out.rows.map((r) => [r.service, r.requests]), [['shop/web', 10]]);

  // The same discovery, as a Prometheus config that promtool accepts.
  const cfg = await run(process.execPath, [WEFT, 'stat', '--control-admin', controlAddr, '--scrape-config']);
  t.match(cfg.stdout, new RegExp(`targets: \\["${ip.replace(/\./g, '\\.')}:7090"\\]`));
  t.match(cfg.stdout, new RegExp(`targets: \\["${controlAddr.replace(/\./g, '\\.')}"\\]`));
  const dir = mkdtempSync(join(tmpdir(), 'weft-stat-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'prometheus.yml'), cfg.stdout);
  const check = await run('promtool', ['check', 'config', join(dir, 'prometheus.yml')]);
  t.match(check.stdout, /SUCCESS/);
});

t.test('weft stat --watch prints a table every window until interrupted', async (t) => {
  const side = fakeSidecar({ 'web-v1': 5 }, 1000);
  const addr = await listen(side);
  t.teardown(() => side.close());
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [WEFT, 'stat', '--admin', addr, '--window', '1s', '--watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => child.kill('SIGKILL'));
  const end = Date.now() + 15_000;
  while ((out.match(/^SERVICE/gm) ?? []).length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  t.ok((out.match(/^SERVICE/gm) ?? []).length >= 2, 'two tables, one per window');
  t.match(out, /shop\/web\s+[45]\.\d\s+100\.00%/, "about five requests a second (5 per scrape, scrapes ~1 s apart), all successful");
  child.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C ends it cleanly');
});

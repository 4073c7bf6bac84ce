// The web dashboard in a real browser: `weft up examples/faces` serves it,
// Debian's Chromium (driven by puppeteer-core) renders it with the demo's
// real traffic. The page shows the demo's Services with live numbers that
// change from one refresh to the next (it refreshes at least every 2 s
// without a reload), the split of smiley between its two backends, the
// topology drawn from real traffic, the workloads' identities and the route
// that applies — and loads nothing from anywhere but weft itself. A
// screenshot is kept in e2e/artifacts/dashboard.png.
//
// `weft dashboard` serves the same page against control's admin address,
// and against a real Prometheus scraping the sidecars.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { REPO, startMesh, waitFor, weft } from './helpers/mesh.js';
import { startPrometheus } from './helpers/prometheus.js';

const CHROMIUM = process.env.WEFT_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'e2e', 'artifacts');

const mesh = await startMesh(t, join(REPO, 'examples', 'faces'), { timeoutMs: 90_000 });
t.teardown(() => mesh.stop());
const dashboardUrl = /dashboard {2}(http:\/\/\S+)/.exec(mesh.proc.stdout())?.[1];

async function launch(t: Test): Promise<Browser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${userDataDir}`],
  });
  t.teardown(async () => {
    await browser.close();
    rmSync(userDataDir, { recursive: true, force: true });
  });
  return browser;
}

/** What the page shows now: per Service row its numbers, and how many refreshes it has done. */
async function snapshot(page: Page): Promise<{ refreshes: number; services: Record<string, string[]> }> {
  return page.evaluate(() => {
    const services: Record<string, string[]> = {};
    for (const tr of document.querySelectorAll('#services tr.svc')) {
      services[tr.getAttribute('data-service') ?? ''] = [...tr.querySelectorAll('td.n')].map((td) => td.textContent ?? '');
    }
    return { refreshes: Number(document.body.dataset.refreshes ?? 0), services };
  });
}

t.test('weft up serves a dashboard whose live numbers change between refreshes', async (t) => {
  t.ok(dashboardUrl, `weft up printed the dashboard URL:\n${mesh.proc.stdout()}`);
  t.equal(new URL(dashboardUrl!).host, `${mesh.prefix}.0.1:7070`);
  const browser = await launch(t);
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1000 });
  const requested: string[] = [];
  page.on('request', (r) => requested.push(r.url()));
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(dashboardUrl!, { waitUntil: 'load' });
  t.equal(await page.title(), 'weft dashboard');

  // Every Service of the demo, with traffic on the ones load and face call.
  const first = await waitFor('the demo Services with live traffic', async () => {
    const s = await snapshot(page);
    const rps = (name: string) => Number(s.services[name]?.[0] ?? 0);
    return ['faces/face', 'faces/smiley', 'faces/color'].every((n) => rps(n) > 0) ? s : undefined;
  }, { timeoutMs: 45_000, intervalMs: 200 });
  t.same(Object.keys(first.services).sort(), ['faces/color', 'faces/face', 'faces/smiley', 'faces/smiley-v1', 'faces/smiley-v2']);
  t.match(first.services['faces/smiley']![1], /^\d+(\.\d)?%$/, 'success rate');
  t.match(first.services['faces/smiley']![3], /^[\d.]+(µs|ms|s)$/, 'p99 latency');

  // Refreshed without a reload, at least every 2 s, with numbers that change.
  const t0 = Date.now();
  const later = await waitFor('a later refresh with different numbers', async () => {
    const s = await snapshot(page);
    return s.refreshes >= first.refreshes + 2 && JSON.stringify(s.services) !== JSON.stringify(first.services) ? s : undefined;
  }, { timeoutMs: 20_000, intervalMs: 100 });
  t.ok((Date.now() - t0) / (later.refreshes - first.refreshes) < 2000, 'a refresh at least every 2 s');
  t.not(JSON.stringify(later.services), JSON.stringify(first.services));

  // The split as it happens: smiley's two backends, each with its share.
  const backends = await waitFor('both smiley backends with traffic', () =>
    page.$$eval('#services tr.backend[data-service="faces/smiley"]', (rows) =>
      rows.map((r) => [r.getAttribute('data-backend'), r.querySelector('td.share')?.textContent ?? '']),
    ).then((b) => (b.length === 2 && b.every(([, share]) => /\d+%/.test(share!)) ? b : undefined)),
  );
  t.same(backends.map(([b]) => b), ['faces/smiley-v1', 'faces/smiley-v2']);
  const share = Number(backends[0]![1]!.replace('%', ''));
  t.ok(share > 60 && share < 100, `smiley-v1 takes most of the traffic (90/10 split): ${share}%`);
  t.match(await page.$eval('#services', (e) => e.textContent), /HTTPRoute faces\/smiley-split/, 'the route that applies');

  // Topology from real traffic: load → face → smiley/color → their workloads.
  const nodes = await page.$$eval('#topology [data-node]', (ns) => ns.map((n) => n.getAttribute('data-node')));
  for (const n of ['wl:faces/load', 'svc:faces/face', 'wl:faces/face', 'svc:faces/smiley', 'wl:faces/smiley-v1', 'wl:faces/smiley-v2', 'svc:faces/color', 'wl:faces/color']) {
    t.ok(nodes.includes(n), `topology node ${n}`);
  }
  t.ok((await page.$$('#topology path.edge')).length >= 7, 'edges between them');

  // Identities.
  const ids = await page.$$eval('#workloads tr[data-workload]', (rows) => Object.fromEntries(rows.map((r) => [r.getAttribute('data-workload'), r.querySelector('code')?.textContent])));
  t.equal(ids['faces/face'], 'spiffe://cluster.local/ns/faces/sa/face');
  t.equal(ids['faces/smiley-v2'], 'spiffe://cluster.local/ns/faces/sa/smiley');

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  t.comment(`screenshot: ${join(ARTIFACTS, 'dashboard.png')}`);

  const origin = new URL(dashboardUrl!).origin;
  t.same(requested.filter((u) => !u.startsWith(origin)), [], 'nothing loaded from outside weft');
  t.same(errors, [], 'no script errors');
});

t.test('weft dashboard serves the same page from control\'s admin address', async (t) => {
  const listen = `${mesh.prefix}.0.1:7071`;
  const p = weft(t, ['dashboard', '--control-admin', mesh.controlAdmin.replace('http://', ''), '--listen', listen]);
  await waitFor('weft dashboard to listen', () => p.stdout().includes(`http://${listen}/`));
  const page = await (await fetch(`http://${listen}/`)).text();
  t.match(page, /<title>weft dashboard<\/title>/);
  const state = await waitFor('rates in the state', async () => {
    const s = (await (await fetch(`http://${listen}/api/state`)).json()) as { services: Array<{ name: string; rps: number; backends: unknown[] }> };
    return s.services.find((x) => x.name === 'faces/smiley' && x.rps > 0) ? s : undefined;
  }, { timeoutMs: 20_000, intervalMs: 250 });
  t.equal(state.services.find((x) => x.name === 'faces/smiley')!.backends.length, 2);
  await p.stop();
  t.equal(p.child.exitCode, 0);
});

t.test('weft dashboard --prometheus: rates from a real Prometheus, inventory from control', async (t) => {
  const prom = await startPrometheus({ jobs: [{ job: 'weft-sidecars', targets: mesh.pods.map((x) => x.adminUrl.replace('http://', '')) }], scrapeIntervalS: 1 });
  t.teardown(() => prom.stop());
  await prom.waitForTargets(mesh.pods.length, 30_000);
  const listen = `${mesh.prefix}.0.1:7072`;
  const p = weft(t, ['dashboard', '--prometheus', prom.url, '--control-admin', mesh.controlAdmin.replace('http://', ''), '--listen', listen, '--window', '10']);
  await waitFor('weft dashboard to listen', () => p.stdout().includes(`http://${listen}/`));
  const state = await waitFor('rates from Prometheus', async () => {
    const s = (await (await fetch(`http://${listen}/api/state`)).json()) as { source: string; services: Array<{ name: string; rps: number; attachedRoutes: string[] }>; workloads: Array<{ name: string }> };
    return s.services.find((x) => x.name === 'faces/face' && x.rps > 0) ? s : undefined;
  }, { timeoutMs: 40_000, intervalMs: 500 });
  t.match(state.source, /^Prometheus http/);
  t.same(state.services.find((x) => x.name === 'faces/smiley')!.attachedRoutes, ['HTTPRoute faces/smiley-split']);
  t.ok(state.workloads.some((w) => w.name === 'faces/face'));
  await p.stop();
});

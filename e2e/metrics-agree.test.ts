// The two ends of a hop count the same requests: for N requests from one
// workload to another through both sidecars, the caller's sidecar
// (direction="outbound") and the server's sidecar (direction="inbound") count
// the same number per status code, and those are the status codes the client
// received — 200s, 404s and 500s alike. Both ends also agree on who talked to
// whom, and the latency histograms count every request once.
import t from 'tap';
import {
  configDir,
  docs,
  echoWorkload,
  httpRequest,
  meshGet,
  metricSamples,
  service,
  startMesh,
} from './helpers/mesh.js';

const NS = 'agree';

type Labels = Record<string, string>;

async function scrape(podIP: string): Promise<string> {
  const r = await httpRequest(`http://${podIP}:7090/metrics`);
  if (r.status !== 200) throw new Error(`${podIP}:7090/metrics answered ${r.status}`);
  return r.body;
}

/** Sum of a counter's samples whose labels match `want`, grouped by `by`. */
function sumBy(text: string, name: string, want: Labels, by: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of metricSamples(text, name)) {
    if (!Object.entries(want).every(([k, v]) => s.labels[k] === v)) continue;
    const k = s.labels[by] ?? '';
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

function diff(after: Map<string, number>, before: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

t.test('outbound and inbound sidecars count the same requests and status codes as the client saw', async (t) => {
  const dir = configDir(t, {
    'mesh.yaml': docs(
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
      service({ name: 'server', namespace: NS, selector: { app: 'server' } }),
      echoWorkload({ name: 'server', namespace: NS, labels: { app: 'server' } }),
      echoWorkload({ name: 'client', namespace: NS, labels: { app: 'client' }, calls: ['server'] }),
    ),
  });
  const mesh = await startMesh(t, dir);
  t.teardown(() => mesh.stop());
  const client = mesh.pod('client');
  const server = mesh.pod('server');
  const url = `http://server.${NS}`;

  // Warm up: the first call subscribes the client's sidecar to the Service.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await meshGet(client.podIP, `${url}/`).catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`no 200 from ${url} through the mesh: ${r?.status} ${r?.body}`);
    await new Promise((res) => setTimeout(res, 200));
  }

  const outSel = { direction: 'outbound', dst_service: 'server', dst_namespace: NS };
  // The server's sidecar knows the caller by its certificate: namespace and service account.
  const inSel = { direction: 'inbound', src_service_account: 'client', src_namespace: NS };
  const REQ = 'weft_requests_total';
  const COUNT = 'weft_request_duration_seconds_count';
  const [outBefore, inBefore] = await Promise.all([scrape(client.podIP), scrape(server.podIP)]);

  const plan = [...Array(40).fill('/ok'), ...Array(7).fill('/status/404'), ...Array(5).fill('/status/500')];
  const seen = new Map<string, number>();
  // In parallel batches: several connections, as a real app would use.
  for (let i = 0; i < plan.length; i += 8) {
    const rs = await Promise.all(plan.slice(i, i + 8).map((p) => meshGet(client.podIP, `${url}${p}`)));
    for (const r of rs) seen.set(String(r.status), (seen.get(String(r.status)) ?? 0) + 1);
  }
  const client200 = seen.get('200') ?? 0;
  t.same(Object.fromEntries(seen), { '200': 40, '404': 7, '500': 5 }, 'the client got what the echo app answered');

  // Metrics are recorded when a response completes; give the last ones a moment.
  let out: Record<string, number> = {};
  let inn: Record<string, number> = {};
  let outText = '';
  let inText = '';
  for (let i = 0; i < 20; i++) {
    [outText, inText] = await Promise.all([scrape(client.podIP), scrape(server.podIP)]);
    out = diff(sumBy(outText, REQ, outSel, 'status_code'), sumBy(outBefore, REQ, outSel, 'status_code'));
    inn = diff(sumBy(inText, REQ, inSel, 'status_code'), sumBy(inBefore, REQ, inSel, 'status_code'));
    if ((out['200'] ?? 0) >= client200 && (inn['200'] ?? 0) >= client200) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  t.same(out, Object.fromEntries(seen), 'outbound counts per status code = what the client got');
  t.same(inn, Object.fromEntries(seen), 'inbound counts per status code = what the client got');

  const classes = (text: string, before: string, sel: Labels) =>
    diff(sumBy(text, REQ, sel, 'status_class'), sumBy(before, REQ, sel, 'status_class'));
  t.same(classes(outText, outBefore, outSel), { '2xx': 40, '4xx': 7, '5xx': 5 }, 'status classes outbound');
  t.same(classes(inText, inBefore, inSel), { '2xx': 40, '4xx': 7, '5xx': 5 }, 'status classes inbound');

  // Each request is observed once in each end's latency histogram.
  const total = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
  t.equal(total(diff(sumBy(outText, COUNT, outSel, 'status_code'), sumBy(outBefore, COUNT, outSel, 'status_code'))), plan.length, 'outbound histogram count');
  t.equal(total(diff(sumBy(inText, COUNT, inSel, 'status_code'), sumBy(inBefore, COUNT, inSel, 'status_code'))), plan.length, 'inbound histogram count');

  // Both ends name the same hop.
  const outSeries = metricSamples(outText, REQ).filter((s) => s.labels.direction === 'outbound' && s.labels.dst_service === 'server');
  const inSeries = metricSamples(inText, REQ).filter((s) => s.labels.direction === 'inbound' && s.labels.src_service_account === 'client');
  t.ok(outSeries.length > 0, 'the caller has outbound series for the hop');
  t.ok(inSeries.length > 0, `the server has inbound series from the caller; it has: ${metricSamples(inText, REQ).filter((s) => s.labels.direction === 'inbound').map((s) => JSON.stringify(s.labels)).join(' ')}`);
  for (const s of outSeries) {
    t.equal(s.labels.src_workload, 'client', 'outbound: source is the caller');
    t.equal(s.labels.dst_workload, 'server', 'outbound: destination workload is the endpoint chosen');
    t.equal(s.labels.dst_service_account, 'server');
    t.equal(s.labels.tls, 'true', 'outbound: the hop was mTLS');
  }
  for (const s of inSeries) {
    t.equal(s.labels.dst_workload, 'server', 'inbound: destination is this workload');
    t.equal(s.labels.src_service_account, 'client');
    t.equal(s.labels.tls, 'true', 'inbound: the caller presented a certificate');
    t.equal(s.labels.peer_identity, `spiffe://cluster.local/ns/${NS}/sa/client`, "inbound: the caller's SPIFFE ID");
  }
  for (const s of [...outSeries, ...inSeries]) {
    t.notMatch(s.labels, { path: String }, 'no path label');
    for (const v of Object.values(s.labels)) t.notMatch(v, /\/status\/|\/ok/, 'no request path in any label value');
  }
});

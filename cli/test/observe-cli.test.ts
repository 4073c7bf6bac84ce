// The CLI side of observing: Workload annotations → sidecar flags, `weft
// tap` targets and lines, and the dashboard's state from stat rows and
// control's inventory.
import t from 'tap';
import { observeAnnotations, parseWorkload } from '../up-workloads.js';
import { formatTapLine, parseTapTarget, tapLine } from '../cmd-tap.js';
import { dashboardState } from '../dashboard-data.js';
import type { StatRow } from '../stat-table.js';

t.test('observe annotations become sidecar flags; bad values are errors naming the annotation', async (t) => {
  const cases: Array<[Record<string, unknown>, string[], string[]]> = [
    [{}, [], []],
    [{ 'weft.io/access-log': 'json' }, ['--access-log', 'json'], []],
    [{ 'weft.io/access-log': 'off' }, [], []],
    [{ 'weft.io/trace-collector': 'http://127.0.0.1:4318/v1/traces', 'weft.io/trace-sampling': '0.5' }, ['--trace-collector', 'http://127.0.0.1:4318/v1/traces', '--trace-sampling', '0.5'], []],
    [{ 'weft.io/access-log': 'yes' }, [], ['metadata.annotations.weft.io/access-log: must be json or off']],
    [{ 'weft.io/trace-collector': 'ftp://x' }, [], ['metadata.annotations.weft.io/trace-collector: must be an http(s) URL like http://127.0.0.1:4318/v1/traces']],
    [{ 'weft.io/trace-sampling': '2' }, [], ['metadata.annotations.weft.io/trace-sampling: must be a number from 0 to 1']],
  ];
  for (const [ann, flags, errs] of cases) {
    const got: string[] = [];
    t.same(observeAnnotations(ann, (f, m) => got.push(`${f}: ${m}`)), flags, JSON.stringify(ann));
    t.same(got, errs);
  }
  const w = parseWorkload({ apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'web', annotations: { 'weft.io/access-log': 'json' } }, spec: { command: ['node', 'x.mjs'] } }, 'w.yaml');
  t.same(w.workload?.observeArgs, ['--access-log', 'json']);
  const bad = parseWorkload({ apiVersion: 'local.weft.io/v1alpha1', kind: 'Workload', metadata: { name: 'web', annotations: { 'weft.io/access-log': 'xml' } }, spec: { command: ['node'] } }, 'w.yaml');
  t.same(bad.errors, ['w.yaml: Workload default/web: metadata.annotations.weft.io/access-log: must be json or off']);
});

t.test('tap targets and lines', async (t) => {
  t.same(parseTapTarget('service/web', 'demo'), { kind: 'service', namespace: 'demo', name: 'web' });
  t.same(parseTapTarget('svc/web', 'demo').kind, 'service');
  t.same(parseTapTarget('workload/web-v2', 'x'), { kind: 'workload', namespace: 'x', name: 'web-v2' });
  t.throws(() => parseTapTarget('web', 'demo'), /"web" is not service\/NAME or workload\/NAME/);
  const l = tapLine({ kind: 'request', time: Date.UTC(2026, 0, 2, 3, 4, 5, 6), direction: 'outbound', source: 'spiffe://cluster.local/ns/demo/sa/c', destination: 'demo/web',
    service: 'demo/web', method: 'GET', authority: 'web.demo', path: '/x', status: 503, grpcStatus: '', durationMs: 12.34, proxyError: 'no endpoints' });
  t.match(l, { method: 'GET', path: '/x', status: 503, latencyMs: 12.34, source: 'spiffe://cluster.local/ns/demo/sa/c', destination: 'demo/web' });
  t.equal(formatTapLine(l), '2026-01-02T03:04:05.006Z out spiffe://cluster.local/ns/demo/sa/c -> demo/web GET web.demo/x status=503 12.3ms weft-proxy-error="no endpoints"');
  t.match(formatTapLine({ ...l, grpcStatus: '14', direction: 'inbound' }), / in  .* grpc-status=14 /);
});

const row = (keys: StatRow['keys'], rps: number, share = NaN): StatRow => ({ keys, requests: rps * 10, rps, successRate: 0.99, latency: { p50: 0.002, p99: 0.01 }, share });

t.test('the dashboard state: Services with live routes and backends, routes and policies that apply, identities, who calls whom', async (t) => {
  const s = dashboardState(
    {
      services: [row({ service: 'faces/smiley' }, 10)],
      routes: [row({ service: 'faces/smiley', route: 'HTTPRoute faces/split' }, 10, 1)],
      backends: [row({ service: 'faces/smiley', backend: 'faces/smiley-v1' }, 9, 0.9), row({ service: 'faces/smiley', backend: 'faces/smiley-v2' }, 1, 0.1)],
      edges: [row({ source: 'faces/face', service: 'faces/smiley' }, 10), row({ source: 'faces/face', service: 'faces/idle' }, 0)],
      serves: [row({ service: 'faces/smiley', workload: 'faces/smiley-v1' }, 9)],
      workloads: [row({ workload: 'faces/smiley-v1' }, 9)],
    },
    {
      resources: [
        { kind: 'Service', metadata: { name: 'smiley', namespace: 'faces' }, spec: { ports: [{ port: 80, appProtocol: 'http' }] } },
        { kind: 'Service', metadata: { name: 'idle', namespace: 'faces' }, spec: { ports: [{ port: 80 }] } },
        { kind: 'HTTPRoute', metadata: { name: 'split', namespace: 'faces' }, spec: { parentRefs: [{ group: '', kind: 'Service', name: 'smiley' }] } },
        { kind: 'BackendLBPolicy', metadata: { name: 'sticky', namespace: 'faces' }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'smiley' }] } },
        { kind: 'HTTPRoute', metadata: { name: 'gw', namespace: 'faces' }, spec: { parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'smiley' }] } },
      ],
      registered: [{ workload: { namespace: 'faces', workload: 'smiley-v1', serviceAccount: 'smiley', podName: 'smiley-v1-0', podIP: '127.0.4.1', meshed: true }, state: 'connected' }],
      errors: [{ resource: 'HTTPRoute faces/bad', field: 'spec.rules[0]', message: 'nope' }],
    },
    { source: 'test', windowSeconds: 10, trustDomain: 'cluster.local', now: new Date(0) },
  );
  t.same(s.services.map((x) => x.name), ['faces/idle', 'faces/smiley']);
  const smiley = s.services[1]!;
  t.match(smiley, { rps: 10, successRate: 0.99, p50: 0.002, p99: 0.01, ports: ['80/http'], attachedRoutes: ['HTTPRoute faces/split'], policies: ['BackendLBPolicy faces/sticky'] });
  t.same(smiley.backends.map((b) => [b.backend, b.share]), [['faces/smiley-v1', 0.9], ['faces/smiley-v2', 0.1]]);
  t.equal(s.services[0]!.rps, 0, 'a Service without traffic is shown, at 0');
  t.same(s.edges.map((e) => [e.kind, e.from, e.to]), [['calls', 'faces/face', 'faces/smiley'], ['serves', 'faces/smiley', 'faces/smiley-v1']], 'edges without traffic are left out');
  t.match(s.workloads, [{ name: 'faces/smiley-v1', identity: 'spiffe://cluster.local/ns/faces/sa/smiley', pods: ['smiley-v1-0 127.0.4.1'], rps: 9 }]);
  t.same(s.errors, ['HTTPRoute faces/bad: spec.rules[0]: nope']);
});

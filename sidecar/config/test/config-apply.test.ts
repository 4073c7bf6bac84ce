// Validate → build once → swap; a bad update is NACKed and the previous
// config keeps serving; balancer state survives for unchanged endpoints.
import t from 'tap';
import type { ServiceConfig } from '../../../api/index.js';
import { MeshState } from '../config-apply.js';
import { SidecarMetrics } from '../../admin/metrics.js';
import { validateServiceConfig } from '../config-validate.js';

const self = { namespace: 'demo', workload: 'client', serviceAccount: 'client', trustDomain: 'cluster.local' };

function config(weightV1 = 1, pathValue = '/'): ServiceConfig {
  const ep = (ip: string) => ({ ip, port: 8080, identity: { namespace: 'demo', serviceAccount: 'echo' }, ready: true, workload: 'echo' });
  return {
    service: 'demo/echo',
    namespace: 'demo',
    name: 'echo',
    consumerNamespace: 'demo',
    clusterIP: '10.0.0.1',
    sessionSecret: '',
    backends: {
      'demo/echo-v1:80': { key: 'demo/echo-v1:80', namespace: 'demo', name: 'echo-v1', port: 80, endpoints: [ep('10.1.0.1'), ep('10.1.0.2')] },
      'demo/echo:80': { key: 'demo/echo:80', namespace: 'demo', name: 'echo', port: 80, endpoints: [ep('10.1.0.1')] },
    },
    ports: [
      {
        port: 80,
        targetPort: 8080,
        appProtocol: 'http',
        routeKind: 'HTTPRoute',
        defaultBackend: 'demo/echo:80',
        rules: [{ route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: 0 }, filters: [], backends: [{ backend: 'demo/echo-v1:80', weight: weightV1, filters: [] }] }],
        matches: [{ rule: 0, path: { type: 'PathPrefix', value: pathValue }, headers: [], queryParams: [] }],
      },
    ],
  };
}
const msg = (c: unknown, version: string) => ({ service: 'demo/echo', version, config_json: Buffer.from(JSON.stringify(c)), removed: false });

t.test('a good update is applied, a bad one is NACKed with the field and the old config stays', async (t) => {
  const metrics = new SidecarMetrics();
  const state = new MeshState({ self, metrics });
  t.equal(state.applyUpdate(msg(config(), '1')), undefined);
  const first = state.services.get('demo/echo')!;
  t.equal(first.version, '1');

  const bad = config() as unknown as { ports: Array<{ matches: Array<{ path: { type: string } }> }> };
  bad.ports[0]!.matches[0]!.path.type = 'Bogus';
  const err = state.applyUpdate(msg(bad, '2'));
  t.match(err, /version 2: ports\[0\]\.matches\[0\]\.path\.type: must be one of Exact, PathPrefix, RegularExpression/);
  t.equal(state.services.get('demo/echo'), first, 'previous config still in place');

  const badRe = config(1, '/');
  badRe.ports[0]!.matches[0]!.path = { type: 'RegularExpression', value: '(' };
  t.match(state.applyUpdate(msg(badRe, '3')), /version 3: ports\[0\]\.matches\[0\]\.path: invalid regular expression/);
  t.match(state.applyUpdate({ ...msg({}, '4'), config_json: Buffer.from('{not json') }), /config_json is not JSON/);
  const wrongKey = { ...config(), service: 'demo/other' };
  t.match(state.applyUpdate(msg(wrongKey, '5')), /service: is demo\/other but the update is for demo\/echo/);
  t.equal(state.services.get('demo/echo'), first);
  const text = await metrics.render();
  t.match(text, /weft_config_updates_nacked_total\{resource_type="service"\} 4/);
});

t.test('endpoint state carries over across swaps', async (t) => {
  const state = new MeshState({ self, metrics: new SidecarMetrics() });
  state.applyUpdate(msg(config(), '1'));
  const ep1 = state.services.get('demo/echo')!.backends.get('demo/echo-v1:80')!.balancer.all[0]!;
  ep1.ewmaMs = 42;
  state.applyUpdate(msg(config(3), '2'));
  const after = state.services.get('demo/echo')!.backends.get('demo/echo-v1:80')!.balancer.all[0]!;
  t.equal(after, ep1, 'same endpoint object');
  t.equal(after.ewmaMs, 42);
  t.equal(state.podIdentities.get('10.1.0.2')?.spiffe, 'spiffe://cluster.local/ns/demo/sa/echo');
});

t.test('a waiting request is woken by the first config', async (t) => {
  const state = new MeshState({ self, metrics: new SidecarMetrics() });
  const waiting = state.waitFor('demo/echo', 2000);
  setTimeout(() => state.applyUpdate(msg(config(), '1')), 20);
  const s = await waiting;
  t.equal(s?.version, '1');
  t.equal(await state.waitFor('demo/none', 30), undefined, 'bounded wait');
});

t.test('validation names the field', async (t) => {
  const c = config() as unknown as Record<string, unknown>;
  delete c.ports;
  const v = validateServiceConfig(c);
  t.same(v.ok ? null : v.error, { field: 'ports', message: 'must be an array' });
  const c2 = config();
  c2.ports[0]!.rules[0]!.backends[0]!.backend = 'demo/missing:80';
  const v2 = validateServiceConfig(c2);
  t.match(v2.ok ? '' : `${v2.error.field}: ${v2.error.message}`, /ports\[0\]\.rules\[0\]\.backends\[0\]\.backend: names backend demo\/missing:80/);
});

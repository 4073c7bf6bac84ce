// Plaintext callers in permissive mode are unauthenticated: the inbound's
// plain HTTP path (what iptables-redirected callers get) is authorized per
// request like mTLS hops, with peer '' — real sockets, a real app that counts.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import type { InboundAuthzConfig } from '../../../api/index.js';
import { IdentityHolder } from '../../config/bootstrap.js';
import { EndpointPools } from '../../hop/endpoint-pool.js';
import { createInbound } from '../listen-inbound.js';
import { InboundAuthz } from '../authz-state.js';
import { SidecarMetrics } from '../../admin/metrics.js';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
const listen = (s: net.Server): Promise<number> => new Promise((r) => s.listen(0, ip, () => r((s.address() as net.AddressInfo).port)));

t.test('plaintext HTTP callers are checked per request as unauthenticated', async (t) => {
  let seen = 0;
  const app = http.createServer((req, res) => {
    seen++;
    res.end(`app ${req.url} ${req.headers['x-weft-peer-identity'] ?? '-'}`);
  });
  const appPort = await listen(app);
  t.teardown(() => app.close());

  const metrics = new SidecarMetrics();
  const logs: string[] = [];
  const authz = new InboundAuthz(metrics, (l) => logs.push(l));
  const identity = new IdentityHolder({ control: '127.0.0.1:1', stateDir: '/nonexistent', namespace: 'shop', serviceAccount: 'cart', trustDomain: 'cluster.local', log: () => {} });
  const pools = new EndpointPools(identity, 7002, 8, () => {});
  const inbound = createInbound({
    podIP: ip, self: { namespace: 'shop', workload: 'cart', serviceAccount: 'cart', trustDomain: 'cluster.local' },
    identity, pools, metrics, strict: false, detectTimeoutMs: 100, maxHeaderSize: undefined, log: () => {}, authz,
  });
  // Stands in for the iptables redirect: every accepted connection is a plaintext caller for the app's port.
  const front = net.createServer((s) => inbound.servePlainHttp(s, appPort));
  const frontPort = await listen(front);
  t.teardown(async () => {
    front.close();
    inbound.http.closeAllConnections();
    await pools.close();
  });
  const apply = (cfg: Partial<InboundAuthzConfig>, version: string) =>
    t.equal(authz.apply({ version, config_json: Buffer.from(JSON.stringify({ pod: 'shop/cart-0', defaultPolicy: 'all-unauthenticated', defaultFrom: 'mesh', probes: [], policies: [], ...cfg })) }), undefined, `config ${version} applied`);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const get = (path: string) =>
    new Promise<{ status: number; error: string; body: string }>((resolve, reject) => {
      http.get({ host: ip, port: frontPort, path, agent, headers: { 'x-weft-peer-identity': 'spiffe://cluster.local/ns/x/sa/forged' } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, error: String(res.headers['weft-proxy-error'] ?? ''), body }));
      }).on('error', reject);
    });

  const a = await get('/a');
  t.equal(a.status, 200, 'before any config: allowed (all-unauthenticated)');
  t.equal(a.body, 'app /a -', 'a forged identity header never reaches the app');

  apply({ defaultPolicy: 'all-authenticated', probes: [{ port: 0, path: '/healthz' }] }, '2');
  const b = await get('/b');
  t.equal(b.status, 403, 'all-authenticated: the plaintext caller is refused on the same keep-alive connection');
  t.match(b.error, /all-authenticated refuses an unauthenticated \(plaintext\) caller/);
  t.equal((await get('/healthz')).status, 200, 'the probe path stays allowed');
  t.equal(seen, 2, 'the refused request never reached the app');

  apply({ policies: [{ name: 'shop/any', rules: [{}] }] }, '3');
  t.equal((await get('/c')).status, 200, 'a rule with sources omitted admits any caller, plaintext too');
  apply({ policies: [{ name: 'shop/web', rules: [{ sources: { identities: ['spiffe://cluster.local/ns/shop/sa/web'], prefixes: [] } }] }] }, '4');
  t.equal((await get('/d')).status, 403, 'an identity rule refuses plaintext');
  const text = await metrics.render();
  t.match(text, /weft_authz_decisions_total\{policy="default:all-authenticated",source_identity="",decision="deny"\} 1/);
  t.match(text, /weft_authz_decisions_total\{policy="probe",source_identity="",decision="allow"\} 1/);
  t.match(text, /weft_authz_decisions_total\{policy="shop\/web",source_identity="",decision="deny"\} 1/);
  t.ok(logs.some((l) => /inbound authorization: deny \(unauthenticated\) on port \d+/.test(l)), 'a first denial is logged');
  t.equal(authz.apply({ version: '5', config_json: Buffer.from('{"pod":1}') }), 'inbound version 5: pod: must be a string', 'a bad config is NACKed naming the field');
  t.equal((await get('/e')).status, 403, 'and the previous config stays');
});

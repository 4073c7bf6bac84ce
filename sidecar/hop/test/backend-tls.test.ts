// BackendTLSPolicy (GEP-1897) through a real sidecar: an HTTPS backend outside
// the mesh with a certificate from a test CA. With the policy's CA and
// hostname the sidecar originates TLS (SNI = hostname) and the request
// passes; a wrong hostname, a wrong CA, the system roots, an invalid policy
// or a plaintext server fail closed with 503 naming the policy, the server
// never sees a request, and each is counted in weft_requests_total. HTTP/2
// (gRPC) is originated as TLS with ALPN h2; failures are UNAVAILABLE.
import t, { type Test } from 'tap';
import http from 'node:http';
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import type { BackendConfig, BackendTLS, CompiledRule, ServiceConfig } from '../../../api/index.js';
import { createTrustAnchor, issueCert } from '../../../certs/index.js';
import { startSidecar } from '../../index.js';
import { startFakeControl } from '../../test/helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const HTTPS = ip(2);
const PLAIN = ip(3);
const CLIENT = ip(4);
const HOST = 'backend.example.test';

const ca = createTrustAnchor({ commonName: 'weft test backend CA' });
const otherCa = createTrustAnchor({ commonName: 'some other CA' });
const leaf = issueCert(ca, { dnsNames: [HOST], commonName: HOST });

const NAMES = ['good', 'wronghost', 'wrongca', 'system', 'invalid', 'plain', 'badpem', 'switch'] as const;
function serviceConfig(switchCa: string): ServiceConfig {
  const tls = (name: string, extra: Partial<BackendTLS>): BackendTLS => ({ hostname: HOST, policy: `demo/${name}`, caPem: ca.certPem, ...extra });
  const be = (name: string, host: string, t: BackendTLS): BackendConfig => ({ key: `demo/${name}:443`, namespace: 'demo', name, port: 443, endpoints: [{ ip: host, port: 8443, ready: true }], tls: t });
  const backends: Record<string, BackendConfig> = {
    'demo/good:443': be('good', HTTPS, tls('good', {})),
    'demo/wronghost:443': be('wronghost', HTTPS, tls('wronghost', { hostname: 'other.example.test' })),
    'demo/wrongca:443': be('wrongca', HTTPS, tls('wrongca', { caPem: otherCa.certPem })),
    'demo/system:443': be('system', HTTPS, tls('system', { caPem: undefined, system: true })),
    'demo/invalid:443': be('invalid', HTTPS, tls('invalid', { invalid: 'ConfigMap demo/missing-ca not found' })),
    'demo/plain:443': be('plain', PLAIN, tls('plain', {})),
    'demo/badpem:443': be('badpem', HTTPS, tls('badpem', { caPem: '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n' })),
    'demo/switch:443': be('switch', HTTPS, tls('switch', { caPem: switchCa })),
  };
  const rules: CompiledRule[] = NAMES.map((n, i) => ({
    route: { kind: 'HTTPRoute', namespace: 'demo', name: 'ext', ruleIndex: i, ruleName: n },
    filters: [],
    backends: [{ backend: `demo/${n}:443`, weight: 1, filters: [] }],
  }));
  // /mirror: to the good backend, mirrored to it as well (the mirror originates TLS too).
  rules.push({ route: { kind: 'HTTPRoute', namespace: 'demo', name: 'ext', ruleIndex: NAMES.length, ruleName: 'mirror' }, filters: [{ type: 'RequestMirror', backend: 'demo/good:443' }], backends: [{ backend: 'demo/good:443', weight: 1, filters: [] }] });
  return {
    service: 'demo/ext', namespace: 'demo', name: 'ext', consumerNamespace: 'demo', clusterIP: '10.96.0.20', sessionSecret: '',
    backends,
    ports: [{
      port: 443, targetPort: 8443, appProtocol: 'http', routeKind: 'HTTPRoute', defaultBackend: 'demo/good:443', rules,
      matches: [...NAMES, 'mirror'].map((n, i) => ({ rule: i, path: { type: 'PathPrefix' as const, value: `/${n}` }, headers: [], queryParams: [] })),
    }],
  };
}

t.test('BackendTLSPolicy through a sidecar', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-backend-tls-'));
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state') });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'ext', cluster_ip: '10.96.0.20', ports: [{ name: 'https', port: 443, target_port: 8443, app_protocol: 'http' }], meshed: false }] });
  control.setService(serviceConfig(otherCa.certPem), 'v1');

  const seen: Array<{ url: string; sni: string | false; host: string }> = [];
  // HTTP/1.1 and HTTP/2 over TLS (ALPN), as an external API would be.
  const server = http2.createSecureServer({ cert: leaf.certPem, key: leaf.keyPem, allowHTTP1: true }, (req, res) => {
    const sock = (req.httpVersion === '2.0' ? req.stream.session!.socket : req.socket) as TLSSocket;
    seen.push({ url: req.url, sni: sock.servername, host: req.headers.host ?? String(req.headers[':authority'] ?? '') });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'x-proto': req.httpVersion });
    res.end(JSON.stringify({ tls: true, url: req.url }));
  });
  await new Promise<void>((r) => server.listen(8443, HTTPS, r));
  const plainSeen: string[] = [];
  const plain = http.createServer((req, res) => {
    plainSeen.push(req.url!);
    res.end('plaintext');
  });
  await new Promise<void>((r) => plain.listen(8443, PLAIN, r));
  t.teardown(() => {
    server.close();
    plain.closeAllConnections();
    plain.close();
  });

  const client = await startSidecar({ control: control.address, stateDir: control.stateDir, namespace: 'demo', podIP: CLIENT, workload: 'client', serviceAccount: 'client', log: () => {} });
  t.teardown(() => client.close(100));
  await client.ready;
  const pool = new Pool(`http://${client.outboundAddress}`, { connections: 4 });
  t.teardown(() => pool.destroy());
  const get = async (path: string) => {
    const r = await pool.request({ path, method: 'GET', headers: { host: 'ext.demo:443' } });
    return { status: r.statusCode, why: String(r.headers['weft-proxy-error'] ?? ''), body: await r.body.text() };
  };

  await t.test('with the CA and hostname the sidecar originates TLS (SNI = hostname)', async (t) => {
    for (let i = 0; i < 20; i++) {
      const r = await get(`/good/${i}`);
      t.equal(r.status, 200, r.why);
      if (i === 0) t.same(JSON.parse(r.body), { tls: true, url: '/good/0' });
    }
    t.equal(seen.length, 20);
    t.ok(seen.every((s) => s.sni === HOST), 'SNI is the policy hostname');
    t.equal(seen[0]!.host, 'ext.demo:443', 'the Host header is the one the app sent');
  });

  await t.test('a RequestMirror to a TLS backend originates TLS too', async (t) => {
    const r = await get('/mirror/1');
    t.equal(r.status, 200, r.why);
    let n = 0;
    for (let i = 0; i < 100 && (n = seen.filter((s) => s.url === '/mirror/1').length) < 2; i++) await new Promise((res) => setTimeout(res, 20));
    t.equal(n, 2, 'the request and its mirror both arrived over TLS');
  });

  const failClosed = async (t: Test, name: string, why: RegExp) => {
    const before = seen.length + plainSeen.length;
    for (let i = 0; i < 3; i++) {
      const r = await get(`/${name}/x`);
      t.equal(r.status, 503, `${name}: 503`);
      t.match(r.why, new RegExp(`BackendTLSPolicy demo/${name}`), 'names the policy');
      t.match(r.why, why);
    }
    t.equal(seen.length + plainSeen.length, before, 'nothing reached a server');
  };

  await t.test('a wrong hostname fails closed', (t) => failClosed(t, 'wronghost', /other\.example\.test|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i));
  await t.test('a wrong CA fails closed', (t) => failClosed(t, 'wrongca', /certificate|issuer/i));
  await t.test('the system roots do not trust a test CA', (t) => failClosed(t, 'system', /certificate|issuer/i));
  await t.test('an invalid policy fails closed with its reason', (t) => failClosed(t, 'invalid', /ConfigMap demo\/missing-ca not found/));
  await t.test('a plaintext server is never spoken to in plaintext', async (t) => {
    await failClosed(t, 'plain', /TLS|SSL|socket|reset|wrong version/i);
  });
  await t.test('unreadable CA PEM fails closed', (t) => failClosed(t, 'badpem', /CA certificates|PEM/i));

  await t.test('fail-closed requests are counted', async (t) => {
    const m = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    for (const n of ['wronghost', 'wrongca', 'invalid']) {
      const line = m.split('\n').find((l) => l.startsWith('weft_requests_total{') && l.includes(`backend="demo/${n}"`) && l.includes('status_code="503"'));
      t.ok(line, `weft_requests_total for ${n} 503`);
      t.equal(Number(line?.split(' ').pop()), 3);
    }
    const open = m.split('\n').find((l) => l.startsWith('weft_tcp_connections_opened_total{') && l.includes(`peer="${HOST}"`) && l.includes('tls="true"'));
    t.ok(open, 'the TLS connections to the backend are counted');
  });

  await t.test('a config push that fixes the CA takes effect; the old context is dropped', async (t) => {
    t.equal((await get('/switch/1')).status, 503);
    control.setService(serviceConfig(ca.certPem), 'v2');
    await new Promise((r) => setTimeout(r, 300));
    const r = await get('/switch/2');
    t.equal(r.status, 200, r.why);
    control.setService(serviceConfig(otherCa.certPem), 'v3');
    await new Promise((r) => setTimeout(r, 300));
    t.equal((await get('/switch/3')).status, 503, 'and back: the kept-alive connection is not reused under the wrong CA');
  });

  const h2call = (path: string) =>
    new Promise<{ status: number; grpc: string; why: string; app: string }>((resolve, reject) => {
      const session = http2.connect(`http://${client.outboundAddress}`);
      session.on('error', () => {});
      const s = session.request({ ':method': 'POST', ':path': path, ':authority': 'ext.demo:443', 'content-type': 'application/grpc', te: 'trailers' });
      const r = { status: 0, grpc: '', why: '', app: '' };
      s.on('response', (h) => {
        r.status = Number(h[':status']) || 0;
        r.grpc = String(h['grpc-status'] ?? '');
        r.why = decodeURIComponent(String(h['weft-proxy-error'] ?? h['grpc-message'] ?? ''));
        r.app = String(h['x-proto'] ?? '');
      });
      s.on('trailers', (h) => (r.grpc ||= String(h['grpc-status'] ?? '')));
      s.on('error', reject);
      s.on('close', () => {
        session.close();
        resolve(r);
      });
      s.resume();
      s.end(Buffer.alloc(5));
    });

  await t.test('HTTP/2 (gRPC) is originated as TLS with ALPN h2 and verified the same way', async (t) => {
    const before = seen.length;
    const ok = await h2call('/good/h2');
    t.equal(ok.status, 200, ok.why);
    t.equal(ok.app, '2.0', 'the backend saw HTTP/2');
    t.equal(seen.length, before + 1);
    t.equal(seen[seen.length - 1]!.sni, HOST);
    for (const [name, why] of [['wronghost', /other\.example\.test|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i], ['wrongca', /certificate|issuer/i], ['invalid', /missing-ca not found/]] as const) {
      const bad = await h2call(`/${name}/h2`);
      t.equal(bad.grpc, '14', `${name}: gRPC UNAVAILABLE (HTTP ${bad.status}: ${bad.why})`);
      t.match(bad.why, new RegExp(`BackendTLSPolicy demo/${name}`));
      t.match(bad.why, why);
    }
    t.equal(seen.length, before + 1, 'nothing else reached the server');
  });
});

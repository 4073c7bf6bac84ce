// The webhook's limits over real HTTPS: a body over 3 MiB gets 413 (declared
// or streamed), oversized headers 431, each counted; and the per-workload
// limit annotations become sidecar flags.
import t from 'tap';
import https from 'node:https';
import { createTrustAnchor, createIssuer, issueCert } from '../../certs/index.js';
import { readProxyConfig, startInjector } from '../index.js';
import { MAX_BODY_BYTES } from '../server.js';
import { deploymentPod, review } from './fixtures/reviews.js';

const anchor = createTrustAnchor();
const issuer = createIssuer(anchor);
const serving = issueCert(issuer, { dnsNames: ['weft-injector.weft-system.svc'], ipAddresses: ['127.0.0.1'] });

function request(port: number, o: { method?: string; path?: string; headers?: Record<string, string>; body?: (req: import('node:http').ClientRequest) => void }): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: o.path ?? '/mutate', method: o.method ?? 'POST', ca: anchor.certPem, servername: 'weft-injector.weft-system.svc', headers: o.headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e)));
    if (o.body) o.body(req);
    else req.end();
  });
}

t.test('webhook limits answer 413 and 431 and are counted', async (t) => {
  const srv = await startInjector({ host: '127.0.0.1', port: 0, certPem: serving.certPem + issuer.certPem, keyPem: serving.keyPem, log: () => {} });
  t.teardown(() => srv.close());

  const declared = await request(srv.port, { headers: { 'content-type': 'application/json', 'content-length': String(MAX_BODY_BYTES + 1) }, body: (req) => req.end() });
  t.equal(declared.status, 413, 'a declared body over 3 MiB is refused before it is read');

  const chunk = Buffer.alloc(256 * 1024, 0x20);
  const streamed = await request(srv.port, {
    headers: { 'content-type': 'application/json' },
    body: (req) => {
      let sent = 0;
      const pump = (): void => {
        while (sent <= MAX_BODY_BYTES + chunk.length * 4) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    },
  });
  t.equal(streamed.status, 413, 'a streamed (chunked) body over 3 MiB is refused');

  const big = await request(srv.port, { headers: { 'x-big': 'a'.repeat(20 * 1024) }, body: (req) => req.end('{}') });
  t.equal(big.status, 431, 'a head over 16 KiB gets 431');

  const ok = await request(srv.port, { method: 'GET', path: '/ready' });
  t.equal(ok.status, 200, 'the webhook keeps serving');
  t.same(srv.limitRejections, { body_size: 2, request_timeout: 0, headers: 1 });
  const metrics = await request(srv.port, { method: 'GET', path: '/metrics' });
  t.match(metrics.text, /weft_injector_limit_rejections_total\{limit="body_size"\} 2/);
  t.match(metrics.text, /weft_injector_limit_rejections_total\{limit="headers"\} 1/);
});

t.test('limit annotations become sidecar flags; bad values warn and keep the default', async (t) => {
  const { config, warnings } = readProxyConfig({
    'config.weft.io/request-head-timeout': '5s',
    'config.weft.io/max-header-bytes': '32Ki',
    'config.weft.io/max-concurrent-streams': '100',
    'config.weft.io/merge-slashes': 'true',
    'config.weft.io/max-headers': 'lots',
    'config.weft.io/idle-timeout': '1ms',
  });
  t.same(config.limitArgs, ['--request-head-timeout', '5s', '--max-header-bytes', '32Ki', '--max-concurrent-streams', '100', '--merge-slashes']);
  t.same(warnings, [
    'annotation config.weft.io/max-headers: "lots" is not a whole number; using the sidecar\'s default',
    "annotation config.weft.io/idle-timeout: 1ms is out of range (1000 ms to 86400000 ms); using the sidecar's default",
  ]);
});

t.test('an injected pod\'s sidecar gets its limit annotations as flags', async (t) => {
  const srv = await startInjector({ host: '127.0.0.1', port: 0, certPem: serving.certPem + issuer.certPem, keyPem: serving.keyPem, log: () => {} });
  t.teardown(() => srv.close());
  const body = JSON.stringify(review(deploymentPod({ annotations: { 'config.weft.io/request-head-timeout': '5s', 'config.weft.io/merge-slashes': 'true' } })));
  const r = await request(srv.port, { headers: { 'content-type': 'application/json' }, body: (req) => req.end(body) });
  t.equal(r.status, 200);
  const patch = JSON.parse(Buffer.from((JSON.parse(r.text) as { response: { patch: string } }).response.patch, 'base64').toString('utf8')) as Array<{ op: string; path: string; value: unknown }>;
  const containers = patch.flatMap((op) => (Array.isArray(op.value) ? op.value : [op.value])) as Array<{ name?: string; args?: string[] }>;
  const proxy = containers.find((c) => c && c.name === 'weft-proxy');
  t.ok(proxy, 'the proxy container is added');
  t.match(proxy?.args?.join(' '), /--request-head-timeout 5s --merge-slashes/);
});

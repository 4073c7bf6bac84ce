// The data path against a control that hands out hand-written ServiceConfigs
// (real weft.proto, real TLS): filters, timeouts, fixed and invalid
// backends, BackendTLS refusal, mirrors, upstream failures with
// weft-proxy-error, NACK of a bad update, certificate renewal without
// dropping connections, and graceful drain.
import t from 'tap';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import type { BackendConfig, CompiledRule, Filter, MatchEntry, ServiceConfig } from '../../api/index.js';
import { startSidecar, type SidecarHandle } from '../index.js';
import { startFakeControl } from './helpers/fake-control.js';

const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;
const CONTROL = ip(1);
const MESHED = ip(2);
const PLAIN = ip(3);
const MIRROR = ip(4);
const CLIENT = ip(5);
const NOTHING = ip(6);

interface Seen {
  app: string;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

function app(name: string, host: string, seen: Seen[]): Promise<http.Server> {
  const s = http.createServer((req, res) => {
    seen.push({ app: name, method: req.method!, url: req.url!, headers: req.headers });
    const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? 0);
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        if (res.destroyed) return;
        const body = JSON.stringify({ app: name, url: req.url, headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json', 'x-from-app': name });
        res.end(body);
      }, delay);
    });
  });
  const wss = new WebSocketServer({ server: s });
  wss.on('connection', (ws, req) => ws.on('message', (m) => ws.send(`${name} ${req.headers['x-weft-peer-identity'] ?? ''} echo ${m.toString()}`)));
  return new Promise((r) => s.listen(8080, host, () => r(s)));
}

const meshedEp = { ip: MESHED, port: 8080, identity: { namespace: 'demo', serviceAccount: 'echo' }, ready: true, workload: 'echo' };
const backend = (name: string, endpoints: BackendConfig['endpoints'], extra: Partial<BackendConfig> = {}): BackendConfig => ({ key: `demo/${name}:80`, namespace: 'demo', name, port: 80, endpoints, ...extra });
const rule = (name: string, backends: CompiledRule['backends'], extra: Partial<CompiledRule> = {}): CompiledRule => ({
  route: { kind: 'HTTPRoute', namespace: 'demo', name: 'r', ruleIndex: 0, ruleName: name },
  filters: [],
  backends,
  ...extra,
});
const to = (b: string, weight = 1, filters: Filter[] = []) => ({ backend: `demo/${b}:80`, weight, filters });

function serviceConfig(): ServiceConfig {
  const rules: CompiledRule[] = [
    rule('hdr', [to('meshed', 1, [{ type: 'RequestHeaderModifier', set: [['x-backend', 'meshed']], add: [], remove: [] }])], {
      filters: [
        { type: 'RequestHeaderModifier', set: [['X-A', '1']], add: [['x-b', '2']], remove: ['x-c'] },
        { type: 'ResponseHeaderModifier', set: [['x-resp', 'yes']], add: [], remove: ['x-from-app'] },
      ],
    }),
    rule('rewrite', [to('plain')], { filters: [{ type: 'URLRewrite', hostname: 'rewritten.example', path: { type: 'ReplacePrefixMatch', value: '/new' } }] }),
    rule('slow', [to('meshed')], { timeouts: { backendRequestMs: 1000 } }),
    rule('fixed', [], { fixed: { status: 500, reason: 'ExtensionRef filter is not supported' } }),
    rule('invalid', [{ backend: '', weight: 1, filters: [], invalid: { status: 500, reason: 'backendRef demo/missing not found' } }]),
    rule('tls', [to('tls')]),
    rule('mirror', [to('plain')], { filters: [{ type: 'RequestMirror', backend: 'demo/mirror:80' }] }),
    rule('refused', [to('nothing')]),
    rule('meshed', [to('meshed')]),
    rule('wrong-id', [to('wrongid')]),
    rule('redirect', [], { filters: [{ type: 'RequestRedirect', scheme: 'https', statusCode: 302, path: { type: 'ReplacePrefixMatch', value: '/moved' } }] }),
    rule('flaky', [to('flaky')]),
  ];
  const paths: Array<[MatchEntry['path']['type'], string]> = [
    ['Exact', '/hdr'], ['PathPrefix', '/rewrite'], ['PathPrefix', '/slow'], ['Exact', '/fixed'], ['PathPrefix', '/invalid'], ['PathPrefix', '/tls'],
    ['PathPrefix', '/mirror'], ['PathPrefix', '/refused'], ['PathPrefix', '/meshed'], ['PathPrefix', '/wrong-id'], ['PathPrefix', '/old'],
    ['PathPrefix', '/flaky'],
  ];
  return {
    service: 'demo/echo', namespace: 'demo', name: 'echo', consumerNamespace: 'demo', clusterIP: '10.96.0.10', sessionSecret: '',
    backends: {
      'demo/meshed:80': backend('meshed', [meshedEp]),
      'demo/plain:80': backend('plain', [{ ip: PLAIN, port: 8080, ready: true }]),
      'demo/mirror:80': backend('mirror', [{ ip: MIRROR, port: 8080, ready: true }]),
      'demo/nothing:80': backend('nothing', [{ ip: NOTHING, port: 8080, ready: true }]),
      'demo/wrongid:80': backend('wrongid', [{ ...meshedEp, identity: { namespace: 'demo', serviceAccount: 'other' } }]),
      'demo/tls:80': backend('tls', [{ ip: PLAIN, port: 8080, ready: true }], { tls: { hostname: 'plain.example', policy: 'demo/tls-policy', system: true } }),
      'demo/echo:80': backend('echo', [meshedEp]),
      'demo/flaky:80': backend('flaky', [{ ip: NOTHING, port: 8080, ready: true }, { ip: PLAIN, port: 8080, ready: true }]),
    },
    ports: [{
      port: 80, targetPort: 8080, appProtocol: 'http', routeKind: 'HTTPRoute', defaultBackend: 'demo/echo:80', rules,
      matches: paths.map(([type, value], i) => ({ rule: i, path: { type, value }, headers: [], queryParams: [] })),
    }],
  };
}

t.test('the data path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-datapath-'));
  // Short leaves: the sidecars renew about every 3 s while the test runs.
  const control = await startFakeControl({ host: CONTROL, stateDir: join(dir, 'state'), leafLifetimeMs: 4_000 });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  control.setDirectory({ version: 'd1', services: [{ namespace: 'demo', name: 'echo', cluster_ip: '10.96.0.10', ports: [{ name: 'http', port: 80, target_port: 8080, app_protocol: 'http' }], meshed: true }] });
  control.setService(serviceConfig(), 'v1');

  const seen: Seen[] = [];
  const apps = await Promise.all([app('meshed', MESHED, seen), app('plain', PLAIN, seen), app('mirror', MIRROR, seen)]);
  t.teardown(() => apps.forEach((a) => (a.closeAllConnections(), a.close())));
  const logs: string[] = [];
  const common = { control: control.address, stateDir: control.stateDir, namespace: 'demo', log: (l: string) => logs.push(l) };
  const sidecars: SidecarHandle[] = [];
  t.teardown(() => Promise.all(sidecars.map((s) => s.close(100))));
  sidecars.push(await startSidecar({ ...common, podIP: MESHED, workload: 'echo', serviceAccount: 'echo' }));
  const client = await startSidecar({ ...common, podIP: CLIENT, workload: 'client', serviceAccount: 'client' });
  sidecars.push(client);
  await Promise.all(sidecars.map((s) => s.ready));

  const pool = new Pool(`http://${client.outboundAddress}`, { connections: 4 });
  t.teardown(() => pool.destroy());
  const req = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
    const r = await pool.request({ path, method: method as 'GET', headers: { host: 'echo', ...headers } });
    const text = await r.body.text();
    let json: { app: string; url: string; headers: Record<string, string> } | undefined;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, headers: r.headers, text, json };
  };

  await t.test('first use subscribes and waits for the config instead of failing', async (t) => {
    const r = await req('/meshed/first');
    t.equal(r.status, 200);
    t.equal(r.json?.app, 'meshed');
    t.ok(control.subscriptions.has('demo/echo'));
    t.ok(control.acks.some((a) => a.resource === 'service:demo/echo' && a.version === 'v1' && a.error === ''), 'ACKed');
  });

  await t.test('request and response header modifiers, rule then backend', async (t) => {
    const r = await req('/hdr', { 'x-c': 'gone', 'x-b': '1' });
    t.equal(r.status, 200);
    t.equal(r.json?.headers['x-a'], '1');
    t.equal(r.json?.headers['x-b'], '1,2');
    t.equal(r.json?.headers['x-c'], undefined);
    t.equal(r.json?.headers['x-backend'], 'meshed');
    t.equal(r.headers['x-resp'], 'yes');
    t.equal(r.headers['x-from-app'], undefined);
  });

  await t.test('URL rewrite of host and path prefix', async (t) => {
    const r = await req('/rewrite/a/b?q=1');
    t.equal(r.json?.app, 'plain');
    t.equal(r.json?.url, '/new/a/b?q=1');
    t.equal(r.json?.headers.host, 'rewritten.example');
  });

  await t.test('redirect with ReplacePrefixMatch and scheme https', async (t) => {
    const r = await req('/old/x?y=1');
    t.equal(r.status, 302);
    t.equal(r.headers.location, 'https://echo/moved/x?y=1');
  });

  await t.test('backendRequest timeout answers 504 and cancels the upstream request', async (t) => {
    const before = seen.length;
    const start = Date.now();
    const r = await req('/slow?delay=4000');
    t.equal(r.status, 504);
    t.match(r.headers['weft-proxy-error'], /backendRequest timeout of 1000 ms/);
    t.ok(Date.now() - start < 3000, 'answered at the timeout, not when the app answered');
    t.equal(seen.length, before + 1, 'the app saw the request');
    const fast = await req('/slow?delay=0');
    t.equal(fast.status, 200, `a fast one passes (${fast.status} ${fast.headers['weft-proxy-error'] ?? ''})`);
  });

  await t.test('fixed and invalid backends answer 500; BackendTLS refuses with 503, never plaintext', async (t) => {
    const f = await req('/fixed');
    t.equal(f.status, 500);
    t.match(f.headers['weft-proxy-error'], /ExtensionRef/);
    const i = await req('/invalid');
    t.equal(i.status, 500);
    t.match(i.headers['weft-proxy-error'], /missing/);
    const before = seen.filter((s) => s.url.startsWith('/tls')).length;
    const tls = await req('/tls');
    t.equal(tls.status, 503);
    t.match(tls.headers['weft-proxy-error'], /BackendTLSPolicy demo\/tls-policy/);
    t.equal(seen.filter((s) => s.url.startsWith('/tls')).length, before, 'nothing was sent');
  });

  await t.test('no matching rule is 404', async (t) => {
    const r = await req('/nope');
    t.equal(r.status, 404);
    t.ok(r.headers['weft-proxy-error']);
  });

  await t.test('a mirror gets a copy, its response discarded', async (t) => {
    const r = await req('/mirror/x', { 'x-m': '1' }, 'POST');
    t.equal(r.json?.app, 'plain');
    const deadline = Date.now() + 2000;
    while (!seen.some((s) => s.app === 'mirror' && s.url === '/mirror/x') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    const m = seen.find((s) => s.app === 'mirror' && s.url === '/mirror/x');
    t.ok(m, 'mirror saw the request');
    t.equal(m?.headers['x-m'], '1');
  });

  await t.test('P2C steers around an endpoint that refuses connections', async (t) => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await req('/flaky/x')).status);
    const failed = statuses.filter((s) => s !== 200).length;
    t.ok(failed <= 3, `${failed} of 40 failed (${statuses.join(' ')})`);
  });

  await t.test('upstream failures say why', async (t) => {
    const r = await req('/refused');
    t.equal(r.status, 503);
    t.match(r.headers['weft-proxy-error'], /connection refused/);
    const w = await req('/wrong-id');
    t.equal(w.status, 502);
    t.ok(w.headers['weft-proxy-error'], `identity refused: ${w.headers['weft-proxy-error']}`);
  });

  await t.test('a bad update is NACKed and the last good config keeps serving', async (t) => {
    const bad = serviceConfig() as unknown as { ports: Array<{ matches: Array<{ path: { type: string; value: string } }> }> };
    bad.ports[0]!.matches[0]!.path = { type: 'RegularExpression', value: '(' };
    control.pushRaw('demo/echo', JSON.stringify(bad), 'v2');
    const deadline = Date.now() + 2000;
    while (!control.acks.some((a) => a.version === 'v2') && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    const nack = control.acks.find((a) => a.version === 'v2');
    t.match(nack?.error, /invalid regular expression/);
    t.equal((await req('/hdr')).json?.headers['x-a'], '1');
    control.setService(serviceConfig(), 'v3');
  });

  await t.test('certificates renew without dropping pooled connections', async (t) => {
    const n0 = control.certified;
    const deadline = Date.now() + 8000;
    while (control.certified < n0 + 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    t.ok(control.certified >= n0 + 2, `renewed (${control.certified - n0} new certificates)${control.certified < n0 + 2 ? `\n${logs.join('\n')}` : ''}`);
    for (let i = 0; i < 10; i++) t.equal((await req('/meshed/after-renewal')).status, 200);
    const cfg = (await (await fetch(`http://${client.adminAddress}/config`)).json()) as { certificate: { notAfter: string } };
    t.ok(Date.parse(cfg.certificate.notAfter) > Date.now(), 'current certificate valid');
  });

  await t.test('external hosts are forwarded as plain HTTP', async (t) => {
    const r = await req('/ext', { host: `${PLAIN}:8080` });
    t.equal(r.json?.app, 'plain');
    const m = await (await fetch(`http://${client.adminAddress}/metrics`)).text();
    t.match(m, /weft_requests_total\{[^}]*dst_service="external"[^}]*status_code="200"/);
    t.notMatch(m, new RegExp(PLAIN.replace(/\./g, '\\.') + '[^}]*dst_service="external"'), 'no hostnames in labels');
  });

  await t.test('a WebSocket upgrade becomes a tunnel across the mesh hop', async (t) => {
    const ws = new WebSocket(`ws://${client.outboundAddress}/meshed/ws`, { headers: { host: 'echo' } });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hello'));
      ws.on('message', (m) => resolve(m.toString()));
      ws.on('error', reject);
    });
    ws.close();
    t.equal(reply, 'meshed spiffe://cluster.local/ns/demo/sa/client echo hello');
    const refused = new WebSocket(`ws://${client.outboundAddress}/nope`, { headers: { host: 'echo' } });
    const status = await new Promise<number>((resolve) => {
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      refused.on('error', () => resolve(-1));
    });
    t.equal(status, 404, 'an upgrade no rule matches is answered like any request');
  });

  await t.test('oversized headers get 431, a request to the sidecar itself 508', async (t) => {
    const big = await fetch(`http://${client.outboundAddress}/meshed/x`, { headers: { host: 'echo', 'x-big': 'a'.repeat(20_000) } });
    t.equal(big.status, 431);
    const loop = await req('/x', { host: client.outboundAddress });
    t.equal(loop.status, 508);
  });

  await t.test('graceful close lets an in-flight request finish', async (t) => {
    const slow = req('/meshed/drain?delay=300');
    await new Promise((res) => setTimeout(res, 50));
    const closing = client.close(3000);
    t.equal((await fetch(`http://${client.adminAddress}/ready`)).status, 503, 'not ready while draining');
    const r = await slow;
    t.equal(r.status, 200);
    await closing;
  });
});

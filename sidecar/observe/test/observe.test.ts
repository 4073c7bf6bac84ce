// The completed-request observers: inactive (free) until something listens;
// the tap is bounded per subscriber (a rate budget, then a buffer limit), the
// access log buffers off the request path and drops what does not fit.
import t, { type Test } from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { RequestObservers, type RequestRecord } from '../observe.js';
import { parseTapQuery, TapHub } from '../tap.js';
import { AccessLog, accessLogLine } from '../access-log.js';

const self = { namespace: 'demo', workload: 'client', serviceAccount: 'client', trustDomain: 'cluster.local' };
const rec: RequestRecord = {
  time: Date.now(), direction: 'outbound', source: 'spiffe://cluster.local/ns/demo/sa/client', destination: 'demo/web', service: 'demo/web',
  route: '', backend: 'demo/web', endpoint: '127.0.0.9:8080', method: 'GET', authority: 'web.demo', path: '/a', status: 200, grpcStatus: '',
  bytesIn: 0, bytesOut: 5, durationMs: 1.5, upstreamMs: 1.2, proxyError: '', traceId: '',
};

t.test('observers are inactive with nothing configured and while nobody taps', async (t) => {
  const tap = new TapHub();
  const obs = new RequestObservers(self, { tap });
  t.equal(obs.active, false);
  t.equal(obs.begin({ traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` }, 'outbound')?.traceId, '1'.repeat(32), 'begin reads the trace id for logs');
  obs.emit(rec);
  t.equal(obs.emitted, 0, 'an inactive emit does nothing');
  t.equal(new RequestObservers(self, { accessLog: new AccessLog({ format: 'json', out: new Writable({ write: (_c, _e, cb) => cb() }) }) }).active, true);
});

async function tapServer(t: Test, hub: TapHub, query: string): Promise<{ lines: () => Array<Record<string, unknown>>; res: http.IncomingMessage }> {
  const srv = http.createServer((req, res) => {
    const q = parseTapQuery(new URL(req.url!, 'http://x').searchParams);
    if ('error' in q) throw new Error(q.error);
    hub.subscribe(res, q.filter, q.max);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { srv.closeAllConnections(); srv.close(() => r()); }));
  let text = '';
  const res = await new Promise<http.IncomingMessage>((r) => http.get(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/tap?${query}`, r));
  res.setEncoding('utf8').on('data', (c: string) => (text += c));
  await new Promise<void>((r) => { const i = setInterval(() => { if (text.includes('"kind":"tap"')) { clearInterval(i); r(); } }, 5); });
  return { lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), res };
}

t.test('a tap subscriber gets matching records, at most its rate a second, and is told how many it missed', async (t) => {
  const hub = new TapHub({ rate: 5 });
  const obs = new RequestObservers(self, { tap: hub });
  const { lines } = await tapServer(t, hub, 'service=demo/web');
  t.equal(obs.active, true, 'a subscriber turns the observers on');
  for (let i = 0; i < 20; i++) obs.emit({ ...rec, path: `/${i}` });
  obs.emit({ ...rec, service: 'demo/other' });
  await new Promise<void>((r) => { const i = setInterval(() => { if (lines().some((l) => l.kind === 'dropped')) { clearInterval(i); r(); } }, 20); });
  const reqs = lines().filter((l) => l.kind === 'request');
  t.same(reqs.map((l) => l.path), ['/0', '/1', '/2', '/3', '/4'], 'the first 5 of the second');
  t.same(lines().find((l) => l.kind === 'dropped'), { kind: 'dropped', sampled: 15, dropped: 0 });
  t.equal(hub.sampledTotal, 15);
});

t.test('a tap ends after max records and the observers turn off again', async (t) => {
  const hub = new TapHub();
  const obs = new RequestObservers(self, { tap: hub });
  const { res } = await tapServer(t, hub, 'max=2&direction=outbound');
  const ended = new Promise((r) => res.once('end', r));
  obs.emit(rec);
  obs.emit(rec);
  await ended;
  t.equal(obs.active, false);
  t.equal(hub.subscribers, 0);
});

t.test('tap query errors name the parameter', async (t) => {
  t.same(parseTapQuery(new URLSearchParams('direction=up')), { error: 'direction: "up" is not outbound or inbound' });
  t.same(parseTapQuery(new URLSearchParams('service=web')), { error: 'service: "web" is not namespace/name' });
  t.same(parseTapQuery(new URLSearchParams('max=0')), { error: 'max: "0" is not a positive integer' });
});

t.test('the access log writes one JSON line per record on a later turn, and drops and counts when its buffer is full', async (t) => {
  const chunks: string[] = [];
  let release: (() => void) | undefined;
  // An output that takes the first write, then pushes back until released.
  const out = new Writable({
    highWaterMark: 1,
    write(c: Buffer, _e, cb) {
      chunks.push(c.toString());
      if (chunks.length === 1) release = cb;
      else cb();
    },
  });
  let dropped = 0;
  const log = new AccessLog({ format: 'json', out, maxBuffer: 3, onDrop: (n) => (dropped += n) });
  log.write({ ...rec, traceId: 'abc' });
  t.equal(chunks.length, 0, 'nothing is written on the request path');
  await new Promise((r) => setImmediate(r));
  t.equal(chunks.length, 1);
  const line = JSON.parse(chunks[0]!.trim()) as Record<string, unknown>;
  t.match(line, { direction: 'outbound', source: rec.source, destination: { service: 'demo/web', backend: 'demo/web', endpoint: '127.0.0.9:8080', workload: 'demo/web' }, method: 'GET', status: 200, traceId: 'abc', durationMs: 1.5, upstreamMs: 1.2 });
  for (let i = 0; i < 5; i++) log.write(rec);
  await new Promise((r) => setImmediate(r));
  t.equal(dropped, 2, 'the output pushes back: 3 wait, 2 are dropped');
  release!();
  await new Promise((r) => setTimeout(r, 20));
  t.equal(chunks.slice(1).join('').trim().split('\n').length, 3);
  t.equal(accessLogLine(rec).includes('\n'), false);
});

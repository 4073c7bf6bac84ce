// Limits of a sidecar's listeners in a real mesh (issue 16 item 4), with the
// defaults: 200 slow request heads (one byte a second) are closed at the
// 10 s request-head timeout with 408; a flood of 3,000 connections and a
// 64 MiB streamed body still pass, with the sidecar's memory bounded.
//
// Needs the head guard (sidecar/listen/head-guard.ts) wired into the outbound
// listener; until then the slow-heads case fails (the heads stay open).
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { configDir, docs, echoWorkload, metricSamples, service, startMesh, waitFor, httpRequest, type EchoResponse } from './helpers/mesh.js';

const NS = 'limitsdemo';
const dir = configDir(t, {
  'services.yaml': docs(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`, service({ name: 'web', namespace: NS, selector: { app: 'web' } })),
  'workloads.yaml': docs(echoWorkload({ name: 'client', namespace: NS, calls: ['web'] }), echoWorkload({ name: 'web', namespace: NS, labels: { app: 'web' } })),
});
const mesh = await startMesh(t, dir);
t.teardown(() => mesh.stop());
const client = mesh.pod('client-0');
const URL_ = `http://web.${NS}/`;

function rssMiB(pid: number | null): number {
  if (!pid) return 0;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

await waitFor('web to answer through the mesh', async () => (await httpRequest(URL_, { proxy: `${client.podIP}:7001` })).status === 200, { timeoutMs: 30_000 });

t.test('200 slow request heads are closed at the 10 s head timeout with 408', async (t) => {
  const head = `GET ${URL_} HTTP/1.1\r\nhost: web.${NS}\r\nx-slow: ${'a'.repeat(40)}\r\n\r\n`; // ~90 s at one byte a second
  const t0 = Date.now();
  const results = await Promise.all(
    Array.from({ length: 200 }, () =>
      new Promise<{ ms: number; got: string }>((resolve) => {
        const c = net.connect(7001, client.podIP);
        let i = 0;
        let got = '';
        const iv = setInterval(() => c.writable && i < head.length && c.write(head[i++]!), 1000);
        const give = setTimeout(() => c.destroy(), 30_000);
        c.on('data', (d) => (got += d.toString()));
        c.on('error', () => {});
        c.on('close', () => {
          clearInterval(iv);
          clearTimeout(give);
          resolve({ ms: Date.now() - t0, got });
        });
      }),
    ),
  );
  const late = results.filter((r) => r.ms > 15_000);
  t.equal(late.length, 0, `all closed by 15 s (slowest ${Math.max(...results.map((r) => r.ms))} ms)`);
  t.ok(results.every((r) => r.ms >= 9_000), 'none before the timeout');
  t.ok(results.every((r) => /^HTTP\/1\.1 408 /.test(r.got)), '408 Request Timeout');
  const metrics = await httpRequest(`${client.adminUrl.replace(/\/$/, '')}/metrics`);
  const rejected = metricSamples(metrics.body, 'weft_limit_rejections_total').filter((s) => s.labels.limit === 'request_head_timeout');
  t.ok(rejected.reduce((a, s) => a + s.value, 0) >= 200, 'counted in weft_limit_rejections_total{limit="request_head_timeout"}');
});

t.test('a flood of 3,000 connections still passes, memory bounded', async (t) => {
  const before = rssMiB(client.sidecarPid);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const one = () =>
    new Promise<number>((resolve) => {
      const req = http.request({ host: client.podIP, port: 7001, path: URL_, headers: { host: `web.${NS}` }, agent, timeout: 30_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(0));
      req.end();
    });
  const statuses = await Promise.all(Array.from({ length: 3000 }, one));
  const ok = statuses.filter((s) => s === 200).length;
  t.equal(ok, 3000, `${ok}/3000 answered 200`);
  const after = rssMiB(client.sidecarPid);
  t.comment(`client sidecar RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB`);
  t.ok(after < before + 400, 'sidecar memory stays bounded');
});

t.test('a 64 MiB streamed body still passes', async (t) => {
  const total = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const got = await new Promise<EchoResponse>((resolve, reject) => {
    const req = http.request({ host: client.podIP, port: 7001, method: 'POST', path: URL_, headers: { host: `web.${NS}`, 'transfer-encoding': 'chunked' }, agent: false, timeout: 60_000 }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (b += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(b) as EchoResponse);
        } catch (e) {
          reject(new Error(`${res.statusCode}: ${b.slice(0, 200)} (${(e as Error).message})`));
        }
      });
    });
    req.on('error', reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.equal(got.bodyBytes, total, 'the app received all 64 MiB');
});

// npm run bench:h1 — the hop variants of issue 13 item 3, measured side by side:
// a two-hop chain on loopback, wrk → proxy A (edge) → mTLS → proxy B (peer) → nginx app,
// both proxies built from sidecar/http1, the hop between them one of
//   h1   HTTP/1.1 over a pool of mTLS connections, writes corked per event-loop turn
//   mux  weft-mux/1: all requests' heads and body chunks as frames on ONE mTLS connection
//   h2   node:http2 on one mTLS session
// plus the HAProxy pair for scale. Prints req/s and CPU µs per request per proxy
// (utime+stime from /proc/PID/stat) and the load average around every round.
//
// Knobs: BENCH_H1_ROUNDS (3), BENCH_H1_SECONDS (10), BENCH_H1_VARIANTS (h1,mux,h2,haproxy),
// BENCH_H1_CONNS (50), BENCH_OUT (default bench/h1-engine-results.md).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts, startApp, startHaproxyPair, checkChain, ADDR, HOST_HEADER, type Chain } from './chains.js';
import { start, stopAll, killAllSync, waitListening, type Proc } from './procs.js';
import { cpuSplitMs, rssMb } from './procstat.js';
import { runWrk } from './wrk.js';
import { median, fmt, envNum } from './stats.js';
import type { Config } from './h1-proxy.js';

const log = (s: string): void => void process.stderr.write(s + '\n');
const PROXY = join(process.cwd(), 'dist', 'bench', 'h1-proxy.js');
const HOP_NAME = 'hop.bench.internal';

async function startVariant(dir: string, certs: ReturnType<typeof makeCerts>, hop: Config['hop'], i: number): Promise<Chain> {
  const edge = { host: '127.0.96.1', port: 8100 + i };
  const peer = { host: '127.0.96.2', port: 8500 + i };
  const common = { hop, serverName: HOP_NAME };
  const peerCfg: Config = { ...common, role: 'peer', listen: peer, upstream: ADDR.app, certs: { ca: certs.caFile, cert: certs.serverCert, key: certs.serverKey } };
  const edgeCfg: Config = { ...common, role: 'edge', listen: edge, upstream: peer, certs: { ca: certs.caFile, cert: certs.clientCert, key: certs.clientKey } };
  const nodeArgs = (process.env.BENCH_H1_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
  const p2: Proc = start(`h1-${hop}-peer`, process.execPath, [...nodeArgs, PROXY, JSON.stringify(peerCfg)], join(dir, `h1-${hop}-peer.log`));
  await waitListening(p2, peer.host, peer.port);
  const p1: Proc = start(`h1-${hop}-edge`, process.execPath, [...nodeArgs, PROXY, JSON.stringify(edgeCfg)], join(dir, `h1-${hop}-edge.log`));
  await waitListening(p1, edge.host, edge.port);
  return { name: `engine, hop ${hop}`, host: edge.host, port: edge.port, hostHeader: HOST_HEADER, proxies: [{ role: 'A', proc: p1 }, { role: 'B', proc: p2 }] };
}

interface Row {
  chain: Chain;
  rps: number[];
  cpu: number[][];
  user: number[][];
  errors: number;
  rss: number[];
}

async function main(): Promise<void> {
  const rounds = envNum('BENCH_H1_ROUNDS', 3);
  const seconds = envNum('BENCH_H1_SECONDS', 10);
  const conns = envNum('BENCH_H1_CONNS', 50);
  const want = (process.env.BENCH_H1_VARIANTS ?? 'h1,mux,h2,haproxy').split(',').map((s) => s.trim());
  const work = mkdtempSync(join(tmpdir(), 'weft-h1-bench-'));
  const loads: string[] = [`start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`];
  try {
    const certs = makeCerts(join(work, 'certs'));
    await startApp(work, []);
    const chains: Chain[] = [];
    let i = 0;
    for (const v of want) {
      if (v === 'haproxy') chains.push(await startHaproxyPair(work, certs));
      else chains.push(await startVariant(work, certs, v as Config['hop'], i++));
    }
    for (const c of chains) await checkChain(c);
    const rows: Row[] = chains.map((chain) => ({ chain, rps: [], cpu: chain.proxies.map(() => []), user: chain.proxies.map(() => []), errors: 0, rss: chain.proxies.map(() => 0) }));
    log(`bench h1: warm-up 2 s each`);
    for (const r of rows) await runWrk(`http://${r.chain.host}:${r.chain.port}/`, HOST_HEADER, { seconds: 2, conns });
    for (let k = 0; k < rounds; k++) {
      loads.push(`round ${k + 1} ${loadavg()[0]!.toFixed(2)}`);
      for (let j = 0; j < rows.length; j++) {
        const r = rows[(j + k) % rows.length]!;
        const pids = r.chain.proxies.map((p) => p.proc.pid);
        const before = pids.map(cpuSplitMs);
        const w = await runWrk(`http://${r.chain.host}:${r.chain.port}/`, HOST_HEADER, { seconds, conns });
        const after = pids.map(cpuSplitMs);
        r.rps.push(w.rps);
        r.errors += w.non2xx + w.socketErrors;
        pids.forEach((pid, n) => {
          const u = after[n]!.user - before[n]!.user;
          const s = after[n]!.sys - before[n]!.sys;
          r.cpu[n]!.push(((u + s) / w.requests) * 1000);
          r.user[n]!.push((u / w.requests) * 1000);
          r.rss[n] = Math.max(r.rss[n]!, rssMb(pid));
        });
        log(`  ${r.chain.name.padEnd(16)} ${fmt(w.rps).padStart(8)} req/s  CPU µs/req ${r.cpu.map((c) => fmt(c.at(-1)!, 1)).join(' / ')}  load ${loadavg()[0]!.toFixed(2)}`);
      }
    }
    loads.push(`end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    const hap = rows.find((r) => r.chain.name === 'HAProxy pair');
    const L: string[] = [
      '# HTTP/1.1 engine and hop variants (bench/h1-engine.ts)',
      '',
      `wrk -t1 -c${conns} -d${seconds}s through proxy A (plain HTTP/1.1 in) → mTLS (TLS 1.3, client certificate) → proxy B (adds the caller's identity) → nginx app (100-byte body); median of ${rounds} interleaved rounds. CPU: utime+stime per proxy process from /proc/PID/stat, µs per request (user part in parentheses). Node ${process.version}. ${new Date().toISOString()}.`,
      '',
      `Load average (1 min): ${loads.join('; ')}. The machine is shared with other work unless the start figure is near 0: treat the figures as relative.`,
      '',
      '| chain | req/s | × HAProxy | CPU µs/req A / B (user) | CPU ÷ HAProxy | VmRSS MB A / B | errors |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    ];
    for (const r of rows) {
      const m = median(r.rps);
      const c = r.cpu.map(median);
      const hc = hap ? hap.cpu.map(median).reduce((a, b) => a + b, 0) : NaN;
      L.push(`| ${r.chain.name} | ${fmt(m)} | ${hap ? fmt(m / median(hap.rps), 2) : '–'} | ${c.map((x, n) => `${fmt(x, 1)} (${fmt(median(r.user[n]!), 1)})`).join(' / ')} | ${fmt(c.reduce((a, b) => a + b, 0) / hc, 2)} | ${r.rss.map((x) => fmt(x, 0)).join(' / ')} | ${r.errors} |`);
    }
    const md = L.join('\n') + '\n';
    process.stdout.write(md);
    writeFileSync(process.env.BENCH_OUT ?? join(process.cwd(), 'bench', 'h1-engine-results.md'), md);
  } finally {
    await stopAll();
    if (process.env.BENCH_KEEP) log(`bench h1: kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

process.on('exit', killAllSync);
main().then(
  () => process.exit(0),
  (e: Error) => {
    log(`bench h1: ${e.stack ?? e.message}`);
    killAllSync();
    process.exit(1);
  },
);

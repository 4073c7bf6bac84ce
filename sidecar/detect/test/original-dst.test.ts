// SO_ORIGINAL_DST against the real kernel: a private network namespace with
// iptables and ip6tables REDIRECT rules, a listener on 7001 (dual stack), and
// connections to virtual addresses. Needs root (the e2e bed's condition too).
import t from 'tap';
import net from 'node:net';
import { execFileSync, execFile } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { originalDst, originalDstUnavailable } from '../original-dst.js';

const DIST = fileURLToPath(new URL('../../../dist/sidecar/detect/original-dst.js', import.meta.url));
const HOST = `127.${50 + (process.pid % 150)}.${(process.pid >> 6) % 250}.${1 + ((process.pid * 3) % 250)}`;

t.test('koffi and libc load here', async (t) => {
  t.equal(originalDstUnavailable(), undefined);
});

t.test('a connection that was not redirected has no original destination', async (t) => {
  const seen: Array<ReturnType<typeof originalDst>> = [];
  const server = net.createServer((s) => {
    seen.push(originalDst(s));
    s.destroy();
  });
  server.listen(0, HOST);
  await once(server, 'listening');
  const c = net.connect((server.address() as net.AddressInfo).port, HOST);
  c.on('error', () => {});
  await once(c, 'close');
  server.close();
  t.same(seen, [undefined]);
  t.equal(originalDst(new net.Socket()), undefined, 'a socket without a handle');
});

t.test('REDIRECTed connections (IPv4 and IPv6) report where they were going', async (t) => {
  const ns = `weft-odt-${process.pid}`;
  const sh = (...a: string[]) => execFileSync('ip', a, { stdio: 'pipe' });
  sh('netns', 'add', ns);
  t.teardown(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));
  sh('-n', ns, 'link', 'set', 'lo', 'up');
  sh('-n', ns, 'link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
  sh('-n', ns, 'link', 'set', 'd0', 'up');
  sh('-n', ns, 'link', 'set', 'd1', 'up');
  sh('-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'd0');
  sh('-n', ns, 'addr', 'add', 'fd00:77::1/64', 'dev', 'd0', 'nodad');
  sh('-n', ns, 'route', 'add', 'default', 'dev', 'd0');
  sh('-n', ns, '-6', 'route', 'add', 'default', 'dev', 'd0');
  execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.250.0.5', '-j', 'REDIRECT', '--to-ports', '7001']);
  execFileSync('ip', ['netns', 'exec', ns, 'ip6tables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', 'fd00:99::5', '-j', 'REDIRECT', '--to-ports', '7001']);
  const program = `
    import net from 'node:net';
    import { originalDst } from ${JSON.stringify(DIST)};
    const out = [];
    const srv = net.createServer((s) => { out.push({ local: s.localAddress, dst: originalDst(s) ?? null }); s.destroy(); });
    srv.listen(7001, '::', async () => {
      for (const [h, p] of [['10.250.0.5', 8080], ['fd00:99::5', 9090], ['10.77.0.1', 7001], ['fd00:77::1', 7001]]) {
        await new Promise((r) => net.connect(p, h).on('close', r).on('error', r));
      }
      srv.close();
      console.log(JSON.stringify(out));
    });`;
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile('ip', ['netns', 'exec', ns, 'node', '--input-type=module', '-e', program], { timeout: 20_000 }, (e, so, se) => (e ? reject(new Error(`${e.message}\n${se}`)) : resolve(so))),
  );
  const seen = JSON.parse(stdout) as Array<{ local: string; dst: { address: string; port: number } | null }>;
  t.same(
    seen.map((s) => s.dst),
    [{ address: '10.250.0.5', port: 8080 }, { address: 'fd00:99::5', port: 9090 }, null, null],
  );
});

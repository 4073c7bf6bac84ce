// `weft init` against real iptables, in a private network namespace: apply
// twice (one set of rules), IPv6, --list, --remove twice, and the errors a user
// sees without the capability or without iptables. Needs root and a build
// (npm test builds first).
import t from 'tap';
import { execFileSync, execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const WEFT = fileURLToPath(new URL('../../../dist/cli/weft.js', import.meta.url));
const ns = `weft-ipt-${process.pid}`;
execFileSync('ip', ['netns', 'add', ns]);
t.teardown(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));

function inNs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile('ip', ['netns', 'exec', ns, ...argv], { env, timeout: 20_000 }, (e, stdout, stderr) =>
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr }),
    ),
  );
}
const weft = (...args: string[]) => inNs(['node', WEFT, 'init', ...args]);
const nat = async (prog = 'iptables') => (await inNs([prog, '-t', 'nat', '-S'])).stdout;

t.test('applying twice leaves exactly one set of rules', async (t) => {
  const a = await weft('--skip-outbound-ports', '5432', '--skip-inbound-ports', '9000');
  t.equal(a.code, 0, a.stderr);
  t.match(a.stdout, /outbound TCP → :7001 \(uid 2102 exempt\), inbound TCP → :7002/);
  const first = await nat();
  const b = await weft('--skip-outbound-ports', '5432', '--skip-inbound-ports', '9000');
  t.equal(b.code, 0, b.stderr);
  t.equal(await nat(), first, 'same rules after the second run');
  t.equal(first.match(/-j WEFT_OUTPUT/g)?.length, 1);
  t.equal(first.match(/-j WEFT_PREROUTING/g)?.length, 1);
  t.match(first, /--dports 7001,7002,7090,9000/);
  t.match(first, /--dports 5432 /);
  const listed = await weft('--list');
  t.equal(listed.stdout.trim().split('\n').length, first.split('\n').filter((l) => l.includes('WEFT_')).length);
});

t.test('changed options replace the rules, still one jump', async (t) => {
  await weft('--outbound-port', '15001', '--proxy-uid', '1337');
  const rules = await nat();
  t.match(rules, /--to-ports 15001/);
  t.match(rules, /--uid-owner 1337/);
  t.notMatch(rules, /--to-ports 7001|5432/);
  t.equal(rules.match(/-j WEFT_OUTPUT/g)?.length, 1);
});

t.test('IPv6 with ip6tables', async (t) => {
  const r = await weft('--ipv6');
  t.equal(r.code, 0, r.stderr);
  const six = await nat('ip6tables');
  t.match(six, /-A WEFT_OUTPUT -d ::1\/128 .* -j RETURN/);
  t.equal(six.match(/-j WEFT_OUTPUT/g)?.length, 1);
  const rm = await weft('--ipv6', '--remove');
  t.equal(rm.code, 0);
  t.notMatch(await nat('ip6tables'), /WEFT_/);
});

t.test('--remove cleans up and is safe to repeat', async (t) => {
  for (let i = 0; i < 2; i++) {
    const r = await weft('--remove');
    t.equal(r.code, 0, r.stderr);
    t.notMatch(await nat(), /WEFT_/);
  }
});

t.test('clear errors: no capability, no iptables, bad flags', async (t) => {
  const noCap = await inNs(['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', 'node', WEFT, 'init']);
  t.equal(noCap.code, 1);
  t.match(noCap.stderr, /needs the NET_ADMIN capability/);
  const noIpt = await inNs(['env', 'PATH=/nonexistent', process.execPath, WEFT, 'init']);
  t.equal(noIpt.code, 1);
  t.match(noIpt.stderr, /iptables not found in PATH/);
  const bad = await weft('--skip-outbound-ports', 'mysql');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /skip-outbound-ports: "mysql" is not a port/);
  t.notMatch(await nat(), /WEFT_/, 'nothing half-installed');
});

// `weft control` as a user runs it: the built CLI, real files, SIGTERM.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const cli = join(process.cwd(), 'dist', 'cli', 'weft.js');

t.test('weft control serves, writes STATE, and exits 0 on SIGTERM', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  const state = join(mkdtempSync(join(tmpdir(), 'weft-state-')), 'state');
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(state, '..'), { recursive: true, force: true });
  });
  writeFileSync(
    join(dir, 'svc.yaml'),
    'apiVersion: v1\nkind: Service\nmetadata: { name: a, namespace: default }\nspec:\n  selector: { app: a }\n  ports: [{ port: 80, targetPort: 8080 }]\n',
  );
  const child = spawn(process.execPath, [cli, 'control', '--config-dir', dir, '--state-dir', state, '--listen', `${ip}:0`, '--admin', `${ip}:0`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no address line; stderr: ${err}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /control: grpc (\S+) admin (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[0]);
      }
    });
  });
  const [, grpcAddr, adminAddr] = /control: grpc (\S+) admin (\S+)/.exec(line)!;
  t.ok(grpcAddr!.startsWith(`${ip}:`));
  const ready = await fetch(`http://${adminAddr}/ready`);
  t.equal(ready.status, 200);
  const res = (await (await fetch(`http://${adminAddr}/resources`)).json()) as { resources: { metadata: { name: string } }[] };
  t.same(res.resources.map((r) => r.metadata.name), ['a']);
  t.equal(readFileSync(join(state, 'control-address'), 'utf8').trim(), grpcAddr);
  for (const f of ['bootstrap-token', 'session-key', 'ca/anchor.key', 'ca/issuer.key']) {
    t.equal(statSync(join(state, f)).mode & 0o777, 0o600, `${f} is 0600`);
  }
  const t0 = Date.now();
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  t.equal(code, 0, 'exit 0');
  t.ok(Date.now() - t0 < 3000, 'stops promptly');
});

t.test('weft control without --state-dir is a usage error', async (t) => {
  const child = spawn(process.execPath, [cli, 'control'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = await once(child, 'exit');
  t.equal(code, 2);
  t.match(err, /--state-dir is required/);
});

t.test('weft control --default-inbound-policy: a bad value is refused before anything starts', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'weft-state-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const child = spawn(process.execPath, [cli, 'control', '--state-dir', join(state, 's'), '--default-inbound-policy', 'closed', '--listen', `${ip}:0`, '--admin', `${ip}:0`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  t.equal(code, 2);
  t.match(err, /--default-inbound-policy: "closed" is not one of all-unauthenticated, all-authenticated, deny, audit/);
});

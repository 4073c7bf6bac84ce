// `weft sidecar` as a process: flags and Kubernetes env defaults, /ready once
// it has a certificate and the directory, graceful exit on SIGTERM and on
// POST /shutdown.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeControl } from './helpers/fake-control.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WEFT = join(REPO, 'dist', 'cli', 'weft.js');
const A = 10 + Math.floor(Math.random() * 200);
const B = 10 + Math.floor(Math.random() * 200);
const ip = (n: number) => `127.${A}.${B}.${n}`;

async function waitReady(admin: string, ms = 20_000): Promise<number> {
  const start = Date.now();
  for (;;) {
    try {
      const r = await fetch(`http://${admin}/ready`);
      if (r.status === 200) return Date.now() - start;
    } catch {
      // not listening yet
    }
    if (Date.now() - start > ms) throw new Error('sidecar never became ready');
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('weft sidecar runs, reports ready, and drains on SIGTERM and POST /shutdown', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sidecar-cli-'));
  const control = await startFakeControl({ host: ip(1), stateDir: join(dir, 'state') });
  control.setDirectory({ version: 'd1', services: [] });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const how of ['SIGTERM', 'POST /shutdown'] as const) {
    const started = Date.now();
    const child = spawn(process.execPath, [WEFT, 'sidecar', '--control', control.address, '--state-dir', control.stateDir, '--workload', 'cli', '--labels', 'app=cli,tier=x', '--app-ports', '8080'], {
      env: { ...process.env, POD_IP: ip(2), POD_NAMESPACE: 'demo', POD_NAME: 'cli-abc12', SERVICE_ACCOUNT: 'cli-sa' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    await waitReady(`${ip(2)}:7090`);
    t.comment(`${how}: process start to /ready ${Date.now() - started} ms`);
    const hello = control.hellos.at(-1)!;
    t.match(hello, { namespace: 'demo', workload: 'cli', service_account: 'cli-sa', pod_ip: ip(2), pod_name: 'cli-abc12', labels: { app: 'cli', tier: 'x' }, app_ports: [8080] });
    if (how === 'SIGTERM') child.kill('SIGTERM');
    else t.equal((await fetch(`http://${ip(2)}:7090/shutdown`, { method: 'POST' })).status, 202);
    t.equal(await exited, 0, `exit 0 after ${how}`);
    t.match(err, /sidecar stopped/);
  }
});

t.test('weft sidecar: a missing flag is a usage error', async (t) => {
  const child = spawn(process.execPath, [WEFT, 'sidecar', '--state-dir', '/nonexistent'], { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 2);
  t.match(err, /--pod-ip is required/);
});

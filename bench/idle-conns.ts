// Child of the runtime matrix: opens N keep-alive connections to a proxy,
// sends one request on each and reads its answer, then holds them idle.
// Prints "ready <open>" once all answered; on a line "count" on stdin prints
// "open <n>" (how many are still open); exits when stdin closes.
//
// node dist/bench/idle-conns.js host port hostHeader n
import net from 'node:net';
import { createInterface } from 'node:readline';

const [host, portS, hostHeader, nS] = process.argv.slice(2);
const port = Number(portS);
const n = Number(nS);
const req = Buffer.from(`GET / HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
let open = 0;
let answered = 0;
let failed = 0;
const BATCH = 256;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      if (ok) answered++;
      else failed++;
      resolve();
    };
    s.on('connect', () => {
      open++;
      s.write(req);
    });
    s.on('data', (b) => {
      // One small answer per connection: its head ends the exchange for our purpose.
      if (b.includes('\r\n\r\n')) finish(true);
    });
    s.on('error', () => finish(false));
    s.on('close', () => {
      open--;
      finish(false);
    });
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < n; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, n - i) }, one));
  }
  process.stdout.write(`ready ${open} ${answered} ${failed}\n`);
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (l) => {
    if (l.trim() === 'count') process.stdout.write(`open ${open}\n`);
  });
  rl.on('close', () => process.exit(0));
}
void main();

// load: calls face at a steady rate (RPS, default 30) through the mesh and
// logs a one-line summary every 10 seconds.
import { meshRequest } from './mesh-http.mjs';

const TARGET = process.env.TARGET || 'http://face/';
const RPS = Math.max(1, Number(process.env.RPS || 30));
const MAX_IN_FLIGHT = 200;

let inFlight = 0;
const counts = new Map();
function count(k) {
  counts.set(k, (counts.get(k) ?? 0) + 1);
}

function fire() {
  if (inFlight >= MAX_IN_FLIGHT) return count('skipped');
  inFlight++;
  meshRequest(TARGET, { timeoutMs: 3000 })
    .then((r) => count(String(r.status)))
    .catch((e) => count(e.code || 'error'))
    .finally(() => inFlight--);
}

// Fire in small batches every 50 ms so the rate is smooth at any RPS.
let due = 0;
let last = Date.now();
const tick = setInterval(() => {
  const now = Date.now();
  due += ((now - last) / 1000) * RPS;
  last = now;
  while (due >= 1) {
    due -= 1;
    fire();
  }
}, 50);

const report = setInterval(() => {
  console.log(`load → ${TARGET}: ${JSON.stringify(Object.fromEntries(counts))} in flight ${inFlight}`);
  counts.clear();
}, 10_000);

const stop = () => {
  clearInterval(tick);
  clearInterval(report);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
console.log(`load: ${RPS} req/s to ${TARGET} via ${process.env.HTTP_PROXY ?? 'no proxy'}`);

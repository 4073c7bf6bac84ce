// Connects to HOST PORT, says nothing, and prints JSON {ms, line}: how long
// the server's first byte took. Then sends "HELO x" and QUIT and checks the
// replies, so the connection is proven usable after detection gave up.
import net from 'node:net';

const [host, port] = process.argv.slice(2);
const t0 = performance.now();
const s = net.connect(Number(port), host);
let text = '';
let first = -1;
s.setEncoding('utf8');
s.on('data', (d) => {
  if (first < 0) {
    first = performance.now() - t0;
    s.write('HELO x\r\nQUIT\r\n');
  }
  text += d;
});
s.on('error', (e) => {
  console.log(JSON.stringify({ error: e.message, text }));
  process.exit(1);
});
s.on('close', () => console.log(JSON.stringify({ ms: first, connectMs: 0, text })));
setTimeout(() => {
  console.log(JSON.stringify({ error: 'timeout', text }));
  process.exit(1);
}, 8000).unref();

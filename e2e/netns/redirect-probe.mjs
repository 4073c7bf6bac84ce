// A stand-in sidecar for the interception tests: it owns 7001 and 7002 in a
// pod namespace (run as uid 2102) and uses the real original-destination,
// detection and plaintext-inbound code from dist/sidecar/.
//   7001 (outbound): answers an HTTP response whose body is JSON
//        {listener, dst, protocol} for every redirected connection.
//   7002 (inbound):  handlePlainInbound(): permissive → forwards to
//        POD_IP:<original port>; strict (STRICT=1) → reset. A connection
//        dialled to 7002 directly answers {listener:"inbound", direct:true}.
//   7090 (admin):    answers "admin".
// Prints "ready" once listening.
import net from 'node:net';
import { originalDst } from '../../dist/sidecar/detect/original-dst.js';
import { detect } from '../../dist/sidecar/detect/detect.js';
import { handlePlainInbound } from '../../dist/sidecar/inbound/inbound-plain.js';

const podIp = process.env.POD_IP;
const strict = process.env.STRICT === '1';
const counts = { inboundPlain: 0, refused: 0 };

const outbound = net.createServer({ allowHalfOpen: true }, async (s) => {
  s.on('error', () => {});
  const dst = originalDst(s);
  const t0 = performance.now();
  let reason = '';
  const protocol = await detect(s, { timeoutMs: Number(process.env.DETECT_MS ?? 150), onResult: (_p, r) => (reason = r) });
  const body = JSON.stringify({ listener: 'outbound', dst, protocol, reason, detectMs: performance.now() - t0, uid: process.getuid() });
  s.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
});

const inbound = net.createServer({ allowHalfOpen: true }, async (s) => {
  s.on('error', () => {});
  const r = await handlePlainInbound(s, {
    podIp,
    strict,
    metrics: {
      connection(_sock, direction, peer, tls) {
        counts.inboundPlain++;
        process.stdout.write(`metric ${direction} peer=${peer} tls=${tls}\n`);
      },
    },
    onRefused: () => counts.refused++,
  });
  if (r.kind === 'not-redirected') {
    const body = JSON.stringify({ listener: 'inbound', direct: true });
    s.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  } else {
    process.stdout.write(`inbound ${r.kind} ${JSON.stringify(r.dst)}\n`);
  }
});

const admin = net.createServer((s) => {
  s.on('error', () => {});
  const body = JSON.stringify({ listener: 'admin', counts });
  s.end(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
});

let n = 0;
const ready = () => ++n === 3 && process.stdout.write('ready\n');
outbound.listen(7001, '0.0.0.0', ready);
inbound.listen(7002, '0.0.0.0', ready);
admin.listen(7090, '0.0.0.0', ready);
process.on('SIGTERM', () => process.exit(0));

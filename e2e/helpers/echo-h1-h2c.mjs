// An echo app that speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
// the same port, told apart by the client preface, and answers what
// examples/echo/echo.mjs answers (pod, workload, method, path, proto, ...).
// For tests that send the same requests over both protocols.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

const host = process.env.POD_IP || '127.0.0.1';
const ports = (process.env.PORTS || process.env.PORT || '8080').split(',').map(Number).filter((p) => p > 0);
const pod = process.env.POD_NAME || '';
const workload = process.env.WORKLOAD || pod.replace(/-\d+$/, '');
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

function handler(port) {
  return (req, res) => {
    let size = 0;
    req.on('data', (c) => (size += c.length));
    req.on('end', () => {
      const body = JSON.stringify({
        pod, workload, namespace: process.env.POD_NAMESPACE || '', serviceAccount: process.env.SERVICE_ACCOUNT || '',
        podIP: host, port, method: req.method, path: req.url, host: req.headers.host ?? req.headers[':authority'] ?? '',
        proto: `HTTP/${req.httpVersion}`, headers: {}, bodyBytes: size,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  };
}

for (const port of ports) {
  const h1 = http.createServer(handler(port));
  const h2 = http2.createServer(handler(port));
  const server = net.createServer((socket) => {
    socket.once('readable', () => {
      const head = socket.read(PREFACE.length) ?? socket.read();
      if (!head) return socket.destroy();
      socket.unshift(head);
      (head.equals(PREFACE) ? h2 : h1).emit('connection', socket);
    });
    socket.on('error', () => {});
  });
  server.listen(port, host, () => console.log(`echo-h1-h2c ${pod} listening on ${host}:${port}`));
}

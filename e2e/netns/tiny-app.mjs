// A tiny HTTP app for the interception tests: on each port in PORTS it
// answers JSON {app, port, remote} (remote: the caller's address as the app
// sees it). Prints "ready" once listening.
import http from 'node:http';

const ports = (process.env.PORTS ?? '8080').split(',').map(Number);
let n = 0;
for (const port of ports) {
  http
    .createServer((req, res) => {
      const body = JSON.stringify({ app: process.env.POD_NAME ?? '', port, remote: req.socket.remoteAddress, uid: process.getuid() });
      res.setHeader('content-type', 'application/json');
      res.end(body);
    })
    .listen(port, '0.0.0.0', () => ++n === ports.length && process.stdout.write('ready\n'));
}
process.on('SIGTERM', () => process.exit(0));

// A server-first TCP app (SMTP-like): greets on connect before the client
// says anything, then answers each line with "250 <line>". Binds POD_IP on
// each port of PORTS; prints "ready".
import net from 'node:net';

const host = process.env.POD_IP ?? '127.0.0.1';
const ports = (process.env.PORTS ?? '2525').split(',').map(Number);
let n = 0;
for (const port of ports) {
  net
    .createServer((s) => {
      s.on('error', () => {});
      s.write(`220 ${process.env.POD_NAME ?? 'greeter'} ready\r\n`);
      let buf = '';
      s.setEncoding('utf8');
      s.on('data', (d) => {
        buf += d;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, '');
          buf = buf.slice(i + 1);
          if (line === 'QUIT') s.end('221 bye\r\n');
          else s.write(`250 ${line}\r\n`);
        }
      });
    })
    .listen(port, host, () => ++n === ports.length && process.stdout.write('ready\n'));
}
process.on('SIGTERM', () => process.exit(0));

// Handing an accepted socket, whose first bytes were read for detection, to
// a node server. node's HTTP server parses straight from the socket's handle
// and would miss bytes put back with unshift(), so they are taken out again
// and fed to it as a 'data' event. (tls.Server reads the JS buffer itself:
// for TLS, unshift then emit('connection') is enough.)
//
// `prefix`: bytes already taken off the socket by someone else (the engine's
// HTTP/1.1 adapter handing a connection on at a request head: the head and
// what followed it); they go first, before anything still buffered.
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';

export function handToHttp(server: HttpServer, socket: Socket, prefix?: Buffer): void {
  const buffered = socket.read() as Buffer | null;
  const bytes = prefix && prefix.length ? (buffered ? Buffer.concat([prefix, buffered]) : prefix) : buffered;
  server.emit('connection', socket);
  if (bytes) socket.emit('data', bytes);
  socket.resume();
}

// Handing an accepted socket, whose first bytes were read for detection, to
// a node server. node's HTTP server parses straight from the socket's handle
// and would miss bytes put back with unshift(), so they are taken out again
// and fed to it as a 'data' event. (tls.Server reads the JS buffer itself:
// for TLS, unshift then emit('connection') is enough.)
import type { Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';

export function handToHttp(server: HttpServer, socket: Socket): void {
  const buffered = socket.read() as Buffer | null;
  server.emit('connection', socket);
  if (buffered) socket.emit('data', buffered);
  socket.resume();
}

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

/** Reads the first chunk without consuming it (put back for the next reader); undefined on close or timeout. */
export function peekFirstChunk(socket: Socket, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (c: Buffer | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.pause();
      if (c) socket.unshift(c);
      resolve(c);
    };
    const onData = (c: Buffer) => finish(c);
    const onClose = () => finish(undefined);
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

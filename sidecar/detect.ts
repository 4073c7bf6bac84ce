// Protocol detection on the first bytes of an accepted connection.
// (Owned by the interception work; this first version is the contract.)
import type { Socket } from 'node:net';

export type DetectedProtocol = 'http1' | 'h2c' | 'tls' | 'opaque';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * Reads the first bytes, decides, and puts them back (socket.unshift) so the
 * next consumer sees the stream from its start. Resolves 'opaque' if the
 * client sends nothing within timeoutMs (server-first protocols).
 */
export function detect(socket: Socket, opts: { timeoutMs: number }): Promise<DetectedProtocol> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (p: DetectedProtocol, chunk?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.pause();
      if (chunk) socket.unshift(chunk);
      resolve(p);
    };
    const onData = (chunk: Buffer) => {
      if (chunk.length >= 3 && chunk.subarray(0, 3).equals(H2_PREFACE.subarray(0, 3))) return finish('h2c', chunk);
      if (chunk[0] === 0x16) return finish('tls', chunk);
      if (/^[A-Z]{3,10} /.test(chunk.subarray(0, 11).toString('latin1'))) return finish('http1', chunk);
      finish('opaque', chunk);
    };
    const timer = setTimeout(() => finish('opaque'), opts.timeoutMs);
    socket.on('data', onData);
  });
}

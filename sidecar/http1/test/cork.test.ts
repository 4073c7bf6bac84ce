import t, { type Test } from 'tap';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { corkedWrite, FLUSH_BYTES, type Corkable } from '../cork.js';

// A real loopback socket pair: the peer counts the bytes that reach it.
async function pair(t: Test): Promise<{ c: Corkable; got: () => number }> {
  let got = 0;
  const srv = createServer((s) => s.on('data', (d: Buffer) => (got += d.length)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const socket: Socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await once(socket, 'connect');
  t.teardown(() => {
    socket.destroy();
    srv.close();
  });
  return { c: { socket, corked: false }, got: () => got };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

t.test('small writes of one turn stay corked until the turn ends, then go out together', async (t) => {
  const { c, got } = await pair(t);
  for (let i = 0; i < 10; i++) corkedWrite(c, Buffer.alloc(100, i));
  t.equal(c.socket.writableLength, 1000, 'held in the socket, not yet written');
  t.ok(c.corked);
  await turn();
  t.equal(c.corked, false);
  t.equal(c.socket.writableLength, 0, 'written at the end of the turn');
  while (got() < 1000) await turn();
  t.equal(got(), 1000);
});

t.test('a turn that queues FLUSH_BYTES writes them out at once and stays corked for the rest', async (t) => {
  const { c, got } = await pair(t);
  const chunk = 1000;
  let written = 0;
  while (written + chunk < FLUSH_BYTES) {
    corkedWrite(c, Buffer.alloc(chunk));
    written += chunk;
  }
  t.equal(c.socket.writableLength, written, 'under the bound: still held');
  corkedWrite(c, Buffer.alloc(chunk));
  written += chunk;
  t.equal(c.socket.writableLength, 0, 'over the bound: handed to the kernel within the turn');
  t.ok(c.socket.writableCorked > 0, 'corked again for the rest of the turn');
  corkedWrite(c, Buffer.alloc(10));
  t.equal(c.socket.writableLength, 10, 'a later small write of the same turn is held again');
  await turn();
  t.equal(c.socket.writableCorked, 0, 'uncorked at the end of the turn');
  while (got() < written + 10) await turn();
  t.equal(got(), written + 10, 'every byte arrives once');
});

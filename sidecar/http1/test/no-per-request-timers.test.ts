// The engine's promise: no timers and no Promises per request (header and
// idle timeouts live on one wheel). Counted with async_hooks while 300
// keep-alive requests go through an engine proxy to a raw upstream; the
// client and the upstream are raw sockets with callbacks, so every resource
// created in the window is the engine's.
import t from 'tap';
import net from 'node:net';
import { createHook } from 'node:async_hooks';
import { listen, loopback, startProxy } from './helpers/proxy.js';

const HOST = loopback(4);

t.test('300 requests through the engine create no Timeout and no Promise', async (t) => {
  const upstream = net.createServer((s) => {
    let buf = '';
    s.on('data', (b) => {
      buf += b.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.slice(i + 4);
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  });
  const port = await listen(upstream, HOST);
  const proxy = await startProxy(HOST, port);
  t.teardown(async () => {
    await proxy.close();
    upstream.close();
  });
  const N = 300;
  const counts = new Map<string, number>();
  const hook = createHook({
    init(_id, type) {
      counts.set(type, (counts.get(type) ?? 0) + 1);
    },
  });
  const done = await new Promise<number>((resolve) => {
    const s = net.connect(proxy.port, HOST, () => {
      let answered = 0;
      let got = '';
      const send = (): void => void s.write('GET /t HTTP/1.1\r\nHost: a\r\n\r\n');
      s.on('data', (b) => {
        got += b.toString('latin1');
        let i: number;
        while ((i = got.indexOf('\r\n\r\nok')) >= 0) {
          got = got.slice(i + 6);
          if (++answered === 5) hook.enable(); // after warm-up: the upstream connection exists
          if (answered === N + 5) {
            hook.disable();
            s.destroy();
            return resolve(answered);
          }
          send();
        }
      });
      send();
    });
  });
  t.equal(done, N + 5);
  const timers = counts.get('Timeout') ?? 0;
  const promises = counts.get('PROMISE') ?? 0;
  t.ok(timers <= 2, `Timeouts created during ${N} requests: ${timers}`);
  t.ok(promises <= 2, `Promises created during ${N} requests: ${promises}`);
  t.ok((counts.get('TCPWRAP') ?? 0) === 0, 'no new connection: client and upstream connections were reused');
  t.comment(`async resources in the window: ${JSON.stringify(Object.fromEntries(counts))}`);
});

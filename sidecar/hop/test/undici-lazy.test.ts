// undici is loaded by the first request that needs it (the undici adapter,
// a peer without weft-mux/1, traffic leaving the mesh), not by a sidecar
// whose traffic the engine and the weft-mux/1 hop carry: ~37 ms of start-up
// on Node 26 that most sidecars never need.
import t from 'tap';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { IdentityHolder } from '../../config/bootstrap.js';
import { EndpointPools } from '../endpoint-pool.js';
import { undiciLoaded } from '../undici-lite.js';
import type { EndpointRt } from '../../config/config-apply.js';

const require = createRequire(import.meta.url);
const undiciModules = (): string[] => Object.keys(require.cache).filter((k) => k.includes('/node_modules/undici/'));

t.test('a plain endpoint reached through the engine does not load undici; the first request leaving the mesh does', async (t) => {
  const app = http.createServer((_req, res) => res.end('app'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  t.teardown(() => app.close());
  const port = (app.address() as AddressInfo).port;
  const identity = new IdentityHolder({ control: '127.0.0.1:1', stateDir: '/nonexistent', namespace: 'shop', serviceAccount: 'cart', trustDomain: 'cluster.local', log: () => {} });
  const pools = new EndpointPools(identity, 7002, 8);
  t.teardown(() => pools.destroy());
  const ep = { key: `127.0.0.1:${port}`, ip: '127.0.0.1', port, identity: undefined, spiffe: undefined, workload: 'app', pod: 'app-0', peer: {}, dispatcher: undefined } as unknown as EndpointRt;

  const hop = pools.engineHop(ep);
  t.equal(hop, pools.enginePool(ep), 'the plain endpoint is served by its engine pool');
  t.equal(ep.dispatcher, undefined, 'and is given no undici Pool');
  t.equal(undiciLoaded(), false, 'undici-lite has not loaded the dispatchers');
  t.same(undiciModules(), [], 'no undici module is in the require cache');

  // Traffic leaving the mesh goes through the Agent: made, with undici, on first use.
  const body = await new Promise<string>((resolve, reject) => {
    pools.external.dispatch({ origin: `http://127.0.0.1:${port}`, path: '/', method: 'GET' }, {
      onConnect() {},
      onHeaders() {
        return true;
      },
      onData(chunk: Buffer) {
        resolve(chunk.toString());
        return true;
      },
      onComplete() {},
      onError: reject,
    } as never);
  });
  t.equal(body, 'app', 'the Agent carried a request');
  t.equal(undiciLoaded(), true, 'undici is loaded now');
  t.ok(undiciModules().length > 5, 'its dispatcher modules are in the require cache');
  t.equal(pools.external, pools.external, 'one Agent, made once');
});

import t from 'tap';
import { controlAddresses, controlAt } from '../control-address.js';

t.test('--control with several replicas: tried in turn from the first', async (t) => {
  t.same(controlAddresses('10.0.0.5:7443'), ['10.0.0.5:7443']);
  t.same(controlAddresses(' a:1, b:2 ,,c:3 '), ['a:1', 'b:2', 'c:3'], 'spaces and empty items dropped');
  t.same([0, 1, 2, 3, 4].map((n) => controlAt('a:1,b:2,c:3', n)), ['a:1', 'b:2', 'c:3', 'a:1', 'b:2'], 'round robin');
  t.equal(controlAt('only:1', 7), 'only:1');
});

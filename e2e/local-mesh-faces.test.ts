// `npm start` runs `weft up examples/faces`: the demo comes up, traffic flows
// from load through face to smiley (split 90/10) and color, and the live
// table shows every service and backend with its rate.
import t from 'tap';
import { join } from 'node:path';
import { REPO, startMesh, waitFor } from './helpers/mesh.js';

const mesh = await startMesh(t, join(REPO, 'examples', 'faces'), { table: true, args: ['--interval', '1'], timeoutMs: 90_000 });
t.teardown(() => mesh.stop());

t.test('the faces demo serves traffic and the table shows it per service and backend', async (t) => {
  t.same(
    mesh.pods.map((p) => p.pod).sort(),
    ['color-0', 'color-1', 'face-0', 'load-0', 'smiley-v1-0', 'smiley-v2-0'],
  );
  // A table block: header, then rows; wait for one where every backend has traffic.
  const rowsOf = (block: string) =>
    block
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((c) => c[0]?.startsWith('faces/'));
  const table = await waitFor(
    'a table with traffic to face, color and both smiley versions',
    () => {
      const blocks = mesh.proc.stdout().split(/\n(?=\d\d:\d\d:\d\d  outbound traffic)/);
      const last = blocks[blocks.length - 1]!;
      const rows = rowsOf(last);
      const rps = (backend: string) => Number(rows.find((r) => r[1] === backend)?.[3] ?? 0);
      return ['faces/face', 'faces/color', 'faces/smiley-v1', 'faces/smiley-v2'].every((b) => rps(b) > 0) ? last : undefined;
    },
    { timeoutMs: 45_000, intervalMs: 250 },
  );
  t.comment(`\n${table}`);
  t.match(table, /SERVICE\s+BACKEND\s+SHARE\s+RPS\s+SUCCESS\s+P50\s+P99/);
});

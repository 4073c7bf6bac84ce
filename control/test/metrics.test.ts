import t from 'tap';
import { ControlMetrics, nackReason } from '../metrics.js';
import { CONTROL_METRICS } from '../../api/index.js';

t.test('NACK reasons are bounded labels: no service names, versions or indexes', async (t) => {
  const cases: Array<[string, string]> = [
    ['service faces/smiley version 1732848000123: config_json is not JSON: Unexpected token', 'config_json_is_not_json'],
    ['service faces/smiley version 17: ports[0].rules[1].matches: bad regex', 'ports.rules.matches'],
    ['invalid config: ports[0].rules: bad', 'invalid_config'],
    ['', 'unspecified'],
    ['!!!', 'unspecified'],
  ];
  for (const [input, want] of cases) t.equal(nackReason(input), want, input);
});

t.test('every control metric of api/metrics.ts is exported, and NACK labels stay bounded', async (t) => {
  const m = new ControlMetrics();
  for (let i = 0; i < 100; i++) m.nack(`reason${'x'.repeat(i % 60)}: detail`);
  m.setSourceSynced('files:/x', true);
  m.setConfigVersion('1');
  m.setConfigVersion('2');
  const text = await m.text();
  for (const name of Object.values(CONTROL_METRICS)) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  const reasons = new Set([...text.matchAll(/weft_control_nacks_total\{reason="([^"]*)"\}/g)].map((x) => x[1]));
  t.ok(reasons.size <= 33, `${reasons.size} distinct reasons`);
  t.ok(reasons.has('other'));
  t.notMatch(text, /version="1"/, 'the old version series is gone');
  t.match(text, /weft_control_config_version_info\{version="2"\} 1/);
});

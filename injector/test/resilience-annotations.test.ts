// Per-pod resilience settings: config.weft.io/failure-accrual and
// config.weft.io/max-in-flight become the proxy's WEFT_FAILURE_ACCRUAL /
// WEFT_MAX_IN_FLIGHT (its --failure-accrual / --max-in-flight); a bad value
// is left out with a warning naming the annotation, so the proxy starts with
// its defaults rather than refusing to start.
import t from 'tap';
import { readProxyConfig } from '../config.js';
import { proxyContainer, resolveOptions } from '../proxy-spec.js';

const envOf = (ann: Record<string, string>) => {
  const { config, warnings } = readProxyConfig(ann);
  const c = proxyContainer(config, resolveOptions());
  return { env: Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value])), warnings };
};

t.test('valid values reach the proxy', async (t) => {
  const r = envOf({ 'config.weft.io/failure-accrual': '3', 'config.weft.io/max-in-flight': '500' });
  t.same(r.warnings, []);
  t.equal(r.env.WEFT_FAILURE_ACCRUAL, '3');
  t.equal(r.env.WEFT_MAX_IN_FLIGHT, '500');
  const none = envOf({});
  t.equal(none.env.WEFT_FAILURE_ACCRUAL, undefined, 'unset: the sidecar default');
  t.equal(none.env.WEFT_MAX_IN_FLIGHT, undefined);
});

t.test('bad values warn, naming the annotation, and are left out', async (t) => {
  const r = envOf({ 'config.weft.io/failure-accrual': 'seven', 'config.weft.io/max-in-flight': '-1' });
  t.equal(r.warnings.length, 2);
  t.match(r.warnings.join('\n'), /config\.weft\.io\/failure-accrual: "seven"/);
  t.match(r.warnings.join('\n'), /config\.weft\.io\/max-in-flight: "-1"/);
  t.equal(r.env.WEFT_FAILURE_ACCRUAL, undefined);
  t.equal(r.env.WEFT_MAX_IN_FLIGHT, undefined);
});

// The injected sidecar reads the pod's observe annotations through the
// downward API (an absent annotation is an empty variable: off), so
// `weft.io/access-log: json` and `weft.io/trace-collector: URL` on a pod turn
// its sidecar's access log and tracing on.
import t from 'tap';
import { proxyContainer, resolveOptions } from '../proxy-spec.js';
import { readProxyConfig } from '../config.js';

t.test('the proxy container maps the observe annotations to WEFT_ACCESS_LOG, WEFT_TRACE_COLLECTOR and WEFT_TRACE_SAMPLING', async (t) => {
  const c = proxyContainer(readProxyConfig({}).config, resolveOptions());
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  t.equal(env.WEFT_ACCESS_LOG, "metadata.annotations['weft.io/access-log']");
  t.equal(env.WEFT_TRACE_COLLECTOR, "metadata.annotations['weft.io/trace-collector']");
  t.equal(env.WEFT_TRACE_SAMPLING, "metadata.annotations['weft.io/trace-sampling']");
});

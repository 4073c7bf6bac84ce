// The injected pod's termination fits the sidecar's drain: the drain timeout
// (annotation config.weft.io/drain-timeout, default 5s) reaches the sidecar's
// --drain-timeout, and terminationGracePeriodSeconds is at least the drain
// plus a margin. The proxy stays a native sidecar: the kubelet stops it after
// the app, and starts the app only after its startup probe passed.
import t from 'tap';
import jsonpatch from 'fast-json-patch';
import { buildPatch, type Container, type PodLike } from '../index.js';
import { deploymentPod } from './fixtures/reviews.js';

const en = { 'weft.io/inject': 'enabled' };

function inject(pod: PodLike): { pod: PodLike; proxy: Container; warnings: string[] } {
  const r = buildPatch(pod, en);
  if (!r.inject) throw new Error(r.reason);
  const out = jsonpatch.applyPatch(structuredClone(pod), r.ops as jsonpatch.Operation[], true, false).newDocument as PodLike;
  const proxy = [...(out.spec?.initContainers ?? []), ...(out.spec?.containers ?? [])].find((c) => c.name === 'weft-proxy')!;
  return { pod: out, proxy, warnings: r.warnings };
}

function withGrace(grace: number | undefined, annotations: Record<string, string> = {}): PodLike {
  const pod = deploymentPod({ annotations }) as PodLike;
  if (grace === undefined) delete pod.spec!.terminationGracePeriodSeconds;
  else pod.spec!.terminationGracePeriodSeconds = grace;
  return pod;
}

t.test('drain timeout and terminationGracePeriodSeconds', async (t) => {
  const cases: Array<{ name: string; grace: number | undefined; ann?: string; drainArg: string; wantGrace: number | undefined; warn?: RegExp }> = [
    { name: 'defaults: 5s drain fits the 30 s default', grace: 30, drainArg: '5000ms', wantGrace: 30 },
    { name: 'no grace set: the Kubernetes default is enough, nothing added', grace: undefined, drainArg: '5000ms', wantGrace: undefined },
    { name: 'a longer drain raises the grace period', grace: 30, ann: '45s', drainArg: '45000ms', wantGrace: 50, warn: /terminationGracePeriodSeconds: 30 s is shorter .* raised to 50/ },
    { name: 'a longer drain without a grace set adds one', grace: undefined, ann: '1m', drainArg: '60000ms', wantGrace: 65 },
    { name: 'a short grace period is raised to fit the default drain', grace: 2, drainArg: '5000ms', wantGrace: 10, warn: /raised to 10/ },
    { name: 'the pod\'s own longer grace is kept', grace: 120, ann: '10s', drainArg: '10000ms', wantGrace: 120 },
    { name: 'a bad annotation: default drain and a warning naming it', grace: 30, ann: 'soon', drainArg: '5000ms', wantGrace: 30, warn: /annotation config\.weft\.io\/drain-timeout: "soon" is not a duration/ },
  ];
  for (const c of cases) {
    const { pod, proxy, warnings } = inject(withGrace(c.grace, c.ann ? { 'config.weft.io/drain-timeout': c.ann } : {}));
    const args = proxy.args ?? [];
    t.equal(args[args.indexOf('--drain-timeout') + 1], c.drainArg, `${c.name}: sidecar --drain-timeout`);
    t.equal(pod.spec?.terminationGracePeriodSeconds, c.wantGrace, `${c.name}: terminationGracePeriodSeconds`);
    if (c.warn) t.match(warnings.join('\n'), c.warn, `${c.name}: warning`);
    else t.notOk(warnings.some((w) => /drain|terminationGrace/.test(w)), `${c.name}: no warning`);
  }
});

t.test('native sidecar ordering: the proxy is a restartable init container whose startup probe gates the app', async (t) => {
  const { pod, proxy } = inject(deploymentPod() as PodLike);
  t.equal(proxy.restartPolicy, 'Always', 'stopped by the kubelet after the app containers');
  t.same(proxy.startupProbe?.httpGet, { path: '/ready', port: 7090 }, 'the app starts only once /ready passes');
  t.same(pod.spec?.initContainers?.map((c) => c.name), ['weft-init', 'weft-proxy'], 'before any other init container');
});

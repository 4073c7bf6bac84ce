// injector/: the mutating admission webhook that adds weft to pods, and the
// same patch builder for `weft inject`.
export type { AddOp, PodLike, Container, PodSpec, ObjectMeta } from './pod.js';
export { decide, type Decision } from './decide.js';
export { readProxyConfig, ANNOTATIONS, LOG_LEVELS, type ProxyConfig, type LogLevel } from './config.js';
export { buildPatch, applyAddOps, pointerSegment, type PatchResult } from './patch.js';
export {
  DEFAULT_IMAGE, DEFAULT_CONTROL, INIT_CONTAINER_NAME, PROXY_CONTAINER_NAME, IDENTITY_DIR, IDENTITY_VOLUME,
  TRUST_ANCHOR_CONFIGMAP, TRUST_ANCHOR_KEY, TOKEN_AUDIENCE, type InjectOptions,
} from './proxy-spec.js';
export { handleReview, ADMISSION_API_VERSION, type AdmissionReviewOut, type ReviewOutcome, type Route } from './admission.js';
export { startInjector, type InjectorServer, type InjectorServerOptions } from './server.js';
export { injectYaml, type InjectReport } from './inject-yaml.js';
export { rewriteProbes, appProbeOf, APP_PROBES_ANNOTATION, APP_PROBES_ENV, APP_PROBE_PREFIX, type AppProbe, type ProbeRewrite } from './probes.js';

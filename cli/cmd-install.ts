// `weft install`: print the manifests that install weft into a cluster, like
// `linkerd install`:   weft install --certs DIR | kubectl apply -f -
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { PORTS, PROXY_UID, WEFT_VERSION, INJECT_NAMESPACE_LABEL } from '../api/index.js';
import { createIssuer, createTrustAnchor, issueCert, loadIssuerDir, ISSUER_DIR_FILES, type Pem } from '../certs/index.js';
import { bool, parseFlags, str, UsageError } from './args.js';
import { xBackendTrafficPolicyCRD } from './install-crds.js';
import { authorizationPolicyCrd } from './install-authz-crd.js';
import { AUTHZ_GROUP, DEFAULT_INBOUND_POLICIES, type DefaultInboundPolicy } from '../api/index.js';

export const NAMESPACE = 'weft-system';
export const CONTROL = 'weft-control';
export const INJECTOR = 'weft-injector';
export const ISSUER_SECRET = 'weft-issuer';
export const INJECTOR_TLS_SECRET = 'weft-injector-tls';
export const TRUST_ANCHOR_CONFIGMAP = 'weft-trust-anchor';
export const STATUS_LEASE = 'weft-control-status';
export const WEBHOOK_CONFIG = 'weft-injector';
const GATEWAY_GROUP = 'gateway.networking.k8s.io';
const ISSUER_DIR = '/var/run/weft/issuer';
const INJECTOR_TLS_DIR = '/var/run/weft/tls';
const YEAR_MS = 365 * 24 * 3600 * 1000;

export interface InstallCerts {
  /** PEM bundle of trust anchors (one, or two during rotation). */
  trustBundlePem: string;
  issuer: Pem;
  /** The injector's serving cert (chain) and key; its CA goes into the webhook's caBundle. */
  webhook: Pem;
  webhookCaPem: string;
}

export interface InstallOptions {
  version?: string;
  image?: string;
  controlReplicas?: number;
  /**
   * High availability: three control replicas, required anti-affinity (one
   * per node), spread over zones where the cluster has them, and a
   * PodDisruptionBudget that keeps two serving through a drain.
   */
  ha?: boolean;
  injectorReplicas?: number;
  /** false: the injector adds the proxy as a plain container (clusters older than 1.29). */
  nativeSidecar?: boolean;
  /** Leave out the Secrets and the trust anchor (the committed reference manifest). */
  certs?: InstallCerts;
  /** Mesh-wide default inbound policy (control's --default-inbound-policy); unset: all-unauthenticated. */
  defaultInboundPolicy?: DefaultInboundPolicy;
}

type Obj = Record<string, unknown>;

const labels = (component: string) => ({
  'app.kubernetes.io/name': 'weft',
  'app.kubernetes.io/component': component,
  'app.kubernetes.io/part-of': 'weft',
  'app.kubernetes.io/version': WEFT_VERSION,
});
const meta = (name: string, component: string, namespaced = true, extra: Obj = {}): Obj => ({
  name,
  ...(namespaced ? { namespace: NAMESPACE } : {}),
  labels: labels(component),
  ...extra,
});

const hardenedContainer = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: PROXY_UID,
  runAsGroup: PROXY_UID,
  capabilities: { drop: ['ALL'] },
};
const podSecurity = { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };

function spreadAcrossNodes(component: string): Obj {
  // Two replicas on one node would both go down with it.
  return {
    podAntiAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/component': component } } } },
      ],
    },
  };
}

/** --ha: never two control replicas on one node; zones preferred apart. */
function controlAffinityHA(component: string): Obj {
  const matchLabels = { 'app.kubernetes.io/component': component };
  return {
    podAntiAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels } }],
      preferredDuringSchedulingIgnoredDuringExecution: [
        { weight: 100, podAffinityTerm: { topologyKey: 'topology.kubernetes.io/zone', labelSelector: { matchLabels } } },
      ],
    },
  };
}

function fieldEnv(name: string, fieldPath: string): Obj {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

export function renderManifests(o: InstallOptions = {}): Obj[] {
  const version = o.version ?? WEFT_VERSION;
  const image = o.image ?? `ghcr.io/weft-mesh/weft:${version}`;
  const controlSel = { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/component': 'control' };
  const injectorSel = { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/component': 'injector' };
  const out: Obj[] = [];

  out.push({
    apiVersion: 'v1',
    kind: 'Namespace',
    // The mesh's own pods are never injected.
    metadata: { name: NAMESPACE, labels: { ...labels('namespace'), [INJECT_NAMESPACE_LABEL]: 'disabled' } },
  });
  out.push(authorizationPolicyCrd(labels('crd')));
  out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(CONTROL, 'control') });
  out.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(INJECTOR, 'injector'), automountServiceAccountToken: false });

  // Least privilege: control reads what it compiles, writes only route/policy status,
  // reviews sidecar tokens, publishes the trust anchor ConfigMap into namespaces, and
  // holds one Lease. The injector needs no API access at all.
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: meta(CONTROL, 'control', false),
    rules: [
      // pods: which endpoint IPs carry a sidecar, and their service accounts (the peer identity to expect).
      { apiGroups: [''], resources: ['services', 'namespaces', 'configmaps', 'pods'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [GATEWAY_GROUP], resources: ['httproutes', 'grpcroutes', 'referencegrants', 'backendlbpolicies', 'backendtlspolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [GATEWAY_GROUP], resources: ['httproutes/status', 'grpcroutes/status', 'backendlbpolicies/status', 'backendtlspolicies/status'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['gateway.networking.x-k8s.io'], resources: ['xbackendtrafficpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['gateway.networking.x-k8s.io'], resources: ['xbackendtrafficpolicies/status'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: [AUTHZ_GROUP], resources: ['authorizationpolicies'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [AUTHZ_GROUP], resources: ['authorizationpolicies/status'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      // create cannot be limited by name (the object does not exist yet); update/patch can.
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      { apiGroups: [''], resources: ['configmaps'], resourceNames: [TRUST_ANCHOR_CONFIGMAP], verbs: ['update', 'patch'] },
      { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], verbs: ['get', 'list', 'watch'] },
    ],
  });
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: meta(CONTROL, 'control', false),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROL },
    subjects: [{ kind: 'ServiceAccount', name: CONTROL, namespace: NAMESPACE }],
  });
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(CONTROL, 'control'),
    rules: [
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [STATUS_LEASE], verbs: ['get', 'watch', 'update', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      // Issuer rotation without a restart: control watches its one Secret (list/watch by name need the metadata.name field selector).
      { apiGroups: [''], resources: ['secrets'], resourceNames: [ISSUER_SECRET], verbs: ['get', 'list', 'watch'] },
    ],
  });
  out.push({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(CONTROL, 'control'),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROL },
    subjects: [{ kind: 'ServiceAccount', name: CONTROL, namespace: NAMESPACE }],
  });

  if (o.certs) {
    out.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(TRUST_ANCHOR_CONFIGMAP, 'identity'),
      data: { 'ca-bundle.pem': o.certs.trustBundlePem },
    });
    out.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta(ISSUER_SECRET, 'identity'),
      type: 'Opaque',
      stringData: { [ISSUER_DIR_FILES.issuerCert]: o.certs.issuer.certPem, [ISSUER_DIR_FILES.issuerKey]: o.certs.issuer.keyPem },
    });
    out.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: meta(INJECTOR_TLS_SECRET, 'injector'),
      type: 'kubernetes.io/tls',
      stringData: { 'tls.crt': o.certs.webhook.certPem, 'tls.key': o.certs.webhook.keyPem },
    });
  }

  out.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(CONTROL, 'control'),
    spec: {
      replicas: o.controlReplicas ?? (o.ha ? 3 : 2),
      selector: { matchLabels: controlSel },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels('control'), annotations: { 'weft.io/inject': 'disabled' } },
        spec: {
          serviceAccountName: CONTROL,
          securityContext: podSecurity,
          affinity: o.ha ? controlAffinityHA('control') : spreadAcrossNodes('control'),
          containers: [
            {
              name: 'control',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: ['weft'],
              args: [
                'control', '--kubernetes',
                '--issuer-dir', ISSUER_DIR,
                '--state-dir', '/var/run/weft/state',
                '--listen', `0.0.0.0:${PORTS.controlGrpc}`,
                '--admin', `0.0.0.0:${PORTS.controlAdmin}`,
                ...(o.defaultInboundPolicy ? ['--default-inbound-policy', o.defaultInboundPolicy] : []),
              ],
              env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
              ports: [
                { name: 'grpc', containerPort: PORTS.controlGrpc, protocol: 'TCP' },
                { name: 'admin', containerPort: PORTS.controlAdmin, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: PORTS.controlAdmin }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/live', port: PORTS.controlAdmin }, periodSeconds: 10, initialDelaySeconds: 10 },
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: hardenedContainer,
              volumeMounts: [
                { name: 'issuer', mountPath: ISSUER_DIR, readOnly: true },
                { name: 'state', mountPath: '/var/run/weft/state' },
              ],
            },
          ],
          volumes: [
            {
              name: 'issuer',
              projected: {
                defaultMode: 0o440,
                sources: [
                  { secret: { name: ISSUER_SECRET, items: [{ key: ISSUER_DIR_FILES.issuerCert, path: ISSUER_DIR_FILES.issuerCert }, { key: ISSUER_DIR_FILES.issuerKey, path: ISSUER_DIR_FILES.issuerKey }] } },
                  { configMap: { name: TRUST_ANCHOR_CONFIGMAP, items: [{ key: 'ca-bundle.pem', path: ISSUER_DIR_FILES.trustBundle }] } },
                ],
              },
            },
            { name: 'state', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
          ],
        },
      },
    },
  });
  out.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(CONTROL, 'control'),
    spec: {
      selector: controlSel,
      ports: [
        // gRPC over TLS (not h2c): no appProtocol, so nothing in the path tries to speak cleartext HTTP/2 to it.
        { name: 'grpc', port: PORTS.controlGrpc, targetPort: 'grpc', protocol: 'TCP' },
        { name: 'admin', port: PORTS.controlAdmin, targetPort: 'admin', protocol: 'TCP' },
      ],
    },
  });

  const injectArgs = ['inject', '--webhook', '--listen', `0.0.0.0:${PORTS.injector}`, '--cert-file', `${INJECTOR_TLS_DIR}/tls.crt`, '--key-file', `${INJECTOR_TLS_DIR}/tls.key`, '--image', image];
  if (o.nativeSidecar === false) injectArgs.push('--legacy-sidecar');
  out.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(INJECTOR, 'injector'),
    spec: {
      replicas: o.injectorReplicas ?? 2,
      selector: { matchLabels: injectorSel },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: labels('injector'), annotations: { 'weft.io/inject': 'disabled' } },
        spec: {
          serviceAccountName: INJECTOR,
          automountServiceAccountToken: false,
          securityContext: podSecurity,
          affinity: spreadAcrossNodes('injector'),
          containers: [
            {
              name: 'injector',
              image,
              imagePullPolicy: 'IfNotPresent',
              command: ['weft'],
              args: injectArgs,
              ports: [{ name: 'webhook', containerPort: PORTS.injector, protocol: 'TCP' }],
              readinessProbe: { httpGet: { path: '/ready', port: PORTS.injector, scheme: 'HTTPS' }, periodSeconds: 5 },
              livenessProbe: { httpGet: { path: '/live', port: PORTS.injector, scheme: 'HTTPS' }, periodSeconds: 10, initialDelaySeconds: 5 },
              resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: hardenedContainer,
              volumeMounts: [{ name: 'tls', mountPath: INJECTOR_TLS_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'tls', secret: { secretName: INJECTOR_TLS_SECRET, defaultMode: 0o440 } }],
        },
      },
    },
  });
  out.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(INJECTOR, 'injector'),
    spec: { selector: injectorSel, ports: [{ name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' }] },
  });
  for (const [name, component, sel] of [[CONTROL, 'control', controlSel], [INJECTOR, 'injector', injectorSel]] as const) {
    // --ha: two of the three control replicas keep serving through a node drain.
    const budget = o.ha && component === 'control' ? { minAvailable: 2 } : { maxUnavailable: 1 };
    out.push({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: meta(name, component), spec: { ...budget, selector: { matchLabels: sel } } });
  }

  const caBundle = o.certs ? Buffer.from(o.certs.webhookCaPem).toString('base64') : undefined;
  const clientConfig = (path: string): Obj => ({
    service: { name: INJECTOR, namespace: NAMESPACE, path, port: 443 },
    ...(caBundle ? { caBundle } : {}),
  });
  // Never the control plane's or the cluster's own namespaces.
  const notSystem = { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', NAMESPACE] };
  const common = {
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    // Fail: a pod in a meshed namespace must never start silently without its
    // sidecar (it would bypass mTLS and policy, and strict peers would refuse it,
    // which looks like a network outage far from its cause). The blast radius is
    // only namespaces and pods that asked for the mesh; kube-system and
    // weft-system are excluded, and the injector runs two replicas behind a PDB.
    failurePolicy: 'Fail',
    // Well under the API server's 30 s cap: pod creation should not stall for long.
    timeoutSeconds: 10,
    // The patch puts weft's containers first, so webhooks that run after us and
    // append containers cannot break the order; re-running us would be a no-op
    // (weft.io/injected is set), so reinvocation is not needed.
    reinvocationPolicy: 'Never',
    matchPolicy: 'Equivalent',
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
  };
  out.push({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: meta(WEBHOOK_CONFIG, 'injector', false),
    webhooks: [
      {
        name: 'namespace.inject.weft.io',
        clientConfig: clientConfig('/mutate'),
        namespaceSelector: { matchLabels: { [INJECT_NAMESPACE_LABEL]: 'enabled' }, matchExpressions: [notSystem] },
        ...common,
      },
      {
        // Webhooks select on labels, not annotations: a pod elsewhere opts in with the label weft.io/inject=enabled.
        name: 'pod.inject.weft.io',
        clientConfig: clientConfig('/mutate-pod-opt-in'),
        namespaceSelector: { matchExpressions: [{ key: INJECT_NAMESPACE_LABEL, operator: 'NotIn', values: ['enabled', 'disabled'] }, notSystem] },
        objectSelector: { matchLabels: { [INJECT_NAMESPACE_LABEL]: 'enabled' } },
        ...common,
      },
    ],
  });
  // Retry budgets (GEP-3388): not in the Gateway API v1.1 bundle.
  out.push(xBackendTrafficPolicyCRD(labels('crd')));
  return out;
}

/** Certificates for an install: the issuer from DIR (as `weft certs --out DIR` wrote it) or fresh ones. */
export function installCerts(dir: string | undefined, now = new Date()): { certs: InstallCerts; note?: string } {
  let issuer: Pem;
  let trustBundlePem: string;
  let note: string | undefined;
  if (dir) {
    if (!existsSync(join(dir, ISSUER_DIR_FILES.issuerCert))) throw new UsageError(`--certs ${dir}: ${ISSUER_DIR_FILES.issuerCert} is missing (create it with: weft certs --out ${dir})`);
    try {
      ({ issuer, trustBundlePem } = loadIssuerDir(dir));
    } catch (e) {
      throw new UsageError(`--certs: ${(e as Error).message}`);
    }
  } else {
    const anchor = createTrustAnchor({ now });
    issuer = createIssuer(anchor, { now });
    trustBundlePem = anchor.certPem;
    note = 'generated a trust anchor whose key was not kept; to rotate issuers later, create the certificates with `weft certs --out DIR` and install with --certs DIR';
  }
  // The webhook's serving cert chains to the issuer; the API server trusts the bundle's anchors.
  const leaf = issueCert(issuer, { dnsNames: [`${INJECTOR}.${NAMESPACE}.svc`], lifetimeMs: YEAR_MS, commonName: `${INJECTOR}.${NAMESPACE}.svc` });
  return { certs: { trustBundlePem, issuer, webhook: { certPem: leaf.certPem + issuer.certPem, keyPem: leaf.keyPem }, webhookCaPem: trustBundlePem }, ...(note ? { note } : {}) };
}

export function toYamlStream(objs: Obj[]): string {
  // YAML 1.1 rules, as kubectl reads them: strings like "on", "yes" or "y" get quoted.
  return objs.map((o) => stringify(o, { lineWidth: 0, version: '1.1', aliasDuplicateObjects: false })).join('---\n');
}

const HELP = `usage: weft install [--certs DIR] [--image IMAGE] [--legacy-sidecar] [--no-certs] [--default-inbound-policy P] [--ha]

Prints the manifests that install weft: namespace weft-system, control (2
replicas), the injector webhook, RBAC, the trust anchor ConfigMap and the
issuer Secret, and the XBackendTrafficPolicy CRD (retry budgets, GEP-3388).
Apply them with:  weft install --certs DIR | kubectl apply -f -
Install the Gateway API v1.1 CRDs first.

--certs DIR       use the anchor and issuer written by \`weft certs --out DIR\`
--no-certs        leave out Secrets, the trust anchor and the caBundle (reference copy)
--legacy-sidecar  inject the proxy as a plain container (clusters older than 1.29)
--default-inbound-policy P
                  mesh-wide default inbound policy: all-unauthenticated (default),
                  all-authenticated, deny or audit (the AuthorizationPolicy CRD,
                  policy.weft.io/v1alpha1, is always installed)

--ha              control in high availability: 3 replicas, one per node (required
                  anti-affinity, zones preferred apart), PodDisruptionBudget minAvailable 2;
                  route status is written by the holder of the Lease weft-control-status
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const p = parseFlags(argv, {
    certs: { type: 'string' },
    image: { type: 'string' },
    'legacy-sidecar': { type: 'boolean' },
    'no-certs': { type: 'boolean' },
    'default-inbound-policy': { type: 'string' },
    ha: { type: 'boolean' },
  }, { positionals: false });
  const opts: InstallOptions = { nativeSidecar: !bool(p, 'legacy-sidecar'), ...(bool(p, 'ha') ? { ha: true } : {}) };
  const dip = str(p, 'default-inbound-policy');
  if (dip !== undefined) {
    if (!(DEFAULT_INBOUND_POLICIES as readonly string[]).includes(dip)) throw new UsageError(`--default-inbound-policy: "${dip}" is not one of ${DEFAULT_INBOUND_POLICIES.join(', ')}`);
    opts.defaultInboundPolicy = dip as DefaultInboundPolicy;
  }
  const image = str(p, 'image');
  if (image) opts.image = image;
  if (!bool(p, 'no-certs')) {
    const { certs, note } = installCerts(str(p, 'certs'));
    opts.certs = certs;
    if (note) process.stderr.write(`weft install: ${note}\n`);
  }
  process.stdout.write(toYamlStream(renderManifests(opts)));
  return 0;
}


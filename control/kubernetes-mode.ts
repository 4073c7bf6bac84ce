// Everything control needs in a cluster, started together: the API source
// feeding the store, the Lease, the route/policy status writer, the trust
// anchor publisher, and the TokenReview authenticator for Identity.
import { KubeConfig } from '@kubernetes/client-node';
import type { ConfigMap } from '../api/index.js';
import type { LiveAuthority } from './authority.js';
import { bundleOfConfigMaps, IssuerSecretWatch } from './authority-kubernetes.js';
import type { Authenticator } from './identity-server.js';
import { KubernetesSource, type KubernetesSourceOptions } from './source-kubernetes.js';
import { KubernetesStatusWriter, LeaseElector } from './status-writer-kubernetes.js';
import type { Store } from './store.js';
import { TRUST_ANCHOR_CONFIGMAP, TrustAnchorPublisher } from './trust-anchor-kubernetes.js';
import { tokenReviewAuthenticator } from './token-review.js';
import type { ResourceStatus } from './types.js';

export interface KubernetesModeOptions {
  store: Store;
  /** Default: in-cluster config when running in a pod, else KUBECONFIG / ~/.kube/config. */
  kubeConfig?: KubeConfig;
  /** This replica's name in the Lease (POD_NAME). */
  identity: string;
  /** The trust bundle PEM to publish into namespaces (read from the mounted ConfigMap). */
  trustBundle: () => string;
  log?: (line: string) => void;
  leaseNamespace?: string;
  /**
   * Rotation without a restart: the ConfigMap weft-trust-anchor and the Secret
   * weft-issuer of control's namespace (leaseNamespace) are watched and offered to it.
   */
  authority?: LiveAuthority;
  source?: Partial<Omit<KubernetesSourceOptions, 'kubeConfig' | 'store'>>;
}

export interface KubernetesMode {
  source: KubernetesSource;
  lease: LeaseElector;
  statusWriter: KubernetesStatusWriter;
  trustAnchors: TrustAnchorPublisher;
  /** Plug into the Identity service: signs only for the token's service account. */
  authenticate: Authenticator;
  /** Call after every compile with its statuses. */
  onCompiled(statuses: ResourceStatus[]): void;
  stop(): Promise<void>;
}

export function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault(); // in-cluster service account when KUBERNETES_SERVICE_HOST is set
  return kc;
}

/** Starts the source and waits for its first full list, then the Lease and writers. */
export async function startKubernetesMode(o: KubernetesModeOptions): Promise<KubernetesMode> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${new Date().toISOString()} kubernetes ${l}\n`));
  const kubeConfig = o.kubeConfig ?? defaultKubeConfig();
  let publisher: TrustAnchorPublisher | undefined;
  let writer: KubernetesStatusWriter | undefined;
  const controlNamespace = o.leaseNamespace ?? 'weft-system';
  // The operator's ConfigMap and Secret, as last seen, are offered together:
  // edits applied in one go (ConfigMap, then Secret) are taken once they fit.
  let seenBundle: string | undefined;
  let seenIssuer: { certPem: string; keyPem: string } | undefined;
  const offer = (from: string) =>
    o.authority?.offer({ ...(seenBundle !== undefined ? { trustBundlePem: seenBundle } : {}), ...(seenIssuer ? { issuer: seenIssuer } : {}) }, from);
  const takeBundle = () => {
    if (!o.authority) return;
    const b = bundleOfConfigMaps(source.objects('ConfigMap') as ConfigMap[], controlNamespace, TRUST_ANCHOR_CONFIGMAP);
    if (b === undefined || b === '' || b === seenBundle) return;
    seenBundle = b;
    offer(`ConfigMap ${controlNamespace}/${TRUST_ANCHOR_CONFIGMAP}`);
  };
  const source = new KubernetesSource({
    ...o.source,
    kubeConfig,
    store: o.store,
    log,
    onChange: (kind) => {
      o.source?.onChange?.(kind);
      if (kind === 'ConfigMap') takeBundle();
      if (kind === 'Namespace' || kind === 'ConfigMap') void publisher?.reconcile();
      // Someone else touched a route's status: check ours is still there.
      if (kind === 'HTTPRoute' || kind === 'GRPCRoute' || kind.startsWith('Backend')) writer?.schedule();
    },
  });
  await source.start();
  takeBundle();
  const secretWatch = o.authority
    ? new IssuerSecretWatch({
        client: source.client,
        namespace: controlNamespace,
        onIssuer: (issuer, from) => {
          seenIssuer = issuer;
          offer(from);
        },
        log,
      })
    : undefined;
  secretWatch?.start();
  await secretWatch?.synced;
  const lease = new LeaseElector({
    client: source.client,
    identity: o.identity,
    ...(o.leaseNamespace ? { namespace: o.leaseNamespace } : {}),
    log,
    onChange: (leader) => {
      if (!leader) return;
      writer?.schedule();
      void publisher?.reconcile();
    },
  });
  writer = new KubernetesStatusWriter({ client: source.client, source, isLeader: () => lease.isLeader(), log });
  publisher = new TrustAnchorPublisher({
    client: source.client,
    source,
    bundle: o.trustBundle,
    isLeader: () => lease.isLeader(),
    log,
    // With rotation, control's own namespace holds the operator's copy: read it, never overwrite it.
    ...(o.authority ? { sourceNamespace: controlNamespace } : {}),
  });
  const republish = () => void publisher?.reconcile();
  o.authority?.on('changed', republish);
  lease.start();
  const w = writer;
  return {
    source,
    lease,
    statusWriter: w,
    trustAnchors: publisher,
    authenticate: tokenReviewAuthenticator(source.client),
    onCompiled: (statuses) => w.update(statuses),
    stop: async () => {
      w.stop();
      secretWatch?.stop();
      o.authority?.off('changed', republish);
      source.stop();
      await lease.stop();
    },
  };
}

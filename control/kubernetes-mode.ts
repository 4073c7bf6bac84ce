// Everything control needs in a cluster, started together: the API source
// feeding the store, the Lease, the route/policy status writer, the trust
// anchor publisher, and the TokenReview authenticator for Identity.
import { KubeConfig } from '@kubernetes/client-node';
import type { Authenticator } from './identity-server.js';
import { KubernetesSource, type KubernetesSourceOptions } from './source-kubernetes.js';
import { KubernetesStatusWriter, LeaseElector } from './status-writer-kubernetes.js';
import type { Store } from './store.js';
import { TrustAnchorPublisher } from './trust-anchor-kubernetes.js';
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
  const source = new KubernetesSource({
    ...o.source,
    kubeConfig,
    store: o.store,
    log,
    onChange: (kind) => {
      o.source?.onChange?.(kind);
      if (kind === 'Namespace' || kind === 'ConfigMap') void publisher?.reconcile();
      // Someone else touched a route's status: check ours is still there.
      if (kind === 'HTTPRoute' || kind === 'GRPCRoute' || kind.startsWith('Backend')) writer?.schedule();
    },
  });
  await source.start();
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
  publisher = new TrustAnchorPublisher({ client: source.client, source, bundle: o.trustBundle, isLeader: () => lease.isLeader(), log });
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
      source.stop();
      await lease.stop();
    },
  };
}

// Injected pods mount the trust anchor from a ConfigMap `weft-trust-anchor` in
// their own namespace (a pod can only mount ConfigMaps of its namespace), so
// control keeps a copy in every namespace, like kube-root-ca.crt. Written only
// by the Lease holder, only when missing or different.
import type { ConfigMap, Namespace } from '../api/index.js';
import { KubeApiError, type KubeClient } from './kubernetes-client.js';
import type { KubernetesSource } from './source-kubernetes.js';

export const TRUST_ANCHOR_CONFIGMAP = 'weft-trust-anchor';
export const TRUST_ANCHOR_KEY = 'ca-bundle.pem';
const SKIP = new Set(['kube-system', 'kube-public', 'kube-node-lease']);

export interface TrustAnchorPublisherOptions {
  client: KubeClient;
  source: KubernetesSource;
  /** The PEM bundle of anchors to publish (old and new during rotation). */
  bundle: () => string;
  isLeader: () => boolean;
  log?: (line: string) => void;
  /** The namespace whose ConfigMap is the operator's source (rotation): skipped, never written. */
  sourceNamespace?: string;
}

export class TrustAnchorPublisher {
  constructor(private readonly o: TrustAnchorPublisherOptions) {}

  /** One pass; returns the namespaces written. Call on Namespace/ConfigMap changes and on gaining the lease. */
  async reconcile(): Promise<string[]> {
    if (!this.o.isLeader()) return [];
    const bundle = this.o.bundle();
    if (!bundle.includes('BEGIN CERTIFICATE')) return [];
    const existing = new Map<string, ConfigMap>();
    for (const cm of this.o.source.objects('ConfigMap') as ConfigMap[]) {
      if (cm.metadata.name === TRUST_ANCHOR_CONFIGMAP) existing.set(cm.metadata.namespace ?? 'default', cm);
    }
    const written: string[] = [];
    for (const ns of this.o.source.objects('Namespace') as Namespace[]) {
      const name = ns.metadata.name;
      if (SKIP.has(name) || name === this.o.sourceNamespace) continue;
      const cur = existing.get(name);
      if (cur?.data?.[TRUST_ANCHOR_KEY] === bundle) continue;
      const body = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: TRUST_ANCHOR_CONFIGMAP,
          namespace: name,
          labels: { 'app.kubernetes.io/managed-by': 'weft', 'app.kubernetes.io/part-of': 'weft' },
          ...(cur?.metadata.resourceVersion ? { resourceVersion: cur.metadata.resourceVersion } : {}),
        },
        data: { [TRUST_ANCHOR_KEY]: bundle },
      };
      try {
        if (cur) await this.o.client.request(`/api/v1/namespaces/${name}/configmaps/${TRUST_ANCHOR_CONFIGMAP}`, { method: 'PUT', body });
        else await this.o.client.request(`/api/v1/namespaces/${name}/configmaps`, { method: 'POST', body });
        written.push(name);
      } catch (e) {
        // 409: someone changed it or created it meanwhile; the watch brings it and we try again.
        if (!(e instanceof KubeApiError && e.code === 409)) this.o.log?.(`trust anchor ConfigMap in ${name}: ${(e as Error).message}`);
      }
    }
    return written;
  }
}

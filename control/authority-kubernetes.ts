// In a cluster the issuer and trust bundle come from the Secret weft-issuer
// and the ConfigMap weft-trust-anchor in control's namespace (what `weft
// certs manifests --dir DIR | kubectl apply -f -` writes). The kubelet
// refreshes mounted copies only after a minute or so, so control watches both
// objects through the API: the ConfigMap via the source's ConfigMap
// reflector (see kubernetes-mode.ts), the Secret here, by name (RBAC grants
// get/list/watch on that one Secret only, which needs the metadata.name
// field selector).
import { Watch } from '@kubernetes/client-node';
import type { ConfigMap } from '../api/index.js';
import { KubeApiError, isStatus, type KubeClient } from './kubernetes-client.js';

export const ISSUER_SECRET = 'weft-issuer';
export const ISSUER_SECRET_CERT = 'issuer.pem';
export const ISSUER_SECRET_KEY = 'issuer.key';
export const TRUST_ANCHOR_CONFIGMAP_KEY = 'ca-bundle.pem';

interface RawSecret {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** The issuer in a Secret's data (base64, as the API returns it); an error naming the key when absent. */
export function issuerOfSecret(s: RawSecret): { certPem: string; keyPem: string } | { error: string } {
  const get = (k: string): string | undefined => {
    const b = s.data?.[k];
    if (b !== undefined) return Buffer.from(b, 'base64').toString('utf8');
    return s.stringData?.[k];
  };
  const certPem = get(ISSUER_SECRET_CERT);
  const keyPem = get(ISSUER_SECRET_KEY);
  const where = `Secret ${s.metadata?.namespace ?? '?'}/${s.metadata?.name ?? '?'}`;
  if (!certPem) return { error: `${where}: data.${ISSUER_SECRET_CERT}: missing` };
  if (!keyPem) return { error: `${where}: data.${ISSUER_SECRET_KEY}: missing` };
  return { certPem, keyPem };
}

/** The trust bundle of the ConfigMap weft-trust-anchor in `namespace`, if the source holds it. */
export function bundleOfConfigMaps(configMaps: ConfigMap[], namespace: string, name: string): string | undefined {
  const cm = configMaps.find((c) => c.metadata.name === name && (c.metadata.namespace ?? 'default') === namespace);
  return cm?.data?.[TRUST_ANCHOR_CONFIGMAP_KEY];
}

export interface IssuerSecretWatchOptions {
  client: KubeClient;
  namespace: string;
  name?: string;
  /** Every readable version of the Secret. */
  onIssuer: (issuer: { certPem: string; keyPem: string }, from: string) => void;
  log: (line: string) => void;
  /** First retry delay after an error (doubles up to 30 s). */
  backoffMs?: number;
}

/** List-then-watch of one Secret; every readable version of it goes to onIssuer. */
export class IssuerSecretWatch {
  private stopped = false;
  private abort: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rv = '';
  private failures = 0;
  private firstResolve!: () => void;
  /** Resolves after the first list (found or not). */
  readonly synced: Promise<void> = new Promise((r) => (this.firstResolve = r));

  constructor(private readonly o: IssuerSecretWatchOptions) {}

  private get name(): string {
    return this.o.name ?? ISSUER_SECRET;
  }

  private get path(): string {
    return `/api/v1/namespaces/${this.o.namespace}/secrets`;
  }

  start(): void {
    void this.list();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort?.abort();
  }

  private later(fn: () => void, ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(fn, ms);
    this.timer.unref();
  }

  private backoff(): number {
    const base = Math.min(30_000, (this.o.backoffMs ?? 500) * 2 ** Math.min(this.failures++, 10));
    return base / 2 + Math.random() * (base / 2);
  }

  private take(s: RawSecret): void {
    if (s.metadata?.name !== this.name) return; // a server that ignores the field selector
    const issuer = issuerOfSecret(s);
    if ('error' in issuer) {
      this.o.log(`issuer: ${issuer.error}; keeping the current issuer`);
      return;
    }
    this.o.onIssuer(issuer, `Secret ${this.o.namespace}/${this.name}`);
  }

  private async list(): Promise<void> {
    if (this.stopped) return;
    try {
      const q = new URLSearchParams({ fieldSelector: `metadata.name=${this.name}` });
      const page = await this.o.client.request<{ metadata?: { resourceVersion?: string }; items?: RawSecret[] }>(`${this.path}?${q}`);
      this.rv = page.metadata?.resourceVersion ?? '';
      for (const s of page.items ?? []) this.take(s);
      this.failures = 0;
      this.firstResolve();
      void this.watch();
    } catch (e) {
      const wait = this.backoff();
      const code = e instanceof KubeApiError ? e.code : 0;
      this.o.log(`issuer Secret ${this.o.namespace}/${this.name}: list failed (${code || ''} ${(e as Error).message}); retrying in ${Math.round(wait)} ms`);
      this.firstResolve();
      this.later(() => void this.list(), wait);
    }
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    let gone = false;
    const w = new Watch(this.o.client.kc);
    const onEvent = (type: string, obj: unknown) => {
      if (this.stopped) return;
      if (type === 'ERROR') {
        if (isStatus(obj) && obj.code === 410) gone = true;
        this.abort?.abort();
        return;
      }
      const s = obj as RawSecret;
      if (s?.metadata?.resourceVersion) this.rv = s.metadata.resourceVersion;
      if (type === 'ADDED' || type === 'MODIFIED') this.take(s);
      // DELETED: keep signing with the issuer in hand; a missing Secret is an operator's mistake.
    };
    const onDone = (err: unknown) => {
      if (this.stopped) return;
      if (gone || (err as { statusCode?: number } | null)?.statusCode === 410) return this.later(() => void this.list(), 0);
      if (err && (err as Error).name !== 'AbortError') return this.later(() => void this.watch(), this.backoff());
      this.later(() => void this.watch(), 100);
    };
    try {
      const ctl = await w.watch(this.path, { resourceVersion: this.rv, fieldSelector: `metadata.name=${this.name}`, allowWatchBookmarks: true, timeoutSeconds: 300 }, onEvent, onDone);
      if (this.stopped) ctl.abort();
      else this.abort = ctl;
    } catch (e) {
      onDone(e);
    }
  }
}

// A fake kube-apiserver for tests, speaking the real wire format over HTTPS:
// lists with resourceVersion and limit/continue, watches as chunked JSON lines
// (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR), 410 Gone for compacted
// resourceVersions, the status subresource with optimistic concurrency, Leases,
// TokenReviews, and knobs to drop connections and fail requests.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { createIssuer, createTrustAnchor, issueCert } from '../../../certs/index.js';

export type Obj = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number; uid?: string; [k: string]: unknown }; status?: unknown; [k: string]: unknown };
interface Event { rv: number; type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Obj }
interface Collection { apiVersion: string; kind: string; items: Map<string, Obj>; events: Event[]; namespaced: boolean }
interface Watcher { coll: string; res: ServerResponse; bookmarks: boolean }

export interface RecordedRequest { method: string; path: string; query: URLSearchParams; body?: unknown }

/** Collection id → apiVersion/kind; the path prefix is /api/v1 or /apis/<group>/<version>. */
export const COLLECTIONS: Record<string, { apiVersion: string; kind: string; namespaced?: boolean }> = {
  '/api/v1/namespaces': { apiVersion: 'v1', kind: 'Namespace', namespaced: false },
  '/api/v1/services': { apiVersion: 'v1', kind: 'Service' },
  '/api/v1/configmaps': { apiVersion: 'v1', kind: 'ConfigMap' },
  '/api/v1/secrets': { apiVersion: 'v1', kind: 'Secret' },
  '/api/v1/pods': { apiVersion: 'v1', kind: 'Pod' },
  '/apis/discovery.k8s.io/v1/endpointslices': { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' },
  '/apis/gateway.networking.k8s.io/v1/httproutes': { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute' },
  '/apis/gateway.networking.k8s.io/v1/grpcroutes': { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute' },
  '/apis/gateway.networking.k8s.io/v1beta1/referencegrants': { apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant' },
  '/apis/gateway.networking.k8s.io/v1alpha2/backendlbpolicies': { apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'BackendLBPolicy' },
  '/apis/gateway.networking.k8s.io/v1alpha3/backendtlspolicies': { apiVersion: 'gateway.networking.k8s.io/v1alpha3', kind: 'BackendTLSPolicy' },
  '/apis/policy.weft.io/v1alpha1/authorizationpolicies': { apiVersion: 'policy.weft.io/v1alpha1', kind: 'AuthorizationPolicy' },
  '/apis/coordination.k8s.io/v1/leases': { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' },
  '/apis/apps/v1/deployments': { apiVersion: 'apps/v1', kind: 'Deployment' },
  '/apis/apiextensions.k8s.io/v1/customresourcedefinitions': { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', namespaced: false },
  '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', namespaced: false },
};

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeKubeApiServer {
  private server!: https.Server;
  private rv = 100;
  private compactedBelow = 0;
  private readonly colls = new Map<string, Collection>();
  private readonly watchers = new Set<Watcher>();
  private readonly failures: { method: string; path: RegExp; code: number; times: number }[] = [];
  readonly requests: RecordedRequest[] = [];
  readonly tokens = new Map<string, { username: string; audiences: string[]; podName?: string }>();
  readonly bearer = 'fake-admin-token';
  port = 0;
  caPem = '';
  /** Collections answered with 404 (a CRD not installed). */
  readonly missing = new Set<string>();
  serviceProxyReply = 'ok\n';

  constructor(readonly host = '127.0.0.1') {
    for (const [path, c] of Object.entries(COLLECTIONS)) {
      this.colls.set(path, { apiVersion: c.apiVersion, kind: c.kind, items: new Map(), events: [], namespaced: c.namespaced !== false });
    }
  }

  async start(): Promise<void> {
    const anchor = createTrustAnchor();
    const issuer = createIssuer(anchor);
    const cert = issueCert(issuer, { ipAddresses: [this.host], dnsNames: ['localhost'] });
    this.caPem = anchor.certPem;
    this.server = https.createServer({ cert: cert.certPem + issuer.certPem, key: cert.keyPem }, (req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, this.host, () => r()));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  kubeConfig(token = this.bearer): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: `https://${this.host}:${this.port}`, caData: Buffer.from(this.caPem).toString('base64') }],
      users: [{ name: 'u', token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
      currentContext: 'fake',
    });
    return kc;
  }

  /**
   * Runs kubectl against this server (async: the server lives in this process).
   * With legacy discovery served, `kubectl apply --dry-run=client` decodes every
   * object into its Go type and maps it to a resource, without changing anything.
   */
  async kubectl(kubeconfigPath: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(kubeconfigPath, this.kubeConfigYaml());
    return new Promise((resolve) => {
      const p = spawn('kubectl', ['--kubeconfig', kubeconfigPath, ...args]);
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('error', (e) => resolve({ code: -1, stdout, stderr: stderr + e.message }));
      p.on('close', (code) => resolve({ code, stdout, stderr }));
      p.stdin.end(input ?? '');
    });
  }

  /** A kubeconfig file's YAML for CLIs. */
  kubeConfigYaml(token = this.bearer): string {
    return this.kubeConfig(token).exportConfig();
  }

  get resourceVersion(): number {
    return this.rv;
  }

  private coll(path: string): Collection {
    const c = this.colls.get(path);
    if (!c) throw new Error(`fake apiserver: unknown collection ${path}`);
    return c;
  }

  private key(ns: string | undefined, name: string): string {
    return `${ns ?? ''}/${name}`;
  }

  private emit(path: string, type: Event['type'], object: Obj): void {
    const c = this.coll(path);
    const ev: Event = { rv: Number(object.metadata.resourceVersion), type, object: structuredClone(object) };
    c.events.push(ev);
    for (const w of this.watchers) if (w.coll === path) this.send(w, ev);
  }

  private send(w: Watcher, ev: { type: string; object: unknown }): void {
    w.res.write(JSON.stringify(ev) + '\n');
  }

  /** Create or replace an object (as another client would); bumps generation when spec changes. */
  apply(path: string, obj: Obj): Obj {
    const c = this.coll(path);
    const o = structuredClone(obj);
    o.apiVersion = c.apiVersion;
    o.kind = c.kind;
    if (c.namespaced) o.metadata.namespace = o.metadata.namespace ?? 'default';
    const k = this.key(o.metadata.namespace, o.metadata.name);
    const old = c.items.get(k);
    o.metadata.resourceVersion = String(++this.rv);
    o.metadata.uid = old?.metadata.uid ?? `uid-${this.rv}`;
    o.metadata.creationTimestamp = old?.metadata['creationTimestamp'] ?? '2026-11-29T00:00:00Z';
    const specChanged = !old || JSON.stringify(old['spec']) !== JSON.stringify(o['spec']);
    o.metadata.generation = (old?.metadata.generation ?? 0) + (specChanged ? 1 : 0);
    // Like resources with a status subresource: an update never changes status
    // (setStatus does). A create may carry one, as a test convenience.
    if (old) {
      if (old.status === undefined) delete o.status;
      else o.status = old.status;
    }
    c.items.set(k, o);
    this.emit(path, old ? 'MODIFIED' : 'ADDED', o);
    return o;
  }

  /** Writes status as another controller would (via the status subresource). */
  setStatus(path: string, ns: string | undefined, name: string, st: unknown): Obj {
    const c = this.coll(path);
    const k = this.key(ns, name);
    const cur = c.items.get(k);
    if (!cur) throw new Error(`setStatus: ${name} not found`);
    const next = structuredClone(cur);
    next.status = structuredClone(st);
    next.metadata.resourceVersion = String(++this.rv);
    c.items.set(k, next);
    this.emit(path, 'MODIFIED', next);
    return next;
  }

  remove(path: string, ns: string | undefined, name: string): void {
    const c = this.coll(path);
    const k = this.key(ns, name);
    const old = c.items.get(k);
    if (!old) return;
    c.items.delete(k);
    const o = structuredClone(old);
    o.metadata.resourceVersion = String(++this.rv);
    this.emit(path, 'DELETED', o);
  }

  get(path: string, ns: string | undefined, name: string): Obj | undefined {
    const o = this.coll(path).items.get(this.key(ns, name));
    return o ? structuredClone(o) : undefined;
  }

  /** Forget history: watches from older resourceVersions get 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv + 1;
    for (const c of this.colls.values()) c.events = [];
  }

  /** Send a BOOKMARK with the current resourceVersion to every watcher that asked for them. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const c = this.coll(w.coll);
      this.send(w, { type: 'BOOKMARK', object: { apiVersion: c.apiVersion, kind: c.kind, metadata: { resourceVersion: String(this.rv) } } });
    }
  }

  /** Sends ERROR 410 to the open watches (as when etcd compacted past them), then ends them. */
  expireWatches(): void {
    this.compact();
    for (const w of [...this.watchers]) {
      this.send(w, { type: 'ERROR', object: status(410, 'Expired', 'too old resource version') });
      w.res.end();
      this.watchers.delete(w);
    }
  }

  /** Kills every watch connection mid-stream (no clean end). */
  dropWatches(): void {
    for (const w of [...this.watchers]) {
      w.res.socket?.destroy();
      this.watchers.delete(w);
    }
  }

  watchCount(path?: string): number {
    return [...this.watchers].filter((w) => !path || w.coll === path).length;
  }

  failNext(method: string, path: RegExp, code: number, times = 1): void {
    this.failures.push({ method, path, code, times });
  }

  private reply(res: ServerResponse, code: number, body: unknown): void {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(code, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
    res.end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://x');
      let body: unknown;
      if (chunks.length) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return this.reply(res, 400, status(400, 'BadRequest', 'body is not JSON'));
        }
      }
      const method = req.method ?? 'GET';
      this.requests.push({ method, path: url.pathname, query: url.searchParams, ...(body !== undefined ? { body } : {}) });
      if (req.headers.authorization !== `Bearer ${this.bearer}`) return this.reply(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      const f = this.failures.find((x) => x.method === method && x.path.test(url.pathname) && x.times > 0);
      if (f) {
        f.times--;
        return this.reply(res, f.code, status(f.code, f.code === 409 ? 'Conflict' : 'InternalError', `injected failure ${f.code}`));
      }
      try {
        this.route(method, url, body, res);
      } catch (e) {
        this.reply(res, 500, status(500, 'InternalError', (e as Error).message));
      }
    });
  }

  /** Legacy discovery documents (enough for kubectl's REST mapping). */
  private discovery(p: string): unknown {
    const groups = new Map<string, { kind: string; plural: string; namespaced: boolean }[]>();
    const add = (gv: string, kind: string, plural: string, namespaced = true) => {
      const l = groups.get(gv) ?? [];
      l.push({ kind, plural, namespaced });
      groups.set(gv, l);
    };
    for (const [path, c] of Object.entries(COLLECTIONS)) add(c.apiVersion, c.kind, path.split('/').pop() ?? '', c.namespaced !== false);
    add('v1', 'ServiceAccount', 'serviceaccounts');
    add('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false);
    add('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false);
    add('rbac.authorization.k8s.io/v1', 'Role', 'roles');
    add('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings');
    add('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets');
    add('apps/v1', 'StatefulSet', 'statefulsets');
    add('apps/v1', 'DaemonSet', 'daemonsets');
    add('apps/v1', 'ReplicaSet', 'replicasets');
    add('batch/v1', 'Job', 'jobs');
    add('batch/v1', 'CronJob', 'cronjobs');
    if (p === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `${this.host}:${this.port}` }] };
    if (p === '/apis') {
      const gs = [...groups.keys()].filter((gv) => gv.includes('/')).map((gv) => gv.split('/') as [string, string]);
      const byGroup = new Map<string, string[]>();
      for (const [g, v] of gs) byGroup.set(g, [...(byGroup.get(g) ?? []), v]);
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [...byGroup].map(([name, vs]) => ({ name, versions: vs.map((v) => ({ groupVersion: `${name}/${v}`, version: v })), preferredVersion: { groupVersion: `${name}/${vs[0]}`, version: vs[0] } })),
      };
    }
    const gv = p === '/api/v1' ? 'v1' : p.replace(/^\/apis\//, '');
    const rs = groups.get(gv);
    if (!rs) return undefined;
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: gv,
      resources: rs.map((r) => ({ name: r.plural, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] })),
    };
  }

  private route(method: string, url: URL, body: unknown, res: ServerResponse): void {
    const p = url.pathname;
    if (method === 'GET' && (p === '/api' || p === '/apis' || p === '/api/v1' || /^\/apis\/[^/]+\/[^/]+$/.test(p))) {
      const d = this.discovery(p);
      return d ? this.reply(res, 200, d) : this.reply(res, 404, status(404, 'NotFound', p));
    }
    if (method === 'POST' && p === '/apis/authentication.k8s.io/v1/tokenreviews') return this.tokenReview(body, res);
    const proxy = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy\/(.*)$/.exec(p);
    if (proxy) return this.reply(res, 200, this.serviceProxyReply);
    // /api/v1[/namespaces/NS]/PLURAL[/NAME[/status]] and /apis/G/V[/namespaces/NS]/PLURAL[/NAME[/status]]
    const m = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/.exec(p);
    let prefix: string, ns: string | undefined, plural: string, name: string | undefined, sub: string | undefined;
    if (m) [, prefix, ns, plural, name, sub] = m as unknown as [string, string, string | undefined, string, string | undefined, string | undefined];
    else return this.reply(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${p})`));
    // Regex backtracking reads /api/v1/namespaces/NAME as plural=namespaces, name=NAME.
    const cpath = `${prefix}/${plural}`;
    if (this.missing.has(cpath) || !this.colls.has(cpath)) return this.reply(res, 404, status(404, 'NotFound', `the server could not find the requested resource (${p})`));
    const c = this.coll(cpath);
    if (!name) {
      if (method === 'GET' && url.searchParams.get('watch') === 'true') return this.watch(cpath, ns, url.searchParams, res);
      if (method === 'GET') return this.list(cpath, ns, url.searchParams, res);
      if (method === 'POST') {
        const o = body as Obj;
        if (c.items.has(this.key(ns ?? o.metadata?.namespace, o.metadata?.name))) return this.reply(res, 409, status(409, 'AlreadyExists', `${c.kind} "${o.metadata.name}" already exists`));
        return this.reply(res, 201, this.apply(cpath, { ...o, metadata: { ...o.metadata, ...(ns ? { namespace: ns } : {}) } }));
      }
      return this.reply(res, 405, status(405, 'MethodNotAllowed', method));
    }
    const cur = c.items.get(this.key(c.namespaced ? ns ?? 'default' : undefined, name));
    if (method === 'GET') return cur ? this.reply(res, 200, cur) : this.reply(res, 404, status(404, 'NotFound', `${c.kind} "${name}" not found`));
    if (method === 'PUT') {
      if (!cur) return this.reply(res, 404, status(404, 'NotFound', `${c.kind} "${name}" not found`));
      const o = body as Obj;
      if (o.metadata?.resourceVersion !== cur.metadata.resourceVersion) {
        return this.reply(res, 409, status(409, 'Conflict', `Operation cannot be fulfilled on ${c.kind} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
      }
      if (sub === 'status') {
        // The status subresource changes status only; spec and generation stay.
        const next = structuredClone(cur);
        next.status = o.status;
        next.metadata.resourceVersion = String(++this.rv);
        c.items.set(this.key(cur.metadata.namespace, name), next);
        this.emit(cpath, 'MODIFIED', next);
        return this.reply(res, 200, next);
      }
      return this.reply(res, 200, this.apply(cpath, { ...o, metadata: { ...o.metadata, name, ...(ns ? { namespace: ns } : {}) } }));
    }
    return this.reply(res, 405, status(405, 'MethodNotAllowed', method));
  }

  private list(cpath: string, ns: string | undefined, q: URLSearchParams, res: ServerResponse): void {
    const c = this.coll(cpath);
    let items = [...c.items.values()].filter((o) => !ns || o.metadata.namespace === ns).sort((a, b) => this.key(a.metadata.namespace, a.metadata.name).localeCompare(this.key(b.metadata.namespace, b.metadata.name)));
    const limit = Number(q.get('limit') ?? 0);
    const start = Number(q.get('continue') ?? 0);
    let cont: string | undefined;
    if (limit > 0) {
      if (start + limit < items.length) cont = String(start + limit);
      items = items.slice(start, start + limit);
    }
    // List items carry no kind/apiVersion, as the real API server sends them.
    const stripped = items.map((o) => {
      const { apiVersion: _a, kind: _k, ...rest } = o;
      return rest;
    });
    this.reply(res, 200, { kind: `${c.kind}List`, apiVersion: c.apiVersion, metadata: { resourceVersion: String(this.rv), ...(cont ? { continue: cont } : {}) }, items: stripped });
  }

  private watch(cpath: string, ns: string | undefined, q: URLSearchParams, res: ServerResponse): void {
    const c = this.coll(cpath);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders(); // as the real API server does: the client sees the watch open before any event
    const w: Watcher = { coll: cpath, res, bookmarks: q.get('allowWatchBookmarks') === 'true' };
    const from = q.get('resourceVersion');
    if (from && from !== '0' && Number(from) < this.compactedBelow) {
      this.send(w, { type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${from} (${this.compactedBelow})`) });
      res.end();
      return;
    }
    if (!from || from === '0') {
      for (const o of c.items.values()) if (!ns || o.metadata.namespace === ns) this.send(w, { type: 'ADDED', object: o });
    } else {
      for (const ev of c.events) if (ev.rv > Number(from)) this.send(w, { type: ev.type, object: ev.object });
    }
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
    const t = Number(q.get('timeoutSeconds') ?? 0);
    if (t > 0) {
      const timer = setTimeout(() => {
        this.watchers.delete(w);
        res.end();
      }, t * 1000);
      timer.unref();
      res.on('close', () => clearTimeout(timer));
    }
  }

  private tokenReview(body: unknown, res: ServerResponse): void {
    const spec = (body as { spec?: { token?: string; audiences?: string[] } })?.spec ?? {};
    const t = this.tokens.get(spec.token ?? '');
    const wanted = spec.audiences ?? [];
    const aud = t ? t.audiences.filter((a) => wanted.length === 0 || wanted.includes(a)) : [];
    const ok = !!t && aud.length > 0;
    this.reply(res, 201, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec,
      status: ok
        ? { authenticated: true, audiences: aud, user: { username: t.username, uid: 'u', groups: ['system:serviceaccounts'], ...(t.podName ? { extra: { 'authentication.kubernetes.io/pod-name': [t.podName] } } : {}) } }
        : { authenticated: false, error: t ? '[invalid bearer token, token audiences do not match]' : '[invalid bearer token]' },
    });
  }
}

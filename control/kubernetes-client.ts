// A thin JSON client for the Kubernetes API on top of @kubernetes/client-node's
// KubeConfig (credentials, CA, in-cluster token refresh) and Watch (the
// streaming watch). Lists, gets and writes are plain HTTPS requests so that
// every kind, CRDs included, goes through one small path.
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${code} ${reason}: ${message}`);
  }
}

export interface KubeStatus {
  kind: 'Status';
  code?: number;
  reason?: string;
  message?: string;
}

export function isStatus(v: unknown): v is KubeStatus {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

export class KubeClient {
  constructor(readonly kc: KubeConfig) {}

  get server(): string {
    const c = this.kc.getCurrentCluster();
    if (!c) throw new Error('kubeconfig: no current cluster');
    return c.server;
  }

  async request<T = unknown>(path: string, o: RequestOptions = {}): Promise<T> {
    const method = o.method ?? 'GET';
    const url = new URL(this.server + path);
    if (url.protocol !== 'https:') throw new Error(`kubernetes API ${this.server}: only https is supported`);
    const opts: https.RequestOptions = {
      method,
      hostname: url.hostname,
      port: url.port || 443,
      path: url.pathname + url.search,
      headers: { accept: 'application/json' },
    };
    await this.kc.applyToHTTPSOptions(opts);
    const body = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    if (body) {
      (opts.headers as Record<string, string | number>)['content-type'] = o.contentType ?? 'application/json';
      (opts.headers as Record<string, string | number>)['content-length'] = body.length;
    }
    return new Promise<T>((resolve, reject) => {
      const req = https.request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) return resolve(json as T);
          const st = isStatus(json) ? json : undefined;
          reject(new KubeApiError(code, st?.reason ?? res.statusMessage ?? '', st?.message ?? text.slice(0, 200), method, path));
        });
      });
      req.setTimeout(o.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }
}

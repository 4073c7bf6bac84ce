// Control's admin HTTP listener (default 127.0.0.1:7091): /metrics for
// Prometheus, /ready and /live for probes, /resources for `weft get` and
// `weft describe`, /config/<ns>/<svc>?consumer=<ns> to see exactly what a
// sidecar in that namespace is sent.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AnyResource } from '../api/index.js';
import type { ControlMetrics } from './metrics.js';
import type { RegistryEntry } from './registry.js';
import type { ConfigError, ResourceStatus } from './types.js';

export interface AdminSources {
  metrics: ControlMetrics;
  ready: () => boolean;
  resources: () => AnyResource[];
  statuses: () => ResourceStatus[];
  errors: () => ConfigError[];
  registered: () => RegistryEntry[];
  /** Serialized view, or null when the Service does not exist. */
  view: (service: string, consumerNamespace: string) => Buffer | null;
  /** Extra facts for /resources (versions, last push). */
  info?: () => Record<string, unknown>;
}

/** The body of GET /resources. */
export interface ResourcesResponse {
  resources: AnyResource[];
  statuses: ResourceStatus[];
  errors: ConfigError[];
  registered: RegistryEntry[];
  [extra: string]: unknown;
}

function send(res: ServerResponse, status: number, body: string | Buffer, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function createAdminServer(src: AdminSources): Server {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed\n');
      return;
    }
    const path = url.pathname;
    if (path === '/metrics') {
      send(res, 200, await src.metrics.text(), src.metrics.registry.contentType);
      return;
    }
    if (path === '/live') {
      send(res, 200, 'ok\n');
      return;
    }
    if (path === '/ready') {
      if (src.ready()) send(res, 200, 'ready\n');
      else send(res, 503, 'not ready\n');
      return;
    }
    if (path === '/resources') {
      const body: ResourcesResponse = {
        resources: src.resources(),
        statuses: src.statuses(),
        errors: src.errors(),
        registered: src.registered(),
        ...(src.info?.() ?? {}),
      };
      send(res, 200, JSON.stringify(body), 'application/json');
      return;
    }
    const m = /^\/config\/([^/]+)\/([^/]+)\/?$/.exec(path);
    if (m) {
      const ns = decodeURIComponent(m[1]!);
      const name = decodeURIComponent(m[2]!);
      const consumer = url.searchParams.get('consumer') || ns;
      const bytes = src.view(`${ns}/${name}`, consumer);
      if (!bytes) send(res, 404, JSON.stringify({ error: `Service ${ns}/${name} not found` }), 'application/json');
      else send(res, 200, bytes, 'application/json');
      return;
    }
    send(res, 404, 'not found: try /metrics, /ready, /live, /resources, /config/<namespace>/<service>?consumer=<namespace>\n');
  };
  return createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, `${(e as Error).message}\n`);
      else res.destroy();
    });
  });
}

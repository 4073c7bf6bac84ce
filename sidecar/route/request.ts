// The request value every protocol adapter builds from a request head, and
// the one thing the decision reads: method, authority, path and query
// (split once), a read-only view of the headers (no copy: the adapter's own
// header object stays where it is), the protocol the request came in on,
// and the caller's identity when a mesh hop told us.
import type { IncomingHttpHeaders } from 'node:http';

/** Read-only header access by lower-case name; repeated fields joined with ", " (RFC 9110 5.3). */
export interface HeaderView {
  get(name: string): string | undefined;
}

export type RequestProtocol = 'http1' | 'h2' | 'grpc' | 'upgrade';

export interface MeshRequest {
  method: string;
  /** Host[:port] the request is for (Host, :authority or the absolute URI). */
  authority: string;
  /** Path without the query (origin-form). */
  path: string;
  /** Raw query without '?', '' when absent. */
  query: string;
  headers: HeaderView;
  protocol: RequestProtocol;
  /** The caller's SPIFFE ID (inbound side), when known. */
  peer?: string;
}

/**
 * A view over node's lower-cased header object (IncomingMessage.headers or
 * an http2 stream's headers). Node already joined repeated fields (cookie
 * with "; "); only set-cookie-like arrays are left, joined here.
 */
export class NodeHeaderView implements HeaderView {
  constructor(readonly raw: IncomingHttpHeaders) {}
  get(name: string): string | undefined {
    const v = this.raw[name];
    if (v === undefined) return undefined;
    return typeof v === 'string' ? v : v.join(', ');
  }
}

export function headerView(raw: IncomingHttpHeaders): HeaderView {
  return new NodeHeaderView(raw);
}

/** Splits a request target's origin-form into path and query. */
export function splitTarget(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

/** The request value of an HTTP/1.1 request (origin-form target; the adapter resolved absolute-form into `authority`). */
export function requestOfHttp1(method: string, url: string, authority: string, raw: IncomingHttpHeaders, upgrade: boolean): MeshRequest {
  const { path, query } = splitTarget(url);
  return { method, authority, path, query, headers: new NodeHeaderView(raw), protocol: upgrade ? 'upgrade' : 'http1' };
}

/** The request value of an HTTP/2 stream (gRPC when content-type says so). */
export function requestOfH2(raw: IncomingHttpHeaders, grpc: boolean): MeshRequest {
  const { path, query } = splitTarget((raw[':path'] as string | undefined) ?? '/');
  return {
    method: (raw[':method'] as string | undefined) ?? 'GET',
    authority: ((raw[':authority'] ?? raw.host) as string | undefined) ?? '',
    path,
    query,
    headers: new NodeHeaderView(raw),
    protocol: grpc ? 'grpc' : 'h2',
  };
}

// The engine's side of the pipeline's adapter boundary (outbound-route.ts:
// "build a MeshRequest, implement Carrier"): the request value of a parsed
// head, and the Answerer that writes mesh-made answers on a ServerConn in the
// same shape as http1Answerer (proxy-errors.ts) writes them on node:http.
import type { MeshRequest } from '../route/request.js';
import { splitTarget } from '../route/request.js';
import type { Answerer } from '../errors/proxy-errors.js';
import { proxyErrorLine } from './head-write.js';
import type { Head } from './parser.js';
import type { ServerConn } from './server-conn.js';

/**
 * The request value of an HTTP/1.1 head. An absolute-form target (the app
 * uses us as its HTTP proxy) gives the authority and an origin-form path;
 * otherwise Host does. The head itself is the HeaderView (no header copy).
 */
export function requestOfHead(head: Head): MeshRequest {
  let url = head.target;
  let authority = head.host ?? '';
  if (url.charCodeAt(0) !== 47 /* '/' */ && url !== '*' && head.method !== 'CONNECT') {
    const scheme = url.indexOf('://');
    if (scheme > 0) {
      const slash = url.indexOf('/', scheme + 3);
      const q = url.indexOf('?', scheme + 3);
      const end = slash < 0 ? (q < 0 ? url.length : q) : q >= 0 && q < slash ? q : slash;
      authority = url.slice(scheme + 3, end);
      url = end === url.length ? '/' : url[end] === '?' ? '/' + url.slice(end) : url.slice(end);
    }
  } else if (head.method === 'CONNECT') {
    authority = url;
    url = '/';
  }
  const { path, query } = splitTarget(url);
  return { method: head.method, authority, path, query, headers: head, protocol: head.upgrade ? 'upgrade' : 'http1' };
}

/** Mesh-made answers on the engine: weft-proxy-error with the reason, Connection: close when draining or once a response has started. */
export function engineAnswerer(conn: ServerConn, started: () => boolean): Answerer {
  return {
    fail(status, reason) {
      if (started()) {
        conn.destroy();
        return { status, grpcStatus: '', proxyError: reason };
      }
      conn.respond(status, `${reason}\n`, [proxyErrorLine(reason)]);
      return { status, grpcStatus: '', proxyError: reason };
    },
    redirect(status, location) {
      conn.write(`HTTP/1.1 ${status} Redirect\r\nlocation: ${location.replace(/[^\x20-\x7e]/g, '')}\r\ncontent-length: 0\r\n${conn.draining() || !conn.head?.keepAlive ? 'connection: close\r\n' : ''}\r\n`);
      conn.endResponse();
      return { status, grpcStatus: '', proxyError: undefined };
    },
  };
}

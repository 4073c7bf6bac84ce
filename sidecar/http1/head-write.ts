// Heads go out as the bytes they came in: a head without hop-by-hop fields
// and without edits is forwarded as its own Buffer. Otherwise the start line
// and the surviving field lines are copied as byte ranges (no per-header
// strings), and added lines are appended before the final CRLF.
import { eqLower, latin1 } from './chars.js';
import { forEachToken, type Head } from './parser.js';

const CRLF = Buffer.from('\r\n');

export interface HeadEdits {
  /** Replace the request-target (URL rewrite). */
  target?: string;
  /** Lower-case names whose field lines are dropped. */
  remove?: readonly string[];
  /** Field lines added at the end, each "name: value" without CRLF. */
  add?: readonly string[];
  /** Keep Upgrade and Connection (an Upgrade request or a 101 answer being relayed). */
  keepUpgrade?: boolean;
}

const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization'];

/** The head as it should travel to the next hop: hop-by-hop fields (RFC 9110 §7.6.1) removed, edits applied. */
export function forwardHead(head: Head, edits?: HeadEdits): Buffer {
  const hasEdits = edits !== undefined && (edits.target !== undefined || (edits.remove?.length ?? 0) > 0 || (edits.add?.length ?? 0) > 0);
  if (head.hop === 0 && !hasEdits) return head.buf;
  const buf = head.buf;
  const f = head.fields;
  // Names listed in Connection are hop-by-hop too.
  const listed: string[] = [];
  for (let i = 0; i < head.count; i++) {
    if (eqLower(buf, f[4 * i]!, f[4 * i + 1]!, 'connection')) {
      forEachToken(buf, f[4 * i + 2]!, f[4 * i + 3]!, (s, e) => {
        const n = latin1(buf, s, e).toLowerCase();
        if (n !== 'close' && n !== 'keep-alive' && !(edits?.keepUpgrade && n === 'upgrade')) listed.push(n);
      });
    }
  }
  const parts: Buffer[] = [];
  if (edits?.target !== undefined && head.isRequest) {
    parts.push(buf.subarray(0, head.targetStart), Buffer.from(edits.target, 'latin1'), buf.subarray(head.targetEnd, head.fieldsStart));
  } else parts.push(buf.subarray(0, head.fieldsStart));
  // Copy runs of kept lines as one range each.
  let runStart = head.fieldsStart;
  let pos = head.fieldsStart;
  for (let i = 0; i < head.count; i++) {
    const ns = f[4 * i]!;
    const ne = f[4 * i + 1]!;
    const lineEnd = buf.indexOf(10, f[4 * i + 3]!) + 1;
    let drop = false;
    const keepUp = edits?.keepUpgrade === true;
    for (const h of HOP) {
      if (eqLower(buf, ns, ne, h)) {
        drop = !(keepUp && (h === 'upgrade' || h === 'connection'));
        break;
      }
    }
    if (!drop && listed.length) for (const n of listed) if (eqLower(buf, ns, ne, n)) drop = true;
    if (!drop && edits?.remove) for (const n of edits.remove) if (eqLower(buf, ns, ne, n)) drop = true;
    if (drop) {
      if (pos > runStart) parts.push(buf.subarray(runStart, pos));
      runStart = lineEnd;
    }
    pos = lineEnd;
  }
  if (pos > runStart) parts.push(buf.subarray(runStart, pos));
  if (edits?.add) for (const line of edits.add) parts.push(Buffer.from(line + '\r\n', 'latin1'));
  parts.push(CRLF);
  return Buffer.concat(parts);
}

const REASONS: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 413: 'Content Too Large', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

/** The weft-proxy-error field line of a mesh-made answer (reason made header-safe: printable ASCII only). */
export function proxyErrorLine(reason: string): string {
  return `weft-proxy-error: ${reason.replace(/[^\x20-\x7e]/g, ' ')}`;
}

/** A complete response made by the mesh itself (errors): one Buffer, Content-Length framed. */
export function simpleResponse(status: number, body: string, fields: readonly string[] = [], close = false): Buffer {
  const b = Buffer.from(body);
  let head = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Status'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${b.length}\r\n`;
  for (const f of fields) head += f + '\r\n';
  if (close) head += 'connection: close\r\n';
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), b]);
}

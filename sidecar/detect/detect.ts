// Protocol detection on the first bytes of an accepted connection.
//
// The outbound listener sees whatever the app sends to any port. It peeks at
// the first bytes: an HTTP/1.x request line, the HTTP/2 prior-knowledge
// preface (h2c, and so gRPC), a TLS record (the app's own TLS: passed through
// as opaque bytes), or anything else (opaque TCP). A protocol in which the
// server speaks first (Redis AUTH-less greeting, SMTP, MySQL) sends nothing
// from the client: after `timeoutMs` the connection is opaque, so it never
// hangs. A Service port's `appProtocol` skips detection altogether
// (`declaredProtocol`, or pass `appProtocol` to detect()).
import type { Socket } from 'node:net';
import type { AppProtocol } from '../../api/index.js';

export type DetectedProtocol = 'http1' | 'h2c' | 'tls' | 'opaque';

/** How the answer was reached (for logs and tests; the metric has only `protocol`). */
export type DetectReason = 'sniffed' | 'declared' | 'timeout' | 'eof' | 'limit';

/** Default detection timeout: long enough for a client's first write to arrive, short enough that a server-first protocol's greeting is not noticeably late. */
export const DEFAULT_DETECT_TIMEOUT_MS = 150;

export interface DetectOptions {
  /** Give up and answer 'opaque' after this long without a decision. */
  timeoutMs: number;
  /**
   * The Service port's appProtocol when the sidecar knows the destination
   * Service. 'tcp', 'http', 'http2', 'grpc' decide without reading a byte;
   * '' or undefined means sniff.
   */
  appProtocol?: AppProtocol;
  /** Called once with the outcome, e.g. to count weft_protocol_detections_total{protocol}. */
  onResult?: (protocol: DetectedProtocol, reason: DetectReason, elapsedMs: number) => void;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Longest request line (method, target, version) we wait for before calling it opaque. */
const MAX_REQUEST_LINE = 16 * 1024;

// Methods of RFC 9110, RFC 5789 (PATCH) and WebDAV (RFC 4918), which real
// HTTP/1.x clients send. Any other token still counts as HTTP/1.x when the
// request line ends in " HTTP/1.0" or " HTTP/1.1".
const METHODS = new Set([
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT',
]);
/** tchar of RFC 9110 §5.6.2, as a lookup table (the hot path runs once per connection). */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN[c.charCodeAt(0)] = 1;

/** The protocol a Service port's appProtocol declares, or undefined when it must be detected. */
export function declaredProtocol(appProtocol: AppProtocol | undefined): DetectedProtocol | undefined {
  switch (appProtocol) {
    case 'http':
      return 'http1';
    case 'http2':
    case 'grpc':
      return 'h2c';
    case 'tcp':
      return 'opaque';
    default:
      return undefined;
  }
}

/**
 * Classifies the bytes seen so far: a protocol, or undefined when more bytes
 * are needed to tell. Pure; `classify(b)` on a prefix never contradicts a
 * later answer on a longer prefix except undefined → answer.
 */
export function classify(b: Buffer): DetectedProtocol | undefined {
  if (b.length === 0) return undefined;
  // TLS record: handshake (22), version 3.x. A ClientHello is always first.
  if (b[0] === 0x16) {
    if (b.length < 3) return undefined;
    return b[1] === 0x03 && b[2]! <= 0x04 ? 'tls' : 'opaque';
  }
  // h2c prior knowledge: the fixed 24-byte preface.
  const n = Math.min(b.length, H2_PREFACE.length);
  if (b.compare(H2_PREFACE, 0, n, 0, n) === 0) {
    if (b.length < H2_PREFACE.length) return undefined;
    return 'h2c';
  }
  return classifyHttp1(b);
}

function classifyHttp1(b: Buffer): DetectedProtocol | undefined {
  // method SP request-target SP HTTP/1.x CRLF (RFC 9112 §3).
  let i = 0;
  while (i < b.length && i <= 20 && b[i]! < 128 && TOKEN[b[i]!] === 1) i++;
  if (i === b.length) return i <= 20 ? undefined : 'opaque';
  if (i === 0 || b[i] !== 0x20) return 'opaque';
  const method = b.toString('latin1', 0, i);
  const known = METHODS.has(method);
  // A well-known method followed by a plausible target (origin-form "/",
  // "*", absolute URI, CONNECT authority) is HTTP without waiting for the end
  // of the line; a Redis inline "GET key" is not.
  if (known && b.length > i + 1) {
    const c = b[i + 1]!;
    if (c === 0x2f /* / */ || c === 0x2a /* * */ || (method === 'CONNECT' && c !== 0x20)) return 'http1';
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(b.toString('latin1', i + 1, Math.min(b.length, i + 40)))) return 'http1';
  }
  const eol = b.indexOf(0x0a, i);
  if (eol < 0) return b.length >= MAX_REQUEST_LINE ? 'opaque' : undefined;
  const line = b.toString('latin1', 0, eol > 0 && b[eol - 1] === 0x0d ? eol - 1 : eol);
  return / HTTP\/1\.[01]$/.test(line) ? 'http1' : 'opaque';
}

/** The peer's FIN has been read (the stream may still hold unread bytes; 'end' not yet emitted). */
function eofReceived(socket: Socket): boolean {
  const st = (socket as unknown as { _readableState?: { ended?: boolean } })._readableState;
  return socket.readableEnded || st?.ended === true;
}

/**
 * Reads the first bytes, decides, and puts them back (socket.unshift) so the
 * next consumer sees the stream from its start. Resolves 'opaque' if the
 * client sends nothing within timeoutMs (server-first protocols), or closes
 * its side before a decision. Leaves the socket paused: the consumer pipes or
 * resumes it. Never rejects.
 */
export function detect(socket: Socket, opts: DetectOptions): Promise<DetectedProtocol> {
  const start = performance.now();
  const declared = declaredProtocol(opts.appProtocol);
  if (declared) {
    opts.onResult?.(declared, 'declared', 0);
    return Promise.resolve(declared);
  }
  return new Promise((resolve) => {
    // Paused mode ('readable' + read()) rather than 'data': the bytes go back
    // with unshift() in the same tick as the last read(), so even a client
    // that sent a few bytes and half-closed still has them (and its 'end')
    // delivered to the next consumer.
    let done = false;
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (p: DetectedProtocol, reason: DetectReason) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('error', onError);
      if (size > 0 && !socket.destroyed) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      opts.onResult?.(p, reason, performance.now() - start);
      resolve(p);
    };
    const current = () => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    const onReadable = () => {
      let c: Buffer | null;
      while ((c = socket.read() as Buffer | null) !== null) {
        chunks.push(c);
        size += c.length;
      }
      if (size === 0) {
        if (eofReceived(socket)) finish('opaque', 'eof');
        return;
      }
      const b = current();
      chunks.length = 0;
      chunks.push(b);
      const p = classify(b);
      if (p) return finish(p, 'sniffed');
      if (size >= MAX_REQUEST_LINE) return finish('opaque', 'limit');
      if (eofReceived(socket)) finish('opaque', 'eof');
    };
    const onError = () => finish('opaque', 'eof');
    const timer = setTimeout(() => finish(size > 0 ? classify(current()) ?? 'opaque' : 'opaque', 'timeout'), opts.timeoutMs);
    socket.on('readable', onReadable);
    socket.once('error', onError);
  });
}

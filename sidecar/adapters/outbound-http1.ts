// The HTTP/1.1 adapter of the outbound listener (and HTTP/1.1 Upgrade, e.g.
// WebSocket): parse and write only. It turns a request head into the request
// value, hands it to the shared router (lookup → decide), and carries the
// decision out over undici dispatch — the hop's pooled mTLS connections, a
// BackendTLSPolicy origin, or the Agent for hosts outside the mesh. It has
// no routing decision of its own.
//
// The engine is node:http + undici today; the raw-socket engine (sidecar/http1/)
// can replace `createServer`/`dispatch` behind the same narrow boundary:
// build a MeshRequest, implement Carrier.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { EndpointRt } from '../config/config-apply.js';
import { attemptTimeout, type Forward, type Mirror } from '../route/decide.js';
import { editRequestHeaders, type CompiledHeaderEdits } from '../route/filters.js';
import { DISCARD_HANDLER, ForwardHandler, prepareRequestHeaders, teeBody, UpgradeHandler, upgradeOf, upgradeResponse, type ForwardResult } from './forward.js';
import type { OriginalDst } from '../detect/original-dst.js';
import type { Carrier, Done, OutboundDeps, OutboundRouter } from '../route/outbound-route.js';
import { answerClientError, http1Answerer } from '../errors/proxy-errors.js';
import { requestOfHttp1 } from '../route/request.js';
import type { TryContext } from '../retry/resilience.js';
import { BodyReplay, keepsBody } from '../retry/retry-body.js';
import { ioMark } from '../observe/observe.js';

export interface Http1AdapterOptions {
  maxHeaderSize: number | undefined;
  /** The original destination of the request's connection. */
  dstOf: (socket: Socket) => OriginalDst | undefined;
}

export function createHttp1Adapter(router: OutboundRouter, deps: OutboundDeps, o: Http1AdapterOptions): HttpServer {
  const { pools } = deps;
  const draining = deps.draining;
  const observers = deps.observers;
  const http = createHttpServer({ keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout: 60_000, ...(o.maxHeaderSize ? { maxHeaderSize: o.maxHeaderSize } : {}) }, onRequest);
  http.on('clientError', answerClientError);
  http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => onRequest(req, upgradeResponse(req, socket, head)));

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    let url = req.url ?? '/';
    let authority = req.headers.host ?? '';
    if (url.charCodeAt(0) !== 47 /* '/' */ && url !== '*') {
      // absolute-form: we are the app's HTTP proxy.
      const scheme = url.indexOf('://');
      if (scheme > 0) {
        const slash = url.indexOf('/', scheme + 3);
        authority = slash < 0 ? url.slice(scheme + 3) : url.slice(scheme + 3, slash);
        url = slash < 0 ? '/' : url.slice(slash);
        req.headers.host = authority;
      }
    }
    const up = upgradeOf(req);
    let hasBody = false;
    let base: IncomingMessage['headers'] | undefined;
    // observe (tap, access log, tracing): the connection's byte counters now; a record in the router's finish.
    const observing = observers?.active === true;
    const carrier: Carrier = {
      headers: req.headers,
      io: observing ? ioMark(req.socket, req.headers['content-length']) : undefined,
      req: requestOfHttp1(req.method ?? 'GET', url, authority, req.headers, !!up),
      start,
      // Draining: the answer is the connection's last (the caller reconnects to a sidecar that stays).
      answer: http1Answerer(res, draining),
      gone: () => res.destroyed,
      forward(d: Forward, done: Done, tc?: TryContext) {
        // Once per request: hop-by-hop headers out, mirrors sent, the body kept for retries.
        if (!tc || tc.index === 0) {
          const length = req.headers['content-length'];
          const chunked = req.headers['transfer-encoding'] !== undefined;
          hasBody = prepareRequestHeaders(req.headers);
          // Mirrors copy the request as the rule sends it, before the backendRef's own edits.
          if (d.mirrors.length) for (const m of d.mirrors) mirror(req, m, hasBody);
          if (tc && hasBody && !up) tc.body = keepsBody(length, chunked) ? new BodyReplay(bodyOf(req)) : 'unkept';
          // Header edits are applied per try to a copy of the request as it arrived (only when there are edits: nothing to undo otherwise).
          if (tc && d.requestEdits.length > 0) base = { ...req.headers };
        }
        // Each try starts from the request as it arrived: edits are applied once per try.
        const headers = tc && tc.index > 0 && base ? { ...base } : req.headers;
        applyEdits(headers, d.requestEdits, d.authority);
        const ep = d.endpoint;
        const t = attemptTimeout(d.timeouts, performance.now() - start);
        const dispatcher = d.backend.tlsOrigin ? d.backend.tlsOrigin.dispatcher(ep) : pools.forEndpoint(ep);
        const kept = tc?.body as BodyReplay | 'unkept' | undefined;
        const body = !hasBody || up ? null : kept && kept !== 'unkept' ? (kept.body() ?? null) : bodyOf(req);
        trace(headers);
        dispatchTo(dispatcher, undefined, req, res, d.path, headers, body, d.responseEdits, t.ms, t.kind, done, tc);
      },
      pod(ep: EndpointRt, done: Done) {
        const withBody = prepareRequestHeaders(req.headers);
        trace(req.headers);
        dispatchTo(pools.forEndpoint(ep), undefined, req, res, url, req.headers, withBody && !up ? bodyOf(req) : null, undefined, 0, 'request', done);
      },
      external(host: string, port: number, done: Done) {
        const withBody = prepareRequestHeaders(req.headers);
        const h = host.includes(':') ? `[${host}]` : host;
        trace(req.headers);
        dispatchTo(pools.external, `http://${h}:${port}`, req, res, url, req.headers, withBody && !up ? bodyOf(req) : null, undefined, 0, 'request', done);
      },
    };
    /** observe: W3C trace context into the forwarded headers (after the rule's header edits). */
    function trace(headers: IncomingMessage['headers']): void {
      if (observing && observers!.active) carrier.span = observers!.begin(headers, 'outbound', '1.1');
    }
    router.route(carrier, o.dstOf(req.socket));
  }

  function dispatchTo(
    d: Dispatcher, origin: string | undefined, req: IncomingMessage, res: ServerResponse, path: string, headers: IncomingMessage['headers'],
    body: Readable | Buffer | null, edits: CompiledHeaderEdits[] | undefined, timeoutMs: number, kind: 'request' | 'backendRequest', done: Done, tc?: TryContext,
  ): void {
    const fin = (r: ForwardResult) => done({ status: r.status, grpcStatus: '', proxyError: r.proxyError });
    const up = upgradeOf(req);
    const handler = up ? new UpgradeHandler(res, fin, up.socket, up.head) : new ForwardHandler(res, edits, fin, timeoutMs, kind);
    if (tc && !up) {
      handler.gate = tc.gate;
      handler.hasBody = body !== null;
    }
    handler.draining = draining;
    try {
      d.dispatch(
        { ...(origin ? { origin } : {}), path, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: headers as Record<string, string | string[]>, body, upgrade: up?.protocol ?? null },
        handler,
      );
    } catch (e) {
      handler.onError(e as Error);
    }
  }

  /** When a mirror tees the body, the main request reads its own copy. */
  function bodyOf(req: IncomingMessage): IncomingMessage | PassThrough {
    const main = (req as IncomingMessage & { __weftMain?: PassThrough }).__weftMain;
    return main ?? req;
  }

  /** RequestMirror: the same request to one endpoint of the mirror backend; its answer is dropped and it never slows the original. */
  function mirror(req: IncomingMessage, m: Mirror, hasBody: boolean): void {
    let body: PassThrough | null = null;
    if (hasBody) {
      const r = req as IncomingMessage & { __weftMain?: PassThrough };
      if (!r.__weftMain) {
        r.__weftMain = new PassThrough();
        req.pipe(r.__weftMain);
      }
      body = teeBody(req);
    }
    const headers = { ...req.headers };
    applyEdits(headers, m.requestEdits, m.authority);
    try {
      (m.backend.tlsOrigin ? m.backend.tlsOrigin.dispatcher(m.endpoint) : pools.forEndpoint(m.endpoint)).dispatch(
        { path: m.path, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers: headers as Record<string, string | string[]>, body },
        DISCARD_HANDLER,
      );
    } catch {
      // A mirror never affects the original request.
    }
  }

  return http;
}

function applyEdits(headers: IncomingMessage['headers'], edits: CompiledHeaderEdits[], authority: string): void {
  for (let i = 0; i < edits.length; i++) editRequestHeaders(headers, edits[i]!);
  if (authority && headers.host !== authority) headers.host = authority;
}

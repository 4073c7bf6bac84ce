// weft's HTTP/1.1 engine: strict parser, validating chunked relay, raw-socket
// server and client connections, a pool, one timer wheel, corked writes.
export { HeadReader, Head, parseHead, isHeadError, STRICTER, DEFAULT_LIMITS, type HeadLimits, type HeadError, type HeadResult, type Framing } from './parser.js';
export { ChunkedDecoder, DEFAULT_CHUNKED_LIMITS, type ChunkedLimits } from './body-chunked.js';
export { forwardHead, simpleResponse, type HeadEdits } from './head-write.js';
export { ServerConn, type ServerHandler, type ServerOptions } from './server-conn.js';
export { ClientConn, type ClientHandler } from './client-conn.js';
export { Pool, type PoolOptions } from './pool.js';
export { TimerWheel, type WheelEntry } from './timer-wheel.js';
export { proxyHandler, type Router, type RouteDecision } from './proxy.js';
export { MuxClient, MuxServer } from './mux.js';
export { requestOfHead, engineAnswerer } from './carrier-parts.js';
export { ALPN_MUX, type MuxServerHooks, type StreamWatch } from './mux.js';

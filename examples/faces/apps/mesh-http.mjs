// A tiny HTTP client for the demo apps. Node's built-in http client ignores
// HTTP_PROXY, so requests to mesh Services are sent to the sidecar's outbound
// listener ($HTTP_PROXY, i.e. http://$POD_IP:7001) in absolute form
// ("GET http://smiley.faces/ HTTP/1.1"), exactly as curl or any proxy-aware
// client would. Without HTTP_PROXY the request goes straight to the host.
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxyEnv = process.env.HTTP_PROXY || process.env.http_proxy || '';
const proxy = proxyEnv ? new URL(proxyEnv) : undefined;

/**
 * @param {string} url absolute http URL, e.g. "http://smiley/"
 * @param {{ method?: string, headers?: Record<string, string>, body?: string, timeoutMs?: number }} [opts]
 * @returns {Promise<{ status: number, headers: http.IncomingHttpHeaders, body: string }>}
 */
export function meshRequest(url, opts = {}) {
  const target = new URL(url);
  const via = proxy
    ? { host: proxy.hostname, port: Number(proxy.port || 80), path: target.href }
    : { host: target.hostname, port: Number(target.port || 80), path: target.pathname + target.search };
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...via,
        agent,
        method: opts.method ?? 'GET',
        headers: { host: target.host, ...opts.headers },
        timeout: opts.timeoutMs ?? 2000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 2000} ms calling ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Listens on $POD_IP:$PORT (default 8080) and logs where. */
export function listen(server, name) {
  const host = process.env.POD_IP || '127.0.0.1';
  const port = Number(process.env.PORT || 8080);
  server.keepAliveTimeout = 65_000;
  server.listen(port, host, () => console.log(`${name} ${process.env.POD_NAME ?? ''} listening on ${host}:${port}`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

/** Resolves after ms milliseconds (0: at once). */
export function sleep(ms) {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

export function json(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

// echo: answers every request with JSON describing it and the pod that
// answered: pod, namespace, workload, service account, port, method, path,
// host, protocol and headers (lower-case name → list of values, so repeated
// headers stay visible). The inbound sidecar adds x-weft-peer-identity, the
// caller's SPIFFE ID. Tests and conformance scenarios run it as a Workload:
//   command: [node, ../echo/echo.mjs]   env: { PORT: "8080" } (or PORTS: "8080,9090")
//
// Extras for tests (path or query, whichever the scenario finds easier):
//   X-Echo-Set-Header: "name:value,name2:value"  response headers to set
//   ?headers=name:value,name2:value              the same, from the query
//   /status/<code>  or  ?status=<code>           answer with that status
//   /delay/<ms>     or  ?delay=<ms>              answer after ms milliseconds
import http from 'node:http';

const host = process.env.POD_IP || '127.0.0.1';
const ports = (process.env.PORTS || process.env.PORT || '8080')
  .split(',')
  .map((p) => Number(p.trim()))
  .filter((p) => p > 0);
const pod = process.env.POD_NAME || '';
const workload = process.env.WORKLOAD || pod.replace(/-\d+$/, '');

function headersOf(req) {
  const out = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i].toLowerCase();
    (out[k] ??= []).push(req.rawHeaders[i + 1]);
  }
  return out;
}

function handler(port) {
  return (req, res) => {
    let size = 0;
    req.on('data', (c) => (size += c.length));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const m = /^\/status\/(\d{3})$/.exec(url.pathname) ?? /^(\d{3})$/.exec(url.searchParams.get('status') ?? '');
      const d = /^\/delay\/(\d+)$/.exec(url.pathname) ?? /^(\d+)$/.exec(url.searchParams.get('delay') ?? '');
      const answer = () => {
        const body = JSON.stringify({
          pod,
          namespace: process.env.POD_NAMESPACE || '',
          workload,
          serviceAccount: process.env.SERVICE_ACCOUNT || '',
          podIP: host,
          port,
          method: req.method,
          path: req.url,
          host: req.headers.host ?? '',
          proto: `HTTP/${req.httpVersion}`,
          headers: headersOf(req),
          bodyBytes: size,
        });
        const extra = {};
        const setHeaders = [req.headers['x-echo-set-header'] ?? '', url.searchParams.get('headers') ?? ''].join(',');
        for (const pair of setHeaders.split(',')) {
          const i = pair.indexOf(':');
          if (i > 0) extra[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
        }
        res.writeHead(m ? Number(m[1]) : 200, {
          ...extra,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      };
      if (d) setTimeout(answer, Number(d[1]));
      else answer();
    });
  };
}

const servers = ports.map((port) => {
  const s = http.createServer(handler(port));
  s.keepAliveTimeout = 65_000;
  s.listen(port, host, () => console.log(`echo ${pod} listening on ${host}:${port}`));
  return s;
});

const stop = () => {
  let open = servers.length;
  for (const s of servers) s.close(() => --open === 0 && process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

// Session persistence, Cookie type: read the session cookie from the Cookie
// header(s) and write the Set-Cookie that starts or refreshes a session.
// Attributes: Path from the route (GEP-1619: the route's path; "/" when the
// setting came from a BackendLBPolicy, so one session covers the Service),
// HttpOnly, SameSite=Lax, and Max-Age only for lifetimeType Permanent (the
// time left of absoluteTimeout); a Session cookie ends with the browser
// session, and the token's own times enforce the timeouts either way.
import type { SessionConfig } from '../../api/index.js';
import type { HeaderView } from '../route/request.js';

/** The value of cookie `name`, or undefined (the first one wins when sent twice; node joins Cookie fields with "; "). */
export function readSessionCookie(headers: HeaderView, name: string): string | undefined {
  const h = headers.get('cookie');
  return h === undefined ? undefined : findCookie(h, name);
}

function findCookie(header: string, name: string): string | undefined {
  let from = 0;
  while (from < header.length) {
    const i = header.indexOf(name, from);
    if (i < 0) return undefined;
    const eq = i + name.length;
    // Must be a whole cookie name: at the start or after "; ", followed by "=".
    let j = i - 1;
    while (j >= 0 && (header.charCodeAt(j) === 32 || header.charCodeAt(j) === 9)) j--;
    if ((j < 0 || header.charCodeAt(j) === 59 /* ; */) && header.charCodeAt(eq) === 61 /* = */) {
      const end = header.indexOf(';', eq + 1);
      let v = (end < 0 ? header.slice(eq + 1) : header.slice(eq + 1, end)).trim();
      if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
      return v;
    }
    from = i + 1;
  }
  return undefined;
}

/** The Set-Cookie value carrying `token` for a session that started at `t.issued`. */
export function sessionSetCookie(cfg: SessionConfig, token: string, t: { issued: number }, now: number): string {
  let c = `${cfg.name}=${token}; Path=${cfg.path || '/'}; HttpOnly; SameSite=Lax`;
  if (cfg.permanent && cfg.absoluteTimeoutMs) {
    c += `; Max-Age=${Math.max(1, Math.floor((cfg.absoluteTimeoutMs - (now - t.issued)) / 1000))}`;
  }
  return c;
}

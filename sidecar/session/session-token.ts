// Session persistence (GEP-1619), the token and the affinity that reads and
// writes it. The token is self-contained, so a session survives a config push
// that keeps its endpoint and a sidecar restart: it names the endpoint and
// carries when the session started and was last used, and is signed with
// HMAC-SHA256 under the Service's session secret (from control) and the
// rule's scope, so a client can neither forge one for an endpoint of its
// choosing nor move one to another rule. A token that fails any check is
// ignored: the balancer picks and a new session starts.
//
//   token = base64url(issued36 "~" lastUsed36 "~" endpointKey) "." base64url(HMAC(secret, scope "\n" payload))
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { SessionConfig } from '../../api/index.js';
import type { BuiltBackend, BuiltRouteBackend, BuiltRule, EndpointRt } from '../config/config-apply.js';
import type { HeaderView } from '../route/request.js';
import { readSessionCookie, sessionSetCookie } from './session-cookie.js';
import { readSessionHeader } from './session-header.js';

export interface SessionToken {
  /** EndpointRt.key of the pinned endpoint. */
  endpoint: string;
  /** ms since the epoch. */
  issued: number;
  lastUsed: number;
}

const MAC_BYTES = 32;
const MAX_TOKEN_CHARS = 1024;

/** Secret used when control sent none: sessions then last as long as the process. */
const PROCESS_SECRET = randomBytes(32);
const secrets = new Map<string, Buffer>();

/** The HMAC key for a base64 session secret (decoded once per distinct secret). */
export function sessionKey(secretB64: string): Buffer {
  if (!secretB64) return PROCESS_SECRET;
  let k = secrets.get(secretB64);
  if (!k) {
    k = Buffer.from(secretB64, 'base64');
    if (k.length < 16) k = PROCESS_SECRET;
    if (secrets.size > 1024) secrets.clear();
    secrets.set(secretB64, k);
  }
  return k;
}

function mac(key: Buffer, scope: string, payload: string): Buffer {
  return createHmac('sha256', key).update(scope).update('\n').update(payload).digest();
}

export function issueToken(key: Buffer, scope: string, t: SessionToken): string {
  const payload = Buffer.from(`${t.issued.toString(36)}~${t.lastUsed.toString(36)}~${t.endpoint}`, 'utf8').toString('base64url');
  return `${payload}.${mac(key, scope, payload).toString('base64url')}`;
}

/** The token's content when its signature holds for this key and scope (checked in constant time); else undefined. */
export function verifyToken(key: Buffer, scope: string, token: string): SessionToken | undefined {
  if (token.length > MAX_TOKEN_CHARS) return undefined;
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  const payload = token.slice(0, dot);
  const got = Buffer.from(token.slice(dot + 1), 'base64url');
  if (got.length !== MAC_BYTES) return undefined;
  if (!timingSafeEqual(got, mac(key, scope, payload))) return undefined;
  const text = Buffer.from(payload, 'base64url').toString('utf8');
  const a = text.indexOf('~');
  const b = a < 0 ? -1 : text.indexOf('~', a + 1);
  if (b < 0) return undefined;
  const issued = parseInt(text.slice(0, a), 36);
  const lastUsed = parseInt(text.slice(a + 1, b), 36);
  if (!Number.isFinite(issued) || !Number.isFinite(lastUsed)) return undefined;
  return { endpoint: text.slice(b + 1), issued, lastUsed };
}

/** Whether the session is still alive at `now` under the config's timeouts. */
export function sessionAlive(cfg: SessionConfig, t: SessionToken, now: number): boolean {
  if (t.issued > now + 60_000 || t.lastUsed < t.issued) return false;
  if (cfg.absoluteTimeoutMs && now - t.issued >= cfg.absoluteTimeoutMs) return false;
  if (cfg.idleTimeoutMs && now - t.lastUsed >= cfg.idleTimeoutMs) return false;
  return true;
}

// ---- what the decision asks (decide.ts calls these directly) -------------------

/** The request's verified, live token (decoded once per request: keyed by its header view). */
const decoded = new WeakMap<HeaderView, SessionToken | null>();

/** A rule's own setting (route, or a BackendLBPolicy folded in by compile) beats the backend's policy. */
export function sessionConfigOf(rule: BuiltRule, backend: BuiltBackend | undefined): SessionConfig | undefined {
  return rule.session ?? backend?.session;
}

function tokenOf(cfg: SessionConfig, rule: BuiltRule, headers: HeaderView, now: number): SessionToken | undefined {
  const hit = decoded.get(headers);
  if (hit !== undefined) return hit ?? undefined;
  const raw = cfg.type === 'Cookie' ? readSessionCookie(headers, cfg.name) : readSessionHeader(headers, cfg.name);
  let t: SessionToken | undefined;
  if (raw) {
    t = verifyToken(sessionKey(rule.sessionSecret), cfg.scope, raw);
    if (t && !sessionAlive(cfg, t, now)) t = undefined;
  }
  decoded.set(headers, t ?? null);
  return t;
}

/** EndpointRt.key → endpoint, per backend (built on first use, once per config). */
const byKey = new WeakMap<BuiltBackend, Map<string, EndpointRt>>();

function endpointIn(backend: BuiltBackend, key: string): EndpointRt | undefined {
  let m = byKey.get(backend);
  if (!m) {
    m = new Map();
    for (const e of backend.balancer.all) m.set(e.key, e);
    byKey.set(backend, m);
  }
  const ep = m.get(key);
  // A terminating endpoint ends the session unless nothing is ready (as the balancer does).
  return ep && (ep.ready || backend.balancer.ready.length === 0) ? ep : undefined;
}

/** Reissue the token (new last-used) once this much of the idle timeout has passed. */
function refreshAfter(idleMs: number): number {
  return Math.min(idleMs / 4, 5_000);
}

/** Persistence beats weights (GEP-1619): the rule's backend holding the pinned endpoint, even at weight 0. */
export function pinnedRouteBackend(rule: BuiltRule, headers: HeaderView, now: number): BuiltRouteBackend | undefined {
  const cfg = rule.session;
  if (!cfg) return undefined;
  const t = tokenOf(cfg, rule, headers, now);
  if (!t) return undefined;
  const items = rule.backends.items;
  for (let i = 0; i < items.length; i++) {
    const b = items[i]!.backend;
    if (b && !items[i]!.invalid && endpointIn(b, t.endpoint)) return items[i];
  }
  return undefined;
}

/** The endpoint a request's session token names in `backend`, if alive and still there. */
export function pinnedEndpoint(rule: BuiltRule, backend: BuiltBackend, headers: HeaderView, now: number): EndpointRt | undefined {
  const cfg = sessionConfigOf(rule, backend);
  if (!cfg) return undefined;
  const t = tokenOf(cfg, rule, headers, now);
  return t ? endpointIn(backend, t.endpoint) : undefined;
}

/**
 * The response header that starts or refreshes the session on `ep`
 * (set-cookie for Cookie, the named header for Header), or undefined when
 * the request's token is current.
 */
export function sessionResponseHeader(rule: BuiltRule, backend: BuiltBackend, ep: EndpointRt, headers: HeaderView, now: number): [string, string] | undefined {
  const cfg = sessionConfigOf(rule, backend);
  if (!cfg) return undefined;
  const t = tokenOf(cfg, rule, headers, now);
  let next: SessionToken;
  if (t && t.endpoint === ep.key) {
    // The session continues: only an idle timeout needs its last-used time moved on.
    if (!cfg.idleTimeoutMs || now - t.lastUsed < refreshAfter(cfg.idleTimeoutMs)) return undefined;
    next = { endpoint: ep.key, issued: t.issued, lastUsed: now };
  } else {
    next = { endpoint: ep.key, issued: now, lastUsed: now };
  }
  const token = issueToken(sessionKey(rule.sessionSecret), cfg.scope, next);
  return cfg.type === 'Cookie' ? ['set-cookie', sessionSetCookie(cfg, token, next, now)] : [cfg.name.toLowerCase(), token];
}

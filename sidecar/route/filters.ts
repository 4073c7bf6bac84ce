// HTTPRoute filters (rule level, then backendRef level), compiled once per
// config into plain lists the hot path applies without lookups.
//
// Semantics follow HTTPRouteFilter in Gateway API v1.1 (httproute_types.go):
// header names are case-insensitive and the first of equivalent names wins;
// `add` appends to an existing value with ','; RequestRedirect's port
// defaults to the scheme's well-known port when a scheme is given, else to
// the port the request was addressed to, and is left out of Location for
// http:80 / https:443; ReplacePrefixMatch replaces whole path elements.
import type { IncomingHttpHeaders } from 'node:http';
import type { Filter, HeaderEdits, PathModifier } from '../../api/index.js';

export interface CompiledHeaderEdits {
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  remove: string[];
}

export interface CompiledRedirect {
  scheme: 'http' | 'https' | undefined;
  hostname: string | undefined;
  port: number | undefined;
  path: PathModifier | undefined;
  statusCode: number;
}

export interface CompiledRewrite {
  hostname: string | undefined;
  path: PathModifier | undefined;
}

/** The filters of one rule or one backendRef. */
export interface CompiledFilters {
  /** RequestHeaderModifier and URLRewrite in spec order. */
  request: Array<CompiledHeaderEdits | CompiledRewrite>;
  response: CompiledHeaderEdits[];
  redirect: CompiledRedirect | undefined;
  /** Backend keys of RequestMirror filters. */
  mirrors: string[];
  empty: boolean;
}

export const NO_FILTERS: CompiledFilters = Object.freeze({ request: [], response: [], redirect: undefined, mirrors: [], empty: true }) as CompiledFilters;

function compileEdits(e: HeaderEdits): CompiledHeaderEdits {
  const seen = new Set<string>();
  const pairs = (list: Array<[string, string]>): Array<[string, string]> => {
    const out: Array<[string, string]> = [];
    for (const [n, v] of list) {
      const name = n.toLowerCase();
      if (seen.has(name)) continue;
      seen.add(name);
      out.push([name, v]);
    }
    return out;
  };
  const set = pairs(e.set ?? []);
  const add = pairs(e.add ?? []);
  const remove = [...new Set((e.remove ?? []).map((n) => n.toLowerCase()))];
  return { set, add, remove };
}

export function isRewrite(f: CompiledHeaderEdits | CompiledRewrite): f is CompiledRewrite {
  return !('set' in f);
}

export function compileFilters(filters: Filter[] | undefined): CompiledFilters {
  if (!filters || filters.length === 0) return NO_FILTERS;
  const out: CompiledFilters = { request: [], response: [], redirect: undefined, mirrors: [], empty: false };
  for (const f of filters) {
    switch (f.type) {
      case 'RequestHeaderModifier':
        out.request.push(compileEdits(f));
        break;
      case 'ResponseHeaderModifier':
        out.response.push(compileEdits(f));
        break;
      case 'RequestRedirect':
        out.redirect = { scheme: f.scheme, hostname: f.hostname, port: f.port, path: f.path, statusCode: f.statusCode || 302 };
        break;
      case 'URLRewrite':
        out.request.push({ hostname: f.hostname, path: f.path });
        break;
      case 'RequestMirror':
        out.mirrors.push(f.backend);
        break;
    }
  }
  return out;
}

/** Applies request header edits in place on node's lower-cased header object. */
export function editRequestHeaders(headers: IncomingHttpHeaders, e: CompiledHeaderEdits): void {
  for (let i = 0; i < e.set.length; i++) {
    const [n, v] = e.set[i]!;
    headers[n] = v;
  }
  for (let i = 0; i < e.add.length; i++) {
    const [n, v] = e.add[i]!;
    const cur = headers[n];
    if (cur === undefined) headers[n] = v;
    else if (Array.isArray(cur)) headers[n] = [...cur, v];
    else headers[n] = `${cur},${v}`;
  }
  for (let i = 0; i < e.remove.length; i++) {
    const n = e.remove[i]!;
    if (headers[n] !== undefined) delete headers[n];
  }
}

/**
 * Applies response header edits on a flat [name, value, name, value, ...]
 * list (what the upstream sent), returning the new list.
 */
export function editResponseHeaders(flat: string[], e: CompiledHeaderEdits): string[] {
  let out = flat;
  const drop = (name: string) => {
    const next: string[] = [];
    for (let i = 0; i < out.length; i += 2) {
      if (out[i]!.toLowerCase() !== name) next.push(out[i]!, out[i + 1]!);
    }
    out = next;
  };
  for (const [n, v] of e.set) {
    drop(n);
    out.push(n, v);
  }
  for (const [n, v] of e.add) {
    // Set-Cookie fields are never combined (RFC 6265 3): a new field line.
    if (n === 'set-cookie') {
      out.push(n, v);
      continue;
    }
    // Append to an existing value (`foo` + add `bar` → `foo,bar`), as the
    // request side does.
    let found = false;
    for (let i = 0; i < out.length; i += 2) {
      if (out[i]!.toLowerCase() === n) {
        out[i + 1] = `${out[i + 1]},${v}`;
        found = true;
        break;
      }
    }
    if (!found) out.push(n, v);
  }
  for (const n of e.remove) drop(n);
  return out;
}

/**
 * HTTPPathModifier applied to `path` (no query). `prefix` is the matched
 * PathPrefix with any trailing '/' removed ('' for '/').
 */
export function rewritePath(mod: PathModifier, path: string, prefix: string): string {
  if (mod.type === 'ReplaceFullPath') return mod.value || '/';
  // Whole elements: the rest after the prefix is '' or starts with '/'. The
  // root prefix matched '/' as a whole, like '/foo' matching '/foo'.
  const rest = prefix === '' && path === '/' ? '' : path.slice(prefix.length);
  const repl = mod.value.replace(/\/+$/, '');
  let out = repl + rest;
  if (out === '') out = '/';
  else if (out[0] !== '/') out = '/' + out;
  return out;
}

const WELL_KNOWN: Record<string, number> = { http: 80, https: 443 };

export interface RedirectRequest {
  scheme: 'http' | 'https';
  /** Host header value (may carry a port). */
  host: string;
  /** The port the request was addressed to (the Service port). */
  port: number;
  path: string;
  /** Raw query without '?', '' when absent. */
  query: string;
}

export function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end > 0 ? host.slice(0, end + 1) : host;
  }
  const colon = host.lastIndexOf(':');
  return colon >= 0 ? host.slice(0, colon) : host;
}

export function redirectLocation(r: CompiledRedirect, req: RedirectRequest, prefix: string): string {
  const scheme = r.scheme ?? req.scheme;
  const hostname = r.hostname ?? hostWithoutPort(req.host);
  const port = r.port ?? (r.scheme ? WELL_KNOWN[r.scheme]! : req.port);
  const showPort = !(WELL_KNOWN[scheme] === port);
  const path = r.path ? rewritePath(r.path, req.path, prefix) : req.path;
  return `${scheme}://${hostname}${showPort ? `:${port}` : ''}${path}${req.query ? `?${req.query}` : ''}`;
}

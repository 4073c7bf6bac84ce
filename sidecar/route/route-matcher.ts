// Route matching for one Service port: built once per config, read per request.
//
// Control sends `matches` already sorted by Gateway API precedence (exact
// path, longest prefix, method, header count, query count, route age, name,
// rule order), so "the first entry that matches wins". To avoid scanning every
// entry per request, entries are indexed by what can be looked up from the
// path alone:
//   - Exact paths: a map from path to its entries;
//   - PathPrefix: a trie keyed by path segments (a prefix matches element by
//     element: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`; a trailing
//     `/` in the prefix is ignored);
//   - RegularExpression paths: a short list checked in full.
// Every list stays in precedence order, so the first full match of a list is
// that list's best; the answer is the best of the lists' bests.
//
// Regular expressions use re2js (linear time, RE2 syntax) and must match the
// whole value, as Envoy's safe_regex does. JS RegExp is never used on a
// user's pattern.
import { RE2JS } from 're2js';
import type { HeaderView } from './request.js';
import type { MatchEntry, ValueMatch } from '../../api/index.js';

export interface MatchRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Raw query string without '?', '' when absent. */
  query: string;
  /** Header access by lower-case name (request.ts). */
  headers: HeaderView;
}

interface CompiledValue {
  name: string;
  exact: string | undefined;
  re: RE2JS | undefined;
}

export interface CompiledMatch {
  /** Position in the precedence order. */
  order: number;
  rule: number;
  entry: MatchEntry;
  /** For PathPrefix: the prefix with a trailing '/' removed ('' for '/'), used by ReplacePrefixMatch. */
  prefix: string;
  pathRe: RE2JS | undefined;
  method: string | undefined;
  headers: CompiledValue[];
  query: CompiledValue[];
}

interface TrieNode {
  children: Map<string, TrieNode> | undefined;
  entries: CompiledMatch[];
}

export interface RouteMatcher {
  readonly size: number;
  match(req: MatchRequest): CompiledMatch | undefined;
}

export class MatchBuildError extends Error {}

function compileRe(pattern: string, where: string): RE2JS {
  try {
    return RE2JS.compile(pattern);
  } catch (e) {
    throw new MatchBuildError(`${where}: invalid regular expression ${JSON.stringify(pattern)}: ${(e as Error).message}`);
  }
}

function compileValues(list: ValueMatch[], lower: boolean, where: string): CompiledValue[] {
  const out: CompiledValue[] = [];
  const seen = new Set<string>();
  for (const v of list) {
    const name = lower ? v.name.toLowerCase() : v.name;
    // Spec: with several entries of the same name only the first counts.
    if (seen.has(name)) continue;
    seen.add(name);
    if (v.type === 'RegularExpression') out.push({ name, exact: undefined, re: compileRe(v.value, `${where} ${name}`) });
    else out.push({ name, exact: v.value, re: undefined });
  }
  return out;
}

/** Path segments of a prefix value: '/foo/bar/' → ['foo','bar']; '/' → []. */
function prefixSegments(value: string): string[] {
  const trimmed = value.replace(/\/+$/, '');
  if (trimmed === '') return [];
  return trimmed.slice(1).split('/');
}

export function buildRouteMatcher(entries: MatchEntry[]): RouteMatcher {
  const exact = new Map<string, CompiledMatch[]>();
  const root: TrieNode = { children: undefined, entries: [] };
  const others: CompiledMatch[] = [];

  entries.forEach((entry, order) => {
    const where = `matches[${order}]`;
    const cm: CompiledMatch = {
      order,
      rule: entry.rule,
      entry,
      prefix: '',
      pathRe: undefined,
      method: entry.method ? entry.method.toUpperCase() : undefined,
      headers: compileValues(entry.headers, true, `${where}.headers`),
      query: compileValues(entry.queryParams, false, `${where}.queryParams`),
    };
    const p = entry.path;
    if (p.type === 'Exact') {
      let l = exact.get(p.value);
      if (!l) exact.set(p.value, (l = []));
      l.push(cm);
    } else if (p.type === 'PathPrefix') {
      cm.prefix = p.value.replace(/\/+$/, '');
      let node = root;
      for (const seg of prefixSegments(p.value)) {
        if (!node.children) node.children = new Map();
        let next = node.children.get(seg);
        if (!next) node.children.set(seg, (next = { children: undefined, entries: [] }));
        node = next;
      }
      node.entries.push(cm);
    } else {
      cm.pathRe = compileRe(p.value, `${where}.path`);
      others.push(cm);
    }
  });

  return {
    size: entries.length,
    match(req) {
      let best: CompiledMatch | undefined;
      const ex = exact.get(req.path);
      if (ex) best = firstMatch(ex, req, undefined);
      // Walk the trie along the request's segments; each node's list holds
      // the prefixes that end there.
      let node: TrieNode | undefined = root;
      const path = req.path;
      let pos = 1; // after the leading '/'
      while (node) {
        if (node.entries.length) {
          const c = firstMatch(node.entries, req, best);
          if (c) best = c;
        }
        if (!node.children || pos > path.length) break;
        let end = path.indexOf('/', pos);
        if (end < 0) end = path.length;
        const seg = path.slice(pos, end);
        node = node.children.get(seg);
        pos = end + 1;
      }
      if (others.length) {
        const c = firstMatch(others, req, best);
        if (c) best = c;
      }
      return best;
    },
  };
}

type QueryCache = Map<string, string>;
const queryCaches = new WeakMap<MatchRequest, QueryCache>();

/** First entry of a precedence-ordered list that matches and beats `best`. */
function firstMatch(list: CompiledMatch[], req: MatchRequest, best: CompiledMatch | undefined): CompiledMatch | undefined {
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (best && c.order >= best.order) return undefined;
    if (matchesRest(c, req)) return c;
  }
  return undefined;
}

function matchesRest(c: CompiledMatch, req: MatchRequest): boolean {
  if (c.pathRe && !c.pathRe.testExact(req.path)) return false;
  if (c.method !== undefined && c.method !== req.method) return false;
  for (let i = 0; i < c.headers.length; i++) {
    const h = c.headers[i]!;
    const v = req.headers.get(h.name);
    if (v === undefined) return false;
    if (h.re ? !h.re.testExact(v) : v !== h.exact) return false;
  }
  if (c.query.length) {
    let q = queryCaches.get(req);
    if (!q) queryCaches.set(req, (q = parseQuery(req.query)));
    for (let i = 0; i < c.query.length; i++) {
      const m = c.query[i]!;
      const v = q.get(m.name);
      if (v === undefined) return false;
      if (m.re ? !m.re.testExact(v) : v !== m.exact) return false;
    }
  }
  return true;
}

function decode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * Query parameters by name; for a repeated key the first value counts (the
 * spec's recommendation for HTTPQueryParamMatch).
 */
export function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!query) return out;
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = decode(eq < 0 ? part : part.slice(0, eq));
    if (out.has(k)) continue;
    out.set(k, eq < 0 ? '' : decode(part.slice(eq + 1)));
  }
  return out;
}

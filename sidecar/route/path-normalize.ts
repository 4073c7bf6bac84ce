// Path normalisation before route matching, as Envoy's `normalize_path` and
// Istio's default (`BASE`) do, so that what is matched is what the app sees:
//
// - percent-encoded unreserved characters (RFC 3986 §2.3: ALPHA DIGIT - . _ ~)
//   are decoded, and the hex digits of what stays encoded are uppercased
//   (§6.2.2.1, §6.2.2.2), so `%2e%2e` is `..` and `%7e` is `~`;
// - `%2F` and `%5C` stay encoded: an encoded slash or backslash is data, never a
//   segment separator (Envoy's `path_with_escaped_slashes_action: KEEP_UNCHANGED`);
// - a raw backslash becomes `/`, as Istio's BASE normalisation does (some
//   servers treat `\` as a separator: `/public\..\admin` must not slip past a rule);
// - dot segments are removed (§5.2.4 remove_dot_segments);
// - repeated slashes are merged only when asked (`mergeSlashes`, off by default,
//   per workload), before dot segments are removed.
//
// What cannot be normalised is refused, and the data path answers 400: a `..`
// that would climb above the root, a NUL (raw or `%00`) or another control
// character, a `%` not followed by two hex digits, a path not starting with `/`.
// The query (after `?`) is passed through untouched.
//
// Pure and allocation-light; the decision calls it before matching.

export type NormalizeResult = { ok: true; path: string } | { ok: false; reason: string };

export interface NormalizeOptions {
  /** Merge runs of `/` into one (Envoy `merge_slashes`). */
  mergeSlashes: boolean;
}

const HEX = '0123456789ABCDEF';

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/** RFC 3986 §2.3 unreserved. */
function unreserved(b: number): boolean {
  return (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b === 45 || b === 46 || b === 95 || b === 126;
}

/** Fast path: nothing to decode, no dot segment, no backslash, no control character, no `//` to merge. */
function alreadyNormal(p: string, merge: boolean): boolean {
  let prev = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 37 || c === 92 || c < 32 || c === 127) return false; // % \ controls
    if (c === 46 && prev === 47) return false; // "/." starts a possible dot segment
    if (merge && c === 47 && prev === 47) return false;
    prev = c;
  }
  return true;
}

export function normalizePath(raw: string, opts: NormalizeOptions): NormalizeResult {
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const query = q === -1 ? '' : raw.slice(q);
  if (path === '*') return { ok: true, path: raw }; // asterisk-form (OPTIONS *)
  if (path.charCodeAt(0) !== 47) return { ok: false, reason: 'the path must start with "/"' };
  if (alreadyNormal(path, opts.mergeSlashes)) return { ok: true, path: raw };

  // 1. Decode unreserved, uppercase the rest, refuse NUL and broken escapes, `\` → `/`.
  let dec = '';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37) {
      const hi = hexVal(path.charCodeAt(i + 1));
      const lo = hexVal(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return { ok: false, reason: `invalid percent-encoding at offset ${i}` };
      const b = hi * 16 + lo;
      if (b === 0) return { ok: false, reason: 'the path contains a NUL (%00)' };
      dec += unreserved(b) ? String.fromCharCode(b) : `%${HEX[hi]}${HEX[lo]}`;
      i += 2;
    } else if (c === 0) {
      return { ok: false, reason: 'the path contains a NUL' };
    } else if (c < 32 || c === 127) {
      return { ok: false, reason: `the path contains the control character 0x${c.toString(16).padStart(2, '0')}` };
    } else if (c === 92) {
      dec += '/';
    } else {
      dec += path[i];
    }
  }

  // 2. Merge slashes (optional).
  if (opts.mergeSlashes) dec = dec.replace(/\/{2,}/g, '/');

  // 3. RFC 3986 §5.2.4 remove_dot_segments, refusing to climb above the root.
  const segs = dec.split('/'); // segs[0] is "" (the leading slash)
  const out: string[] = [];
  let trailing = false;
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    const last = i === segs.length - 1;
    if (s === '.') {
      if (last) trailing = true;
    } else if (s === '..') {
      if (out.length === 0) return { ok: false, reason: 'the path climbs above the root ("..")' };
      out.pop();
      if (last) trailing = true;
    } else {
      out.push(s);
    }
  }
  if (trailing) out.push('');
  return { ok: true, path: `/${out.join('/')}${query}` };
}

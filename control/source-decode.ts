// The decode stage of a config file: bytes → text → YAML documents → plain
// values, with every way that can fail turned into a message (never a throw).
// Pure; source-files.ts reads the bytes and keeps the last good version.
//
// Limits (README "Config input limits"): a config file is a handful of
// Kubernetes objects, so anything far beyond that is an attack or an
// accident, and is refused before it can cost memory or stack.
import { parseAllDocuments } from 'yaml';

export const CONFIG_LIMITS = {
  /** Bytes per file; larger files are not read at all. */
  maxFileBytes: 8 * 1024 * 1024,
  /** YAML aliases (`*x`) per document, counted as yaml's maxAliasCount does (nested aliases weigh more). */
  maxAliasCount: 100,
  /** Nesting of mappings and lists in one document (an HTTPRoute is about 10 deep). */
  maxDepth: 64,
  /** Values (mapping entries, list items, scalars) per document once aliases are expanded. */
  maxNodes: 1_000_000,
} as const;

export interface DecodedDocument {
  /** 1-based position in the file. */
  index: number;
  /** 1-based line where the document starts. */
  line: number;
  value: unknown;
}

export interface DecodeError {
  /** 1-based document position, or 0 for the file as a whole. */
  index: number;
  message: string;
}

export type Decoded = { ok: true; docs: DecodedDocument[] } | { ok: false; errors: DecodeError[] };

const MiB = 1024 * 1024;
const fmtBytes = (n: number) => (n >= MiB ? `${(n / MiB).toFixed(1)} MiB` : `${n} bytes`);

/** The file-size check, for callers that stat before reading. */
export function sizeError(bytes: number): string | undefined {
  if (bytes <= CONFIG_LIMITS.maxFileBytes) return undefined;
  return `file is ${fmtBytes(bytes)}, more than the ${fmtBytes(CONFIG_LIMITS.maxFileBytes)} limit for a config file: not read`;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return line;
}

function lineCol(text: string, offset: number): string {
  let line = 1;
  let col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return `line ${line}, column ${col}`;
}

/**
 * Bytes → text. YAML is Unicode text: invalid UTF-8 (which a lenient decoder
 * would silently turn into U+FFFD) and control characters other than tab,
 * LF and CR (YAML 1.2 §5.1 excludes them from a stream) are refused, with
 * where they are; a NUL byte means a binary file.
 */
export function decodeText(bytes: Uint8Array): { ok: true; text: string } | { ok: false; message: string } {
  const tooBig = sizeError(bytes.length);
  if (tooBig) return { ok: false, message: tooBig };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // Find the first bad byte for the message (the decoder does not say).
    let at = 0;
    for (let lo = 0, hi = bytes.length; lo < hi; ) {
      const mid = (lo + hi) >> 1;
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
        lo = mid + 1;
        at = mid;
      } catch {
        hi = mid;
      }
    }
    return { ok: false, message: `not valid UTF-8 (near byte ${at}): a config file must be UTF-8 text` };
  }
  // A leading byte order mark is allowed (YAML 1.2 §5.2).
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bad = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/.exec(text);
  if (bad) {
    const code = bad[0].charCodeAt(0);
    const what = code === 0 ? 'a NUL byte (a binary file?)' : `control character U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    return { ok: false, message: `not a text file: ${what} at ${lineCol(text, bad.index)}` };
  }
  return { ok: true, text };
}

/**
 * Depth and expanded size of a value, without recursion (a deep value must
 * not be able to overflow our own stack). Stops at the first limit crossed.
 */
export function shapeError(v: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[v, 1]];
  let nodes = 0;
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    if (++nodes > CONFIG_LIMITS.maxNodes) return `more than ${CONFIG_LIMITS.maxNodes} values (after expanding aliases): too large`;
    if (typeof x !== 'object' || x === null || x instanceof Date) continue;
    if (depth > CONFIG_LIMITS.maxDepth) return `nested more than ${CONFIG_LIMITS.maxDepth} levels deep`;
    const children = Array.isArray(x) ? x : x instanceof Map ? [...x.values()] : Object.values(x);
    for (const c of children) stack.push([c, depth + 1]);
  }
  return undefined;
}

function firstLine(m: string): string {
  return m.split('\n')[0] ?? m;
}

/** A YAML parser message made plain for the cases an attacker reaches for. */
function yamlMessage(e: { message: string; name?: string }): string {
  const m = firstLine(e.message);
  if (/Maximum call stack size exceeded/.test(m)) return `nested too deeply to parse (the limit is ${CONFIG_LIMITS.maxDepth} levels)${m.replace(/^.*?( at line .*?)?:?$/, '$1')}`;
  if (/Excessive alias count/.test(m)) return `more than ${CONFIG_LIMITS.maxAliasCount} aliases (a YAML alias bomb?): refused`;
  return m.replace(/:$/, '');
}

/**
 * Text → documents. Any document's failure is reported with its position;
 * `ok` only when every document decoded (the file is then taken as a whole).
 */
export function decodeDocuments(text: string): Decoded {
  const errors: DecodeError[] = [];
  let parsed: ReturnType<typeof parseAllDocuments>;
  try {
    // uniqueKeys (the default) makes a duplicate key an error, as kubectl's strict decoding does.
    parsed = parseAllDocuments(text, { prettyErrors: true, uniqueKeys: true });
  } catch (e) {
    return { ok: false, errors: [{ index: 0, message: `YAML: ${yamlMessage(e as Error)}` }] };
  }
  // parseAllDocuments returns an EmptyStream (not an array) for empty input.
  if (!Array.isArray(parsed)) return { ok: true, docs: [] };
  const list = parsed;
  const docs: DecodedDocument[] = [];
  list.forEach((doc, i) => {
    const index = i + 1;
    const start = doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0;
    if (doc.errors.length > 0) {
      for (const err of doc.errors) errors.push({ index, message: `YAML: ${yamlMessage(err)}` });
      return;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: CONFIG_LIMITS.maxAliasCount });
    } catch (e) {
      // yaml throws (not reports) for alias bombs, unresolved aliases, and stack overflows.
      errors.push({ index, message: `YAML: ${yamlMessage(e as Error)}` });
      return;
    }
    const shape = shapeError(value);
    if (shape) {
      errors.push({ index, message: `YAML: ${shape}` });
      return;
    }
    docs.push({ index, line: lineOf(text, start), value });
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, docs };
}

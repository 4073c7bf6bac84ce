// `weft check`'s rotation lines: which step of a trust-anchor and issuer
// rotation the mesh is in, and for local mode (--state-dir STATE) the same
// expiry checks as for `weft certs --out DIR`.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATE_FILES } from '../api/index.js';
import { rotationStatus } from '../certs/index.js';
import type { CheckResult } from './cmd-check.js';

/**
 * One line: "rotation: bundle has 2 anchors; issuer signed by the new anchor
 * → run `weft certs rotate finish --dir DIR`". `where` is the flag the
 * suggested command needs (--state-dir STATE, --dir DIR; empty for a cluster).
 */
export function rotationCheck(bundlePem: string, issuerPem: string, anchorPem: string | undefined, where: string): CheckResult {
  const s = rotationStatus(bundlePem, issuerPem, anchorPem);
  const message = s.message.replace(/^rotation: /, '');
  const detail = where ? message.replace(/`weft certs rotate (\w+)`/, `\`weft certs rotate $1 ${where}\``) : message;
  // An issuer no anchor signed is the chain check's failure; say it once.
  const broken = s.phase === 'broken' ? (/signed by none/.test(s.message) ? 'skip' : 'fail') : undefined;
  return { name: 'rotation', status: broken ?? (s.phase === 'steady' ? 'ok' : 'warn'), detail };
}

/** Local mode's STATE: expiry of anchors and issuer, the chain, and the rotation step. */
export function stateChecks(
  stateDir: string,
  now: Date,
  warnDays: number,
  expiry: (label: string, pem: string, now: Date, warnDays: number) => CheckResult[],
  chains: (issuerPem: string, bundlePem: string) => CheckResult,
): CheckResult[] {
  const path = (f: string) => join(stateDir, f);
  const out: CheckResult[] = [];
  for (const f of [STATE_FILES.trustBundle, STATE_FILES.issuerCert]) {
    if (!existsSync(path(f))) out.push({ name: f, status: 'fail', detail: `${path(f)} is missing (has control run with --state-dir ${stateDir}?)` });
  }
  if (out.length) return out;
  const bundle = readFileSync(path(STATE_FILES.trustBundle), 'utf8');
  const issuer = readFileSync(path(STATE_FILES.issuerCert), 'utf8');
  const anchor = existsSync(path(STATE_FILES.anchorCert)) ? readFileSync(path(STATE_FILES.anchorCert), 'utf8') : undefined;
  out.push(...expiry(`trust anchor (${STATE_FILES.trustBundle})`, bundle, now, Math.max(warnDays, 90)));
  out.push(...expiry('issuer', issuer, now, warnDays));
  out.push(chains(issuer, bundle));
  out.push(rotationCheck(bundle, issuer, anchor, `--state-dir ${stateDir}`));
  return out;
}

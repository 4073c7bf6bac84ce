// `weft certs`: create the trust anchor and issuer for a cluster, or inspect certificates.
//   weft certs --out DIR [--trust-domain TD] [--anchor-validity 87600h] [--issuer-validity 8760h] [--force]
//   weft certs --out DIR --issuer-only      new issuer under the anchor already in DIR
//   weft certs inspect FILE...              validity, subject, SPIFFE ID, time left
//   weft certs rotate anchor|issuer|finish    one step of a rotation (cmd-certs-rotate.ts)
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certValidity, createIssuer, createTrustAnchor, splitPemBundle, writeSecretFile, ISSUER_DIR_FILES, type Pem } from '../certs/index.js';
import { bool, parseFlags, str, UsageError } from './args.js';
import { ROTATE_HELP, runManifests, runRotate } from './cmd-certs-rotate.js';

const HELP = `usage: weft certs --out DIR [--anchor-validity 87600h] [--issuer-validity 8760h] [--force]
       weft certs --out DIR --issuer-only [--issuer-validity 8760h]
       weft certs inspect FILE...
       weft certs rotate anchor|issuer|finish (--state-dir STATE | --dir DIR)
       weft certs manifests --dir DIR

Writes DIR/anchor.pem, DIR/anchor.key (keep it offline), DIR/issuer.pem,
DIR/issuer.key and DIR/trust-bundle.pem; keys are written with mode 0600.
\`weft install --certs DIR\` puts the anchor and issuer into the cluster.
`;

export const CERT_FILES = ISSUER_DIR_FILES;

/** "8760h", "365d", "30m", "90s" → milliseconds. */
export function parseValidity(v: string, what: string): number {
  const m = /^(\d+)(d|h|m|s)$/.exec(v);
  if (!m) throw new UsageError(`${what}: "${v}" is not a duration like 8760h or 365d`);
  const n = Number(m[1]);
  const unit = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[m[2] as 'd' | 'h' | 'm' | 's'];
  if (n <= 0) throw new UsageError(`${what}: must be positive`);
  return n * unit;
}

function describe(label: string, pem: string, now: Date): string {
  const v = certValidity(pem);
  const left = v.notAfter.getTime() - now.getTime();
  const days = (left / 86_400_000).toFixed(1);
  const state = left <= 0 ? 'EXPIRED' : now < v.notBefore ? 'NOT YET VALID' : `${days} days left`;
  return `${label}: ${v.subject}${v.spiffeId ? ` (${v.spiffeId})` : ''}\n  valid ${v.notBefore.toISOString()} .. ${v.notAfter.toISOString()}: ${state}`;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(argv[0] === 'rotate' || argv[0] === 'manifests' ? ROTATE_HELP : HELP);
    return 0;
  }
  if (argv[0] === 'rotate') return runRotate(argv.slice(1));
  if (argv[0] === 'manifests') return runManifests(argv.slice(1));
  if (argv[0] === 'inspect') {
    const files = argv.slice(1);
    if (files.length === 0) throw new UsageError('inspect: name at least one PEM file');
    const now = new Date();
    for (const f of files) {
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (e) {
        process.stderr.write(`weft certs inspect: ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
        return 1;
      }
      const blocks = splitPemBundle(text);
      if (blocks.length === 0) throw new UsageError(`${f}: no CERTIFICATE block`);
      blocks.forEach((b, i) => process.stdout.write(describe(blocks.length > 1 ? `${f} #${i + 1}` : f, b, now) + '\n'));
    }
    return 0;
  }
  const p = parseFlags(argv, {
    out: { type: 'string' },
    'anchor-validity': { type: 'string' },
    'issuer-validity': { type: 'string' },
    'issuer-only': { type: 'boolean' },
    force: { type: 'boolean' },
  }, { positionals: false });
  const out = str(p, 'out');
  if (!out) throw new UsageError('--out DIR is required');
  const anchorMs = parseValidity(str(p, 'anchor-validity') ?? '87600h', '--anchor-validity');
  const issuerMs = parseValidity(str(p, 'issuer-validity') ?? '8760h', '--issuer-validity');
  mkdirSync(out, { recursive: true });
  let anchor: Pem;
  if (bool(p, 'issuer-only')) {
    const a = join(out, CERT_FILES.anchorCert);
    const k = join(out, CERT_FILES.anchorKey);
    if (!existsSync(a) || !existsSync(k)) throw new UsageError(`--issuer-only: ${a} and ${k} must exist`);
    anchor = { certPem: readFileSync(a, 'utf8'), keyPem: readFileSync(k, 'utf8') };
  } else {
    if (!bool(p, 'force') && existsSync(join(out, CERT_FILES.anchorKey))) {
      throw new UsageError(`${join(out, CERT_FILES.anchorKey)} exists; pass --force to replace the trust anchor, or --issuer-only for a new issuer`);
    }
    anchor = createTrustAnchor({ validityMs: anchorMs });
    writeSecretFile(join(out, CERT_FILES.anchorKey), anchor.keyPem);
    writeFileSync(join(out, CERT_FILES.anchorCert), anchor.certPem);
  }
  const issuer = createIssuer(anchor, { validityMs: issuerMs });
  writeSecretFile(join(out, CERT_FILES.issuerKey), issuer.keyPem);
  writeFileSync(join(out, CERT_FILES.issuerCert), issuer.certPem);
  // A new anchor joins the bundle rather than replacing it (`weft certs rotate` does the steps of a rotation).
  const bundlePath = join(out, CERT_FILES.trustBundle);
  const bundle = existsSync(bundlePath) ? readFileSync(bundlePath, 'utf8') : '';
  if (!splitPemBundle(bundle).includes(splitPemBundle(anchor.certPem)[0] ?? '')) writeFileSync(bundlePath, bundle + anchor.certPem);
  const now = new Date();
  process.stdout.write(`${describe('trust anchor', anchor.certPem, now)}\n${describe('issuer', issuer.certPem, now)}\nwrote ${out}/{${Object.values(CERT_FILES).join(',')}}\n`);
  return 0;
}

// `weft certs rotate anchor|issuer|finish`: one step of a trust-anchor and
// issuer rotation, on the files of local mode (--state-dir STATE, which a
// running control watches) or of `weft certs --out DIR` (--dir DIR), whose
// result reaches a cluster through `weft certs manifests --dir DIR | kubectl
// apply -f -` (the ConfigMap weft-trust-anchor and the Secret weft-issuer in
// weft-system, which control watches).
//   weft certs manifests --dir DIR   the ConfigMap and Secret of DIR, as YAML
import { STATE_FILES } from '../api/index.js';
import { readAuthorityFiles, rotate, rotationStatus, writeAuthorityFiles, ISSUER_DIR_FILES, ROTATE_STEPS, type AuthorityLayout, type RotateStep } from '../certs/index.js';
import { parseFlags, str, UsageError } from './args.js';
import { ISSUER_SECRET, NAMESPACE, TRUST_ANCHOR_CONFIGMAP, toYamlStream } from './cmd-install.js';

export const ROTATE_HELP = `usage: weft certs rotate anchor|issuer|finish (--state-dir STATE | --dir DIR)
                         [--anchor-validity 87600h] [--issuer-validity 8760h]
       weft certs manifests --dir DIR

A rotation is three steps, each safe under traffic:
  anchor   a new trust anchor; the bundle holds the old and the new one; the issuer is unchanged
  issuer   a new issuer signed by the newest anchor; sidecars renew their leaves within a minute
  finish   the newest anchor alone in the bundle
--state-dir STATE: local mode (\`weft up\`, \`weft control\`); the running control picks each
step up within 5 s. --dir DIR: the files of \`weft certs --out DIR\`; apply them with
  weft certs manifests --dir DIR | kubectl apply -f -
and control in the cluster picks them up within 5 s. \`weft check\` says which step is next.
`;

function parseValidity(v: string, what: string): number {
  const m = /^(\d+)(d|h|m|s)$/.exec(v);
  if (!m || Number(m[1]) <= 0) throw new UsageError(`${what}: "${v}" is not a positive duration like 8760h or 365d`);
  return Number(m[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[m[2] as 'd' | 'h' | 'm' | 's'];
}

function where(p: ReturnType<typeof parseFlags>): { dir: string; layout: AuthorityLayout; flag: string; cluster: boolean } {
  const state = str(p, 'state-dir');
  const dir = str(p, 'dir');
  if (state && dir) throw new UsageError('--state-dir and --dir: give one, not both');
  if (state) return { dir: state, layout: STATE_FILES, flag: `--state-dir ${state}`, cluster: false };
  if (dir) return { dir, layout: ISSUER_DIR_FILES, flag: `--dir ${dir}`, cluster: true };
  throw new UsageError('--state-dir STATE or --dir DIR is required');
}

/** The ConfigMap and Secret control watches in the cluster, from the files of DIR. */
export function clusterManifests(dir: string): object[] | { error: string } {
  const a = readAuthorityFiles(dir, ISSUER_DIR_FILES);
  if ('error' in a) return a;
  const labels = { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/part-of': 'weft', 'app.kubernetes.io/component': 'identity' };
  return [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: TRUST_ANCHOR_CONFIGMAP, namespace: NAMESPACE, labels }, data: { 'ca-bundle.pem': a.trustBundlePem } },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: ISSUER_SECRET, namespace: NAMESPACE, labels },
      type: 'Opaque',
      stringData: { [ISSUER_DIR_FILES.issuerCert]: a.issuer.certPem, [ISSUER_DIR_FILES.issuerKey]: a.issuer.keyPem },
    },
  ];
}

export function runManifests(argv: string[]): number {
  const p = parseFlags(argv, { dir: { type: 'string' } }, { positionals: false });
  const dir = str(p, 'dir');
  if (!dir) throw new UsageError('manifests: --dir DIR is required');
  const m = clusterManifests(dir);
  if ('error' in m) {
    process.stderr.write(`weft certs manifests: ${m.error}\n`);
    return 1;
  }
  process.stdout.write(toYamlStream(m as never));
  return 0;
}

export function runRotate(argv: string[]): number {
  const [step, ...rest] = argv;
  if (!step || !ROTATE_STEPS.includes(step as RotateStep)) throw new UsageError(`rotate: name a step: ${ROTATE_STEPS.join(', ')}`);
  const p = parseFlags(rest, {
    'state-dir': { type: 'string' },
    dir: { type: 'string' },
    'anchor-validity': { type: 'string' },
    'issuer-validity': { type: 'string' },
  }, { positionals: false });
  const w = where(p);
  const before = readAuthorityFiles(w.dir, w.layout);
  if ('error' in before) {
    process.stderr.write(`weft certs rotate ${step}: ${before.error}\n`);
    return 1;
  }
  const av = str(p, 'anchor-validity');
  const iv = str(p, 'issuer-validity');
  const r = rotate(step as RotateStep, before, {
    ...(av ? { anchorValidityMs: parseValidity(av, '--anchor-validity') } : {}),
    ...(iv ? { issuerValidityMs: parseValidity(iv, '--issuer-validity') } : {}),
  });
  if ('error' in r) {
    const file = r.error.startsWith('anchor key') ? ` — ${w.dir}/${w.layout.anchorKey}` : '';
    process.stderr.write(`weft certs rotate ${step}: ${r.error}${file}\n`);
    return 1;
  }
  const written = writeAuthorityFiles(w.dir, w.layout, before, r.files);
  const status = rotationStatus(r.files.trustBundlePem, r.files.issuer.certPem, r.files.anchor.certPem);
  const lines = [`${step}: ${r.summary}`, `wrote ${written.map((f) => `${w.dir}/${f}`).join(', ') || 'nothing (already done)'}`];
  if (w.cluster && written.length) lines.push('apply it to the cluster (control notices within 5 s):', `  weft certs manifests --dir ${w.dir} | kubectl apply -f -`);
  else if (written.length) lines.push('a running control picks it up within 5 s');
  lines.push(status.next ? `${status.message.replace(/`weft certs rotate (\w+)`/, `\`weft certs rotate $1 ${w.flag}\``)}` : status.message);
  process.stdout.write(lines.join('\n') + '\n');
  return 0;
}

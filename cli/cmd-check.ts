// `weft check`: say what is missing or about to expire.
//   weft check [--certs DIR] [--kubeconfig FILE] [--context NAME]
// Without a cluster it says so and checks only the local certificate files.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { certValidity, splitPemBundle, ISSUER_DIR_FILES } from '../certs/index.js';
import { parseFlags, str, UsageError } from './args.js';
import { rotationCheck, stateChecks } from './check-rotation.js';
import { loadInventory } from './cmd-get.js';
import { formatConfigError } from '../control/index.js';

const HELP = `usage: weft check [--certs DIR] [--state-dir STATE] [--kubeconfig FILE] [--context NAME] [--warn-days 30] [--config-dir DIR | --control-admin H:P]

Cluster checks (with a kubeconfig, KUBECONFIG, ~/.kube/config, or in a pod):
Gateway API CRDs, weft-system and its Deployments, the webhook configuration
and whether the injector answers through the API server, and the expiry of the
trust anchor, issuer and webhook certificates.
Local checks (--certs DIR, as written by \`weft certs --out DIR\`): expiry of
the anchor and issuer, and that the issuer chains to the trust bundle.
Local mode (--state-dir STATE): the same for the mesh \`weft up\` runs.
Each says which step of a \`weft certs rotate\` the mesh is in.

Config checks (--config-dir DIR offline, else a running control's admin port,
--control-admin H:P, default 127.0.0.1:7091): every file and resource that
failed to load, whatever its kind, with the message.
Exit code 1 when a check fails.
`;

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';
export interface CheckResult { name: string; status: CheckStatus; detail?: string }

const DAY = 86_400_000;

/** Expiry of each certificate in a PEM bundle. */
export function expiryChecks(label: string, pem: string, now: Date, warnDays: number): CheckResult[] {
  const blocks = splitPemBundle(pem);
  if (blocks.length === 0) return [{ name: `${label} certificate`, status: 'fail', detail: 'no CERTIFICATE block' }];
  return blocks.map((b, i) => {
    const name = `${label}${blocks.length > 1 ? ` #${i + 1}` : ''} certificate`;
    let v;
    try {
      v = certValidity(b);
    } catch (e) {
      return { name, status: 'fail' as const, detail: (e as Error).message };
    }
    const left = v.notAfter.getTime() - now.getTime();
    const when = `expires ${v.notAfter.toISOString()}`;
    if (left <= 0) return { name, status: 'fail' as const, detail: `expired ${v.notAfter.toISOString()}` };
    if (now < v.notBefore) return { name, status: 'fail' as const, detail: `not valid before ${v.notBefore.toISOString()}` };
    if (left < warnDays * DAY) return { name, status: 'warn' as const, detail: `${when} (${(left / DAY).toFixed(1)} days left)` };
    return { name, status: 'ok' as const, detail: `${when} (${Math.floor(left / DAY)} days left)` };
  });
}

/** Whether `issuerPem` was signed by one of the bundle's anchors. */
export function issuerChains(issuerPem: string, bundlePem: string): CheckResult {
  try {
    const issuer = new X509Certificate(issuerPem);
    const ok = splitPemBundle(bundlePem).some((a) => {
      const anchor = new X509Certificate(a);
      return issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey);
    });
    return ok ? { name: 'issuer chains to the trust bundle', status: 'ok' } : { name: 'issuer chains to the trust bundle', status: 'fail', detail: 'no anchor in the bundle signed the issuer: leaves it signs will be refused' };
  } catch (e) {
    return { name: 'issuer chains to the trust bundle', status: 'fail', detail: (e as Error).message };
  }
}

export function localChecks(dir: string, now: Date, warnDays: number): CheckResult[] {
  const path = (f: string) => join(dir, f);
  const out: CheckResult[] = [];
  const bundleFile = existsSync(path(ISSUER_DIR_FILES.trustBundle)) ? ISSUER_DIR_FILES.trustBundle : ISSUER_DIR_FILES.anchorCert;
  if (!existsSync(path(bundleFile))) out.push({ name: 'trust anchor', status: 'fail', detail: `${path(ISSUER_DIR_FILES.trustBundle)} is missing` });
  else out.push(...expiryChecks(`trust anchor (${bundleFile})`, readFileSync(path(bundleFile), 'utf8'), now, Math.max(warnDays, 90)));
  if (!existsSync(path(ISSUER_DIR_FILES.issuerCert))) out.push({ name: 'issuer', status: 'fail', detail: `${path(ISSUER_DIR_FILES.issuerCert)} is missing` });
  else {
    const issuer = readFileSync(path(ISSUER_DIR_FILES.issuerCert), 'utf8');
    out.push(...expiryChecks('issuer', issuer, now, warnDays));
    if (existsSync(path(bundleFile))) {
      const bundle = readFileSync(path(bundleFile), 'utf8');
      out.push(issuerChains(issuer, bundle));
      const anchor = existsSync(path(ISSUER_DIR_FILES.anchorCert)) ? readFileSync(path(ISSUER_DIR_FILES.anchorCert), 'utf8') : undefined;
      out.push(rotationCheck(bundle, issuer, anchor, `--dir ${dir}`));
    }
  }
  if (!existsSync(path(ISSUER_DIR_FILES.issuerKey))) out.push({ name: 'issuer key', status: 'fail', detail: `${path(ISSUER_DIR_FILES.issuerKey)} is missing` });
  return out;
}

/** Where a kubeconfig would come from, or undefined: no cluster to talk to. */
export function findKubeconfig(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { kind: 'file'; path: string } | { kind: 'in-cluster' } | undefined {
  if (flag) {
    if (!existsSync(flag)) throw new UsageError(`--kubeconfig ${flag}: no such file`);
    return { kind: 'file', path: flag };
  }
  for (const p of (env['KUBECONFIG'] ?? '').split(':').filter(Boolean)) if (existsSync(p)) return { kind: 'file', path: p };
  const home = join(env['HOME'] ?? homedir(), '.kube', 'config');
  if (existsSync(home)) return { kind: 'file', path: home };
  if (env['KUBERNETES_SERVICE_HOST'] && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) return { kind: 'in-cluster' };
  return undefined;
}

const CRDS: [string, boolean][] = [
  ['httproutes.gateway.networking.k8s.io', true],
  ['grpcroutes.gateway.networking.k8s.io', true],
  ['referencegrants.gateway.networking.k8s.io', true],
  ['backendlbpolicies.gateway.networking.k8s.io', false], // experimental channel
  ['backendtlspolicies.gateway.networking.k8s.io', false], // experimental channel
];

function errText(e: unknown): string {
  const err = e as { code?: number; body?: unknown; message?: string };
  if (err.code === 404) return 'not found';
  if (err.code === 403) return 'forbidden (your credentials may not read it)';
  return err.message?.split('\n')[0] ?? String(e);
}

export async function clusterChecks(source: { kind: 'file'; path: string } | { kind: 'in-cluster' }, context: string | undefined, now: Date, warnDays: number): Promise<CheckResult[]> {
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  if (source.kind === 'file') kc.loadFromFile(source.path);
  else kc.loadFromCluster();
  if (context) kc.setCurrentContext(context);
  const out: CheckResult[] = [];
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const adm = kc.makeApiClient(k8s.AdmissionregistrationV1Api);

  try {
    await core.readNamespace({ name: 'weft-system' });
    out.push({ name: 'namespace weft-system', status: 'ok' });
  } catch (e) {
    const detail = errText(e);
    out.push({ name: 'API server reachable', status: detail === 'not found' ? 'ok' : 'fail', detail: detail === 'not found' ? kc.getCurrentCluster()?.server ?? '' : `${kc.getCurrentCluster()?.server ?? '?'}: ${detail}` });
    if (detail !== 'not found') return out;
    out.push({ name: 'namespace weft-system', status: 'fail', detail: 'not found: run weft install --certs DIR | kubectl apply -f -' });
  }
  for (const [name, required] of CRDS) {
    try {
      const crd = await ext.readCustomResourceDefinition({ name });
      const versions = (crd.spec.versions ?? []).filter((v) => v.served).map((v) => v.name).join(', ');
      out.push({ name: `CRD ${name}`, status: 'ok', detail: `served: ${versions}` });
    } catch (e) {
      out.push({ name: `CRD ${name}`, status: required ? 'fail' : 'warn', detail: `${errText(e)}${required ? ': install the Gateway API v1.1 CRDs' : ' (experimental channel; its policies are ignored)'}` });
    }
  }
  for (const d of ['weft-control', 'weft-injector']) {
    try {
      const dep = await apps.readNamespacedDeployment({ name: d, namespace: 'weft-system' });
      const want = dep.spec?.replicas ?? 1;
      const ready = dep.status?.readyReplicas ?? 0;
      out.push({ name: `deployment ${d}`, status: ready >= want ? 'ok' : ready > 0 ? 'warn' : 'fail', detail: `${ready}/${want} ready` });
    } catch (e) {
      out.push({ name: `deployment ${d}`, status: 'fail', detail: errText(e) });
    }
  }
  try {
    const m = await adm.readMutatingWebhookConfiguration({ name: 'weft-injector' });
    out.push({ name: 'webhook configuration weft-injector', status: 'ok', detail: `${m.webhooks?.length ?? 0} webhooks` });
    const ca = m.webhooks?.[0]?.clientConfig.caBundle;
    if (ca) out.push(...expiryChecks('webhook caBundle', Buffer.from(ca, 'base64').toString('utf8'), now, warnDays));
    else out.push({ name: 'webhook caBundle', status: 'fail', detail: 'empty: the API server cannot verify the injector' });
  } catch (e) {
    out.push({ name: 'webhook configuration weft-injector', status: 'fail', detail: errText(e) });
  }
  try {
    // Through the API server's service proxy: reachable from where the API server stands.
    const body = await core.connectGetNamespacedServiceProxyWithPath({ name: 'https:weft-injector:443', namespace: 'weft-system', path: 'ready' });
    out.push({ name: 'injector answers (service proxy /ready)', status: String(body).trim() === 'ok' ? 'ok' : 'warn', detail: String(body).trim().slice(0, 80) });
  } catch (e) {
    out.push({ name: 'injector answers (service proxy /ready)', status: 'fail', detail: errText(e) });
  }
  let clusterBundle: string | undefined;
  try {
    const cm = await core.readNamespacedConfigMap({ name: 'weft-trust-anchor', namespace: 'weft-system' });
    clusterBundle = cm.data?.['ca-bundle.pem'] ?? '';
    out.push(...expiryChecks('trust anchor (ConfigMap weft-trust-anchor)', clusterBundle, now, Math.max(warnDays, 90)));
  } catch (e) {
    out.push({ name: 'trust anchor (ConfigMap weft-trust-anchor)', status: 'fail', detail: errText(e) });
  }
  for (const [secret, key, label] of [['weft-issuer', ISSUER_DIR_FILES.issuerCert, 'issuer (Secret weft-issuer)'], ['weft-injector-tls', 'tls.crt', 'webhook serving (Secret weft-injector-tls)']] as const) {
    try {
      const s = await core.readNamespacedSecret({ name: secret, namespace: 'weft-system' });
      const pem = Buffer.from(s.data?.[key] ?? '', 'base64').toString('utf8');
      out.push(...expiryChecks(label, splitPemBundle(pem)[0] ?? '', now, warnDays));
      if (secret === 'weft-issuer' && clusterBundle) out.push(rotationCheck(clusterBundle, pem, undefined, ''));
    } catch (e) {
      out.push({ name: label, status: errText(e).startsWith('forbidden') ? 'skip' : 'fail', detail: errText(e) });
    }
  }
  return out;
}

/** One failed check per load error (compile's are route and policy status, shown by weft get). */
export function configChecks(inv: Pick<Awaited<ReturnType<typeof loadInventory>>, 'errors' | 'resources'>): CheckResult[] {
  const errs = inv.errors.filter((e) => e.source !== 'compile');
  if (errs.length === 0) return [{ name: 'config loaded', status: 'ok', detail: `${inv.resources.length} resource(s), no load errors` }];
  return errs.map((e) => ({ name: 'config error', status: 'fail' as const, detail: formatConfigError(e) }));
}

const MARK: Record<CheckStatus, string> = { ok: '√', warn: '‼', fail: '×', skip: '-' };

export function formatResults(title: string, results: CheckResult[]): string {
  return [`${title}`, ...results.map((r) => `  ${MARK[r.status]} ${r.name}${r.detail ? `: ${r.detail}` : ''}`)].join('\n') + '\n';
}

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const p = parseFlags(argv, {
    certs: { type: 'string' },
    'state-dir': { type: 'string' },
    kubeconfig: { type: 'string' },
    context: { type: 'string' },
    'warn-days': { type: 'string' },
    'config-dir': { type: 'string' },
    'control-admin': { type: 'string' },
  }, { positionals: false });
  const warnDays = Number(str(p, 'warn-days') ?? '30');
  if (!Number.isFinite(warnDays) || warnDays < 0) throw new UsageError('--warn-days: not a non-negative number');
  const now = new Date();
  const all: CheckResult[] = [];
  const certs = str(p, 'certs');
  if (certs) {
    const r = localChecks(certs, now, warnDays);
    all.push(...r);
    process.stdout.write(formatResults(`local certificates (${certs})`, r));
  }
  const stateDir = str(p, 'state-dir');
  if (stateDir) {
    const r = stateChecks(stateDir, now, warnDays, expiryChecks, issuerChains);
    all.push(...r);
    process.stdout.write(formatResults(`local mesh (${stateDir})`, r));
  }
  const source = findKubeconfig(str(p, 'kubeconfig'));
  if (!source) {
    process.stdout.write('cluster\n  - no cluster: no --kubeconfig, KUBECONFIG, ~/.kube/config, or in-cluster service account; cluster checks skipped\n');
    if (!certs) process.stdout.write('  (pass --certs DIR to check the anchor and issuer written by `weft certs --out DIR`)\n');
  } else {
    let r: CheckResult[];
    try {
      r = await clusterChecks(source, str(p, 'context'), now, warnDays);
    } catch (e) {
      r = [{ name: 'kubeconfig', status: 'fail', detail: (e as Error).message }];
    }
    all.push(...r);
    process.stdout.write(formatResults(`cluster (${source.kind === 'file' ? source.path : 'in-cluster'})`, r));
  }
  {
    const explicit = str(p, 'config-dir') !== undefined || str(p, 'control-admin') !== undefined;
    let r: CheckResult[];
    let title = `config (${str(p, 'config-dir') ?? `control ${str(p, 'control-admin') ?? '127.0.0.1:7091'}`})`;
    try {
      r = configChecks(await loadInventory(p));
    } catch (e) {
      if (e instanceof UsageError) throw e;
      // No control running and no --config-dir: nothing to check, not a failure.
      r = [{ name: 'config', status: explicit ? 'fail' : 'skip', detail: (e as Error).message }];
      if (!explicit) title = 'config';
    }
    all.push(...r);
    process.stdout.write(formatResults(title, r));
  }
  const failed = all.filter((r) => r.status === 'fail').length;
  const warned = all.filter((r) => r.status === 'warn').length;
  process.stdout.write(failed ? `${failed} check(s) failed, ${warned} warning(s)\n` : `all checks passed${warned ? `, ${warned} warning(s)` : ''}\n`);
  return failed ? 1 : 0;
}

import t from 'tap';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { FakeKubeApiServer } from '../../../control/test/helpers/kube-apiserver.js';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { X509Certificate } from 'node:crypto';
import { Namespace, ServiceAccount, ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { renderManifests, installCerts, toYamlStream } from '../../../cli/cmd-install.js';
import { verifyChain } from '../../../certs/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');

type Obj = Record<string, unknown> & { kind: string; apiVersion: string; metadata: { name: string; namespace?: string } };
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const MODELS: Record<string, new (o: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
};

const { certs } = installCerts(undefined);
const objs = renderManifests({ certs }) as Obj[];

t.test('every manifest validates against the Kubernetes schemas', async (t) => {
  for (const o of objs) {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    t.ok(Model, `schema known for ${o.apiVersion} ${o.kind}`);
    if (!Model) continue;
    t.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name} is valid`);
  }
  const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`);
  for (const want of ['Namespace/weft-system', 'Deployment/weft-control', 'Service/weft-control', 'Deployment/weft-injector', 'Service/weft-injector', 'ClusterRole/weft-control', 'MutatingWebhookConfiguration/weft-injector', 'ConfigMap/weft-trust-anchor', 'Secret/weft-issuer', 'Secret/weft-injector-tls']) {
    t.ok(kinds.includes(want), `has ${want}`);
  }
});

const find = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

t.test('control: two replicas, ports 7443 and 7091, image by version', async (t) => {
  const d = find('Deployment', 'weft-control');
  t.equal(d.spec.replicas, 2);
  const c = d.spec.template.spec.containers[0];
  t.same(c.ports.map((p: { containerPort: number }) => p.containerPort), [7443, 7091]);
  t.match(c.image, /^ghcr\.io\/weft-mesh\/weft:\d+\.\d+\.\d+/);
  const svc = find('Service', 'weft-control');
  t.same(svc.spec.ports.map((p: { port: number }) => p.port), [7443, 7091]);
  const inj = find('Service', 'weft-injector');
  t.same(inj.spec.ports[0], { name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' });
  t.equal(find('Deployment', 'weft-injector').spec.template.spec.containers[0].ports[0].containerPort, 8443);
});

t.test('RBAC is least privilege', async (t) => {
  const rules = find('ClusterRole', 'weft-control').rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  const writes = rules.filter((r) => r.verbs.some((v) => ['create', 'update', 'patch', 'delete', 'deletecollection'].includes(v)));
  for (const r of writes) {
    const ok = r.resources.every((x) => x.endsWith('/status')) || r.resources.join() === 'tokenreviews' || (r.resources.join() === 'configmaps' && (r.resourceNames?.join() === 'weft-trust-anchor' || r.verbs.join() === 'create'));
    t.ok(ok, `write rule limited: ${r.resources.join(',')} ${r.verbs.join(',')}`);
  }
  t.notOk(rules.some((r) => r.verbs.includes('*') || r.resources.includes('*') || r.resources.includes('secrets')), 'no wildcards, no secrets');
  const authz = rules.find((r) => r.apiGroups.includes('policy.weft.io') && r.verbs.includes('watch'));
  t.same(authz?.resources, ['authorizationpolicies'], 'AuthorizationPolicies are read');
  const gw = rules.find((r) => r.apiGroups.includes('gateway.networking.k8s.io') && r.verbs.includes('watch'));
  t.same(gw?.resources, ['httproutes', 'grpcroutes', 'referencegrants', 'backendlbpolicies', 'backendtlspolicies']);
  const role = find('Role', 'weft-control');
  t.equal(role.metadata.namespace, 'weft-system');
  t.ok(role.rules.some((r: { resources: string[] }) => r.resources.includes('leases')));
  const secrets = role.rules.filter((r: { resources: string[] }) => r.resources.includes('secrets'));
  t.same(secrets, [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['weft-issuer'], verbs: ['get', 'list', 'watch'] }], 'reads only its issuer Secret, in weft-system (rotation)');
});

t.test('webhook: selectors, sideEffects None, failurePolicy, caBundle verifies the serving cert', async (t) => {
  const m = find('MutatingWebhookConfiguration', 'weft-injector');
  t.equal(m.webhooks.length, 2);
  const [ns, pod] = m.webhooks;
  t.same(ns.namespaceSelector.matchLabels, { 'weft.io/inject': 'enabled' });
  t.same(pod.objectSelector.matchLabels, { 'weft.io/inject': 'enabled' });
  for (const w of m.webhooks) {
    t.equal(w.sideEffects, 'None');
    t.equal(w.failurePolicy, 'Fail');
    t.ok(w.timeoutSeconds <= 30);
    t.same(w.admissionReviewVersions, ['v1']);
    t.equal(w.clientConfig.service.name, 'weft-injector');
    t.ok(w.namespaceSelector.matchExpressions.some((e: { values: string[] }) => e.values.includes('kube-system') && e.values.includes('weft-system')));
  }
  t.equal(ns.clientConfig.service.path, '/mutate');
  const caPem = Buffer.from(ns.clientConfig.caBundle, 'base64').toString('utf8');
  const tls = find('Secret', 'weft-injector-tls').stringData;
  const [leaf, ...chain] = tls['tls.crt'].match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g);
  t.same(verifyChain(leaf, chain, caPem, new Date(), { requireSpiffeId: false }), { ok: true });
  t.match(new X509Certificate(leaf).subjectAltName, /DNS:weft-injector\.weft-system\.svc/);
});

t.test('the AuthorizationPolicy CRD ships with the install (policy.weft.io/v1alpha1, status subresource)', async (t) => {
  const crd = find('CustomResourceDefinition', 'authorizationpolicies.policy.weft.io');
  t.ok(crd, 'CRD present');
  t.equal(crd.spec.group, 'policy.weft.io');
  t.equal(crd.spec.names.kind, 'AuthorizationPolicy');
  t.equal(crd.spec.scope, 'Namespaced');
  t.same(crd.spec.versions.map((v: { name: string }) => v.name), ['v1alpha1']);
  t.same(crd.spec.versions[0].subresources, { status: {} });
  t.same(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.action.enum, ['ALLOW']);
  const withDefault = renderManifests({ defaultInboundPolicy: 'all-authenticated' }) as Obj[];
  const args = (withDefault.find((o) => o.kind === 'Deployment' && o.metadata.name === 'weft-control') as Record<string, any>).spec.template.spec.containers[0].args; // eslint-disable-line @typescript-eslint/no-explicit-any
  t.match(args.join(' '), /--default-inbound-policy all-authenticated/, 'the install value becomes control\'s flag');
});

t.test('the committed reference manifest is what weft install --no-certs prints', async (t) => {
  const committed = readFileSync(join(root, 'deploy', 'kubernetes', 'weft.yaml'), 'utf8');
  t.equal(committed, toYamlStream(renderManifests({})), 'regenerate with: node dist/cli/weft.js install --no-certs > deploy/kubernetes/weft.yaml');
  const docs = parseAllDocuments(committed);
  t.ok(Array.isArray(docs) && docs.every((d) => d.errors.length === 0), 'parses as YAML');
});

t.test('weft certs then weft install --certs DIR (CLI), accepted by kubectl apply --dry-run=client', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-install-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cli = join(root, 'dist', 'cli', 'weft.js');
  execFileSync(process.execPath, [cli, 'certs', '--out', dir], { stdio: 'pipe' });
  const out = execFileSync(process.execPath, [cli, 'install', '--certs', dir], { encoding: 'utf8' });
  const docs = parseAllDocuments(out);
  if (!Array.isArray(docs)) throw new Error('no documents');
  const cm = docs.map((d) => d.toJS()).find((o) => o.kind === 'ConfigMap');
  t.equal(cm.data['ca-bundle.pem'], readFileSync(join(dir, 'trust-bundle.pem'), 'utf8'), 'trust anchor from DIR');
  t.notMatch(out, readFileSync(join(dir, 'anchor.key'), 'utf8').split('\n')[1] ?? 'x', 'the anchor key never leaves DIR');
  // kubectl decodes each object into its Go type and maps it to a resource (legacy discovery from the fake API server).
  const api = new FakeKubeApiServer(`127.${10 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`);
  await api.start();
  t.teardown(() => api.close());
  const k = await api.kubectl(join(dir, 'kubeconfig'), ['apply', '--dry-run=client', '--validate=false', '-f', '-'], out);
  t.equal(k.code, 0, k.stderr);
  const lines = k.stdout.trim().split('\n');
  t.equal(lines.length, objs.length, 'kubectl accepts every object');
  t.ok(lines.every((l) => l.endsWith('created (dry run)')));
  t.notOk(api.requests.some((r) => r.method !== 'GET'), 'dry run: nothing written');
});

t.test('the printed YAML has no anchors or aliases (plain for every tool)', async (t) => {
  const text = toYamlStream(renderManifests({ certs }));
  t.notMatch(text, /^\s*(- )?[&*]a\d+/m);
  t.notMatch(text, /: [&*]a\d+/);
});

t.test('retry budgets: the XBackendTrafficPolicy CRD ships with its defaults, and control may read it and write its status', async (t) => {
  const crd = find('CustomResourceDefinition', 'xbackendtrafficpolicies.gateway.networking.x-k8s.io');
  t.ok(crd, 'CRD present');
  t.equal(crd.spec.group, 'gateway.networking.x-k8s.io');
  const rc = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.retryConstraint.properties;
  t.same(rc.budget.default, { interval: '10s', percent: 20 });
  t.same(rc.minRetryRate.default, { count: 10, interval: '1s' });
  const rules = find('ClusterRole', 'weft-control').rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
  const can = (res: string, verb: string) => rules.some((r) => r.apiGroups.includes('gateway.networking.x-k8s.io') && r.resources.includes(res) && r.verbs.includes(verb));
  t.ok(can('xbackendtrafficpolicies', 'watch'));
  t.ok(can('xbackendtrafficpolicies/status', 'update'));
});

t.test('weft install --ha: three control replicas, one per node, a PDB keeping two, all valid', async (t) => {
  const ha = renderManifests({ certs, ha: true }) as Obj[];
  for (const o of ha) {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`];
    if (Model) t.doesNotThrow(() => new Model(o).validate(), `${o.kind}/${o.metadata.name} is valid`);
  }
  const get = (kind: string, name: string) => ha.find((o) => o.kind === kind && o.metadata.name === name) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const d = get('Deployment', 'weft-control');
  t.equal(d.spec.replicas, 3, 'three replicas');
  const anti = d.spec.template.spec.affinity.podAntiAffinity;
  t.same(anti.requiredDuringSchedulingIgnoredDuringExecution, [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { 'app.kubernetes.io/component': 'control' } } }], 'never two on one node');
  t.equal(anti.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.topologyKey, 'topology.kubernetes.io/zone', 'zones preferred apart');
  const pdb = get('PodDisruptionBudget', 'weft-control');
  t.same(pdb.spec, { minAvailable: 2, selector: { matchLabels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/component': 'control' } } }, 'two keep serving through a drain');
  t.same(get('PodDisruptionBudget', 'weft-injector').spec.maxUnavailable, 1, 'the injector budget is unchanged');
  // The CLI flag prints the same.
  const out = execFileSync(process.execPath, [join(root, 'dist', 'cli', 'weft.js'), 'install', '--ha', '--no-certs'], { encoding: 'utf8' });
  const docs = parseAllDocuments(out).map((x) => x.toJS() as Obj);
  t.equal((docs.find((o) => o.kind === 'Deployment' && o.metadata.name === 'weft-control') as Record<string, any>).spec.replicas, 3, 'weft install --ha prints 3 replicas'); // eslint-disable-line @typescript-eslint/no-explicit-any
});

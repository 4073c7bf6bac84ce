// InboundUpdate over the real stream: a sidecar that announces the
// "inbound-authz" feature gets the policies selecting its own pod (from its
// Hello's namespace and labels), again only when its view changes; a sidecar
// that does not announce it (an older one) never gets the message.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlMessage, InboundAuthzConfig } from '../../api/index.js';
import { startControl } from '../index.js';
import { certify, FakeSidecar, readState } from './helpers/fake-sidecar.js';

const ip = `127.${20 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
const inboundOf = (m: ControlMessage) => ('inbound' in m && m.inbound ? m.inbound : undefined);
const viewOf = (m: ControlMessage) => JSON.parse(Buffer.from(inboundOf(m)!.config_json).toString('utf8')) as InboundAuthzConfig;

const policy = (name: string, app: string) => `apiVersion: policy.weft.io/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: shop }
spec:
  targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: ${app} } } }]
  action: ALLOW
  rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: web } }] }]
`;

t.test('the per-pod inbound view travels as InboundUpdate to the sidecars that ask for it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cfg-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  writeFileSync(join(dir, 'ns.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: { name: shop }\n');
  const control = await startControl({ configDir: dir, stateDir, listen: `${ip}:0`, adminListen: `${ip}:0`, log: () => {}, defaultInboundPolicy: 'all-authenticated' });
  t.teardown(async () => {
    await control.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });
  const { token, bundle } = readState(stateDir);
  const cert = await certify(control.grpcAddress, bundle, { token, namespace: 'shop', serviceAccount: 'cart' });
  const cart = new FakeSidecar(control.grpcAddress, bundle, cert, { namespace: 'shop', service_account: 'cart', pod_name: 'cart-0', workload: 'cart', labels: { app: 'cart' }, features: ['inbound-authz'] });
  const old = new FakeSidecar(control.grpcAddress, bundle, cert, { namespace: 'shop', service_account: 'cart', pod_name: 'cart-1', workload: 'cart', labels: { app: 'cart' } });
  t.teardown(() => {
    cart.close();
    old.close();
  });

  const first = await cart.next((m) => !!inboundOf(m));
  const v0 = viewOf(first);
  t.same(v0.policies, [], 'no policy yet');
  t.equal(v0.defaultPolicy, 'all-authenticated', 'the mesh default from control\'s option');
  t.equal(v0.pod, 'shop/cart-0');
  cart.ack('inbound', inboundOf(first)!.version);

  writeFileSync(join(dir, 'cart-policy.yaml'), policy('allow-web', 'cart'));
  const at = cart.messages.length;
  const second = await cart.next((m) => !!inboundOf(m), 3000, at);
  t.same(viewOf(second).policies.map((p) => p.name), ['shop/allow-web'], 'the policy selecting the pod arrives');
  t.not(inboundOf(second)!.version, inboundOf(first)!.version, 'a new version (derived from the content, the same on every control replica)');
  cart.ack('inbound', inboundOf(second)!.version);

  // A policy for other pods changes nothing for this one: nothing is sent.
  writeFileSync(join(dir, 'web-policy.yaml'), policy('allow-web-too', 'web'));
  await t.resolves(
    (async () => {
      // Wait until control has compiled the new policy, then give a push a moment to (not) happen.
      for (let i = 0; i < 100 && !control.engine.result()?.statuses.some((s) => s.name === 'allow-web-too'); i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 300));
    })(),
  );
  t.equal(cart.messages.slice(at).filter((m) => inboundOf(m)).length, 1, 'an unrelated policy is not pushed to this pod');
  t.equal(old.messages.filter((m) => inboundOf(m)).length, 0, 'a sidecar without the feature never gets InboundUpdate');
  t.ok(old.messages.some((m) => 'directory' in m && m.directory), 'but still its directory');
});

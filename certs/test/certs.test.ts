import t from 'tap';
import tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, statSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import {
  createTrustAnchor, createIssuer, generateKeyAndCsr, signCsr, issueCert, spiffeId, parseSpiffeId,
  spiffeIdOfCert, verifyChain, certValidity, renewAt, splitPemBundle, writeSecretFile, loadOrCreateAuthority,
  type Pem,
} from '../index.js';

const HOUR = 3600_000;
const anchor = createTrustAnchor();
const issuer = createIssuer(anchor);
const otherAnchor = createTrustAnchor({ commonName: 'other anchor' });
const otherIssuer = createIssuer(otherAnchor);
const idA = spiffeId('shop', 'frontend');
const idB = spiffeId('shop', 'cart');

function leafFor(iss: Pem, id: string, lifetimeMs?: number, now?: Date): Pem & { notAfter: Date } {
  const { keyPem, csrPem } = generateKeyAndCsr(id);
  const s = signCsr(iss, csrPem, { spiffeId: id, ...(lifetimeMs ? { lifetimeMs } : {}), ...(now ? { now } : {}) });
  return { certPem: s.certPem, keyPem, notAfter: s.notAfter };
}

t.test('SPIFFE IDs format and parse', async (t) => {
  const cases: [string, ReturnType<typeof parseSpiffeId>][] = [
    ['spiffe://cluster.local/ns/shop/sa/frontend', { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'frontend' }],
    ['spiffe://example.org/ns/a-b/sa/c_d.e', { trustDomain: 'example.org', namespace: 'a-b', serviceAccount: 'c_d.e' }],
    ['spiffe://Cluster.local/ns/a/sa/b', undefined],
    ['https://cluster.local/ns/a/sa/b', undefined],
    ['spiffe://cluster.local/ns/a/sa/b/extra', undefined],
    ['spiffe://cluster.local/ns/a/xx/b', undefined],
    ['spiffe://cluster.local/ns/../sa/b', undefined],
    ['spiffe://cluster.local/ns//sa/b', undefined],
  ];
  for (const [id, want] of cases) t.same(parseSpiffeId(id), want, id);
  t.equal(spiffeId('a', 'b'), 'spiffe://cluster.local/ns/a/sa/b');
  t.equal(spiffeId('a', 'b', 'corp.example'), 'spiffe://corp.example/ns/a/sa/b');
});

t.test('anchor and issuer carry CA constraints', async (t) => {
  const a = new X509Certificate(anchor.certPem);
  const i = new X509Certificate(issuer.certPem);
  t.ok(a.ca, 'anchor is a CA');
  t.ok(i.ca, 'issuer is a CA');
  t.ok(i.checkIssued(a) && i.verify(a.publicKey), 'issuer signed by anchor');
  t.ok(a.verify(a.publicKey), 'anchor self-signed');
  t.ok(certValidity(issuer.certPem).notAfter <= certValidity(anchor.certPem).notAfter, 'issuer never outlives anchor');
});

t.test('a signed leaf has the SPIFFE URI, 24 h life, backdated start, both EKUs', async (t) => {
  const before = Date.now();
  const leaf = leafFor(issuer, idA);
  const v = certValidity(leaf.certPem);
  t.equal(v.spiffeId, idA);
  t.equal(spiffeIdOfCert(leaf.certPem), idA);
  t.ok(v.notBefore.getTime() <= before - 59_000 && v.notBefore.getTime() >= before - 62_000, 'notBefore backdated ~1 min');
  const life = v.notAfter.getTime() - before;
  t.ok(Math.abs(life - 24 * HOUR) < 5_000, `lifetime ~24h (${life} ms)`);
  const x = new X509Certificate(leaf.certPem);
  t.notOk(x.ca, 'leaf is not a CA');
  t.same([...(x.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth + clientAuth');
  t.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(leaf.keyPem)), 'cert matches the CSR key');
  const other = leafFor(issuer, idA);
  t.not(new X509Certificate(other.certPem).serialNumber, x.serialNumber, 'serials are random');
});

t.test('signCsr: control decides the identity, bad CSRs are refused', async (t) => {
  const { csrPem } = generateKeyAndCsr('spiffe://cluster.local/ns/kube-system/sa/admin');
  const s = signCsr(issuer, csrPem, { spiffeId: idB, dnsNames: ['cart.shop.svc'], ipAddresses: ['10.0.0.7'] });
  t.equal(spiffeIdOfCert(s.certPem), idB, 'the requested identity is ignored');
  t.match(new X509Certificate(s.certPem).subjectAltName ?? '', /DNS:cart\.shop\.svc/);
  t.match(new X509Certificate(s.certPem).subjectAltName ?? '', /IP Address:10\.0\.0\.7/);
  t.throws(() => signCsr(issuer, 'garbage', { spiffeId: idB }), /CSR/);
  // Tamper: flip a byte in the middle of the DER body.
  const body = csrPem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
  const der = Buffer.from(body, 'base64');
  der[60] = (der[60] ?? 0) ^ 0xff;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
  t.throws(() => signCsr(issuer, tampered, { spiffeId: idB }), /CSR/);
});

t.test('verifyChain table', async (t) => {
  const good = leafFor(issuer, idA);
  const foreign = leafFor(otherIssuer, idA);
  const expired = leafFor(issuer, idA, HOUR, new Date(Date.now() - 3 * HOUR));
  const noSpiffe = issueCert(issuer, { dnsNames: ['x.example'] });
  const twoSpiffe = issueCert(issuer, { spiffeId: idA, dnsNames: [] });
  const bundleBoth = anchor.certPem + otherAnchor.certPem;
  const cases: { name: string; leaf: string; chain: string[]; bundle: string; now?: Date; ok: boolean; err?: RegExp }[] = [
    { name: 'leaf + issuer chain to the anchor', leaf: good.certPem, chain: [issuer.certPem], bundle: anchor.certPem, ok: true },
    { name: 'chain repeating the anchor', leaf: good.certPem, chain: [issuer.certPem + anchor.certPem], bundle: anchor.certPem, ok: true },
    { name: 'missing issuer', leaf: good.certPem, chain: [], bundle: anchor.certPem, ok: false, err: /does not chain/ },
    { name: 'leaf from another anchor', leaf: foreign.certPem, chain: [otherIssuer.certPem], bundle: anchor.certPem, ok: false, err: /does not chain/ },
    { name: 'rotation bundle accepts the old anchor', leaf: good.certPem, chain: [issuer.certPem], bundle: bundleBoth, ok: true },
    { name: 'rotation bundle accepts the new anchor', leaf: foreign.certPem, chain: [otherIssuer.certPem], bundle: bundleBoth, ok: true },
    { name: 'expired leaf', leaf: expired.certPem, chain: [issuer.certPem], bundle: anchor.certPem, ok: false, err: /expired/ },
    { name: 'not yet valid', leaf: good.certPem, chain: [issuer.certPem], bundle: anchor.certPem, now: new Date(Date.now() - HOUR), ok: false, err: /not valid before/ },
    { name: 'leaf without SPIFFE ID', leaf: noSpiffe.certPem, chain: [issuer.certPem], bundle: anchor.certPem, ok: false, err: /no SPIFFE/ },
    { name: 'empty bundle', leaf: good.certPem, chain: [issuer.certPem], bundle: '', ok: false, err: /no certificates/ },
    { name: 'garbage leaf', leaf: 'nope', chain: [], bundle: anchor.certPem, ok: false, err: /leaf/ },
    { name: 'issuer as leaf', leaf: issuer.certPem, chain: [], bundle: anchor.certPem, ok: false, err: /CA/ },
  ];
  for (const c of cases) {
    const r = verifyChain(c.leaf, c.chain, c.bundle, c.now);
    t.equal(r.ok, c.ok, c.name);
    if (r.ok) t.equal(r.spiffeId, idA, `${c.name}: spiffe id`);
    else if (c.err) t.match(r.error, c.err, `${c.name}: ${r.error}`);
  }
  t.same(verifyChain(twoSpiffe.certPem, [issuer.certPem], anchor.certPem), { ok: true, spiffeId: idA });
  t.same(verifyChain(noSpiffe.certPem, [issuer.certPem], anchor.certPem, undefined, { requireSpiffeId: false }), { ok: true });
});

t.test('issuer pathLen 0 forbids a CA below it', async (t) => {
  // Forge an intermediate under the issuer by treating the issuer as an anchor: createIssuer signs a CA.
  const sub = createIssuer(issuer);
  const leaf = leafFor(sub, idA);
  const r = verifyChain(leaf.certPem, [sub.certPem, issuer.certPem], anchor.certPem);
  t.equal(r.ok, false);
  if (!r.ok) t.match(r.error, /allows 0 intermediate/);
});

t.test('renewAt is 70% through the lifetime by default', async (t) => {
  const nb = new Date('2026-01-01T00:00:00Z');
  const na = new Date('2026-01-02T00:00:00Z');
  t.equal(renewAt(nb, na).toISOString(), '2026-01-01T16:48:00.000Z');
  t.equal(renewAt(nb, na, 0.5).toISOString(), '2026-01-01T12:00:00.000Z');
  t.equal(renewAt(nb, na, 2).toISOString(), na.toISOString(), 'clamped');
});

t.test('splitPemBundle', async (t) => {
  t.equal(splitPemBundle(anchor.certPem + '\n\n' + otherAnchor.certPem).length, 2);
  t.equal(splitPemBundle('').length, 0);
  t.equal(splitPemBundle(anchor.certPem.replace(/\n/g, '\r\n')).length, 1);
});

function handshake(server: Pem, serverChain: string, client: Pem, clientChain: string, bundle: string) {
  return new Promise<{ ok: true; serverSawClient: string | undefined; clientSawServer: string | undefined } | { ok: false; error: string }>((resolve) => {
    let serverSaw: string | undefined;
    const srv = tls.createServer({ cert: server.certPem + serverChain, key: server.keyPem, ca: bundle, requestCert: true, rejectUnauthorized: true }, (s) => {
      serverSaw = spiffeIdOfCert(s.getPeerCertificate());
      s.end('hi');
    });
    srv.on('tlsClientError', () => {});
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      const c = tls.connect({
        host: '127.0.0.1', port, cert: client.certPem + clientChain, key: client.keyPem, ca: bundle,
        checkServerIdentity: () => undefined, // identity is the SPIFFE ID, checked below
      });
      let data = '';
      c.on('data', (d) => { data += d; });
      c.on('end', () => {
        const seen = spiffeIdOfCert(c.getPeerCertificate());
        c.destroy(); srv.close();
        if (data === 'hi') resolve({ ok: true, serverSawClient: serverSaw, clientSawServer: seen });
        else resolve({ ok: false, error: 'no data' });
      });
      c.on('error', (e) => { c.destroy(); srv.close(); resolve({ ok: false, error: e.message }); });
    });
  });
}

t.test('Node TLS accepts the chain in a mutual handshake and refuses foreign or expired leaves', async (t) => {
  const a = leafFor(issuer, idA);
  const b = leafFor(issuer, idB);
  const r = await handshake(a, issuer.certPem, b, issuer.certPem, anchor.certPem);
  t.same(r, { ok: true, serverSawClient: idB, clientSawServer: idA }, 'mTLS works, both sides read the peer SPIFFE ID');

  const foreign = leafFor(otherIssuer, idB);
  const r2 = await handshake(a, issuer.certPem, foreign, otherIssuer.certPem, anchor.certPem);
  t.equal(r2.ok, false, 'client from another anchor is refused');

  const expired = leafFor(issuer, idB, HOUR, new Date(Date.now() - 3 * HOUR));
  const r3 = await handshake(expired, issuer.certPem, b, issuer.certPem, anchor.certPem);
  t.equal(r3.ok, false, 'expired server leaf is refused');
  if (!r3.ok) t.match(r3.error, /expired/i);

  const bundle = anchor.certPem + otherAnchor.certPem;
  const r4 = await handshake(a, issuer.certPem, foreign, otherIssuer.certPem, bundle);
  t.same(r4, { ok: true, serverSawClient: idB, clientSawServer: idA }, 'rotation bundle: old and new anchors both accepted');
});

t.test('loadOrCreateAuthority creates once, reuses, keeps keys 0600', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = loadOrCreateAuthority(dir);
  t.equal(first.trustDomain, 'cluster.local');
  for (const f of ['ca/anchor.key', 'ca/issuer.key']) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.equal(readFileSync(join(dir, 'trust-bundle.pem'), 'utf8'), first.trustBundlePem);
  const second = loadOrCreateAuthority(dir, { trustDomain: 'corp.example' });
  t.equal(second.anchor.certPem, first.anchor.certPem, 'anchor reused');
  t.equal(second.issuer.certPem, first.issuer.certPem, 'issuer reused');
  t.equal(second.trustDomain, 'corp.example');
  const leaf = issueCert(second.issuer, { spiffeId: idA });
  t.same(verifyChain(leaf.certPem, [second.issuer.certPem], second.trustBundlePem), { ok: true, spiffeId: idA });
  // A later run past the issuer's 70% mark re-issues the issuer under the same anchor.
  const later = loadOrCreateAuthority(dir, { now: new Date(Date.now() + 300 * 24 * HOUR) });
  t.equal(later.anchor.certPem, first.anchor.certPem);
  t.not(later.issuer.certPem, first.issuer.certPem, 'issuer renewed');
  writeSecretFile(join(dir, 'tok'), 'x');
  t.equal(statSync(join(dir, 'tok')).mode & 0o777, 0o600);
});

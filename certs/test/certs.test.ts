import t from 'tap';
import tls from 'node:tls';
import { once } from 'node:events';
import { mkdtempSync, statSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey, generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import forge from 'node-forge';
import {
  createTrustAnchor, createIssuer, generateKeyAndCsr, signCsr, issueCert, spiffeId, parseSpiffeId,
  spiffeIdOfCert, verifyChain, certValidity, renewAt, splitPemBundle, writeSecretFile, loadOrCreateAuthority,
  type Pem,
} from '../index.js';
import { OID, bits, ctx, encode, kids, name, oid, parse, seq, set, extension, generalNames, smallInt, nul } from '../der.js';

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

// ---- EC P-256 leaves under the RSA issuer ----

/** Re-wraps DER as a CSR PEM. */
const csrPemOf = (der: Buffer) => `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;
const derOf = (pem: string) => Buffer.from(pem.split('\n').filter((l) => l && !l.startsWith('-----')).join(''), 'base64');

/** An RSA 2048 CSR as the previous sidecars sent (forge pki, sha256WithRSAEncryption). */
function rsaCsr(id: string): { keyPem: string; csrPem: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const fk = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(fk.n, fk.e);
  csr.setSubject([{ name: 'organizationName', value: 'weft' }]);
  csr.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: id }] }] }]);
  csr.sign(fk, forge.md.sha256.create());
  return { keyPem, csrPem: forge.pki.certificationRequestToPem(csr) };
}

/** A CSR built by hand from parts, to make the bad ones signCsr must refuse. */
function craftCsr(o: { spkiDer: Buffer; signWith: import('node:crypto').KeyObject; algOid?: string; version?: number; flipSig?: boolean }): string {
  const info = seq([
    smallInt(o.version ?? 0),
    name([[OID.organizationName, 'weft']]),
    parse(o.spkiDer),
    ctx(0, [seq([oid(OID.extensionRequest), set([seq([extension(OID.subjectAltName, false, generalNames({ uris: [idA], dns: [], ips: [] }))])])])]),
  ]);
  const sig = nodeSign(o.signWith.asymmetricKeyType === 'ed25519' ? null : 'sha256', encode(info), o.signWith);
  if (o.flipSig) sig[sig.length - 3] = (sig[sig.length - 3] ?? 0) ^ 0x01;
  const alg = o.algOid === OID.sha256WithRSA ? seq([oid(OID.sha256WithRSA), nul()]) : seq([oid(o.algOid ?? OID.ecdsaWithSHA256)]);
  return csrPemOf(encode(seq([info, alg, bits(0, sig)])));
}

t.test('EC leaf: P-256 PKCS#8 key, CSR the way openssl reads it, leaf signed by the RSA issuer', async (t) => {
  const { keyPem, csrPem } = generateKeyAndCsr(idA);
  t.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  const k = createPrivateKey(keyPem);
  t.equal(k.asymmetricKeyType, 'ec');
  t.equal(k.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const s = signCsr(issuer, csrPem, { spiffeId: idA, dnsNames: ['web.shop.svc'], ipAddresses: ['10.1.2.3', 'fd00::7'] });
  const x = new X509Certificate(s.certPem);
  t.equal(x.publicKey.asymmetricKeyType, 'ec', 'leaf carries the EC key');
  t.ok(x.checkPrivateKey(k), 'leaf key is the CSR key');
  t.ok(x.verify(new X509Certificate(issuer.certPem).publicKey), 'X509Certificate.verify(issuer public key)');
  t.ok(x.checkIssued(new X509Certificate(issuer.certPem)), 'issuer name and AKI match the issuer');
  t.equal(x.subjectAltName, `URI:${idA}, DNS:web.shop.svc, IP Address:10.1.2.3, IP Address:FD00:0:0:0:0:0:0:7`);
  t.equal(certValidity(s.certPem).spiffeId, idA);
  t.same(verifyChain(s.certPem, [issuer.certPem], anchor.certPem), { ok: true, spiffeId: idA });

  // openssl agrees: the CSR self-signature, and the chain (strict X.509, both TLS purposes).
  const dir = mkdtempSync(join(tmpdir(), 'weft-certs-ossl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = (n: string, d: string) => { writeFileSync(join(dir, n), d); return join(dir, n); };
  const csrFile = f('csr.pem', csrPem);
  const req = spawnSync('openssl', ['req', '-in', csrFile, '-verify', '-noout', '-text'], { encoding: 'utf8' });
  t.equal(req.status, 0, `openssl req -verify: ${req.stderr}`);
  t.match(req.stdout + req.stderr, /verify OK/);
  t.match(req.stdout, /NIST CURVE: P-256/);
  t.match(req.stdout, new RegExp(`URI:${idA.replace(/[/.]/g, '\\$&')}`), 'SPIFFE URI requested in extensionRequest');
  t.match(req.stdout, /ecdsa-with-SHA256/);
  const args = ['-CAfile', f('anchor.pem', anchor.certPem), '-untrusted', f('issuer.pem', issuer.certPem), '-x509_strict'];
  for (const purpose of ['sslserver', 'sslclient']) {
    const v = spawnSync('openssl', ['verify', ...args, '-purpose', purpose, f('leaf.pem', s.certPem)], { encoding: 'utf8' });
    t.equal(v.status, 0, `openssl verify -purpose ${purpose}: ${v.stdout}${v.stderr}`);
  }
  const foreign = spawnSync('openssl', ['verify', '-CAfile', f('other.pem', otherAnchor.certPem), '-untrusted', join(dir, 'issuer.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
  t.not(foreign.status, 0, 'openssl refuses the leaf under another anchor');
  const text = spawnSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
  t.match(text, /Key Usage: critical\s+Digital Signature\n/, 'EC leaf: digitalSignature only');
  t.match(text, /Basic Constraints: critical\s+CA:FALSE/);
  t.match(text, /Subject Key Identifier/);
  t.match(text, /Authority Key Identifier/);
});

t.test('signCsr accepts an RSA CSR too (older sidecars) and keeps keyEncipherment for it', async (t) => {
  const { keyPem, csrPem } = rsaCsr(idA);
  const s = signCsr(issuer, csrPem, { spiffeId: idB });
  const x = new X509Certificate(s.certPem);
  t.equal(x.publicKey.asymmetricKeyType, 'rsa');
  t.ok(x.checkPrivateKey(createPrivateKey(keyPem)));
  t.same(verifyChain(s.certPem, [issuer.certPem], anchor.certPem), { ok: true, spiffeId: idB });
  const dir = mkdtempSync(join(tmpdir(), 'weft-certs-ossl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'leaf.pem'), s.certPem);
  t.match(spawnSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout, /Digital Signature, Key Encipherment/);
});

t.test('signCsr refuses bad CSRs (table)', async (t) => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ec2 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
  const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ed = generateKeyPairSync('ed25519');
  const spki = (k: { publicKey: import('node:crypto').KeyObject }) => k.publicKey.export({ type: 'spki', format: 'der' });
  const { csrPem } = generateKeyAndCsr(idA);
  const der = derOf(csrPem);
  const flip = (i: number) => { const d = Buffer.from(der); d[i] = (d[i] ?? 0) ^ 0x01; return csrPemOf(d); };
  // Offsets inside the CertificationRequestInfo: its subject, its public key point, its requested SAN.
  const info = kids(parse(der), 'csr')[0];
  const infoLen = encode(info!).length;
  const spkiAt = der.indexOf(Buffer.from('3059301306072a8648ce3d0201', 'hex')); // P-256 SubjectPublicKeyInfo header
  const sanAt = der.indexOf(Buffer.from(idA));
  const cases: { name: string; pem: string; err: RegExp }[] = [
    { name: 'garbage', pem: 'garbage', err: /CSR: no PEM/ },
    { name: 'a certificate, not a CSR', pem: issuer.certPem, err: /CSR: no PEM CERTIFICATE REQUEST/ },
    { name: 'truncated DER', pem: csrPemOf(der.subarray(0, der.length - 10)), err: /CSR: not a DER/ },
    { name: 'trailing bytes', pem: csrPemOf(Buffer.concat([der, Buffer.from([0, 0])])), err: /CSR/ },
    { name: 'subject byte flipped', pem: flip(12), err: /does not verify/ },
    { name: 'public key point flipped', pem: flip(spkiAt + 40), err: /CSR/ },
    { name: 'requested SAN flipped', pem: flip(sanAt + 3), err: /does not verify/ },
    { name: 'signature flipped', pem: flip(infoLen + 20), err: /CSR/ },
    { name: 'signed by another key', pem: craftCsr({ spkiDer: spki(ec), signWith: ec2.privateKey }), err: /does not verify/ },
    { name: 'signature bit flipped', pem: craftCsr({ spkiDer: spki(ec), signWith: ec.privateKey, flipSig: true }), err: /does not verify/ },
    { name: 'EC key claiming an RSA signature', pem: craftCsr({ spkiDer: spki(ec), signWith: ec.privateKey, algOid: OID.sha256WithRSA }), err: /EC signature algorithm/ },
    { name: 'version 1', pem: craftCsr({ spkiDer: spki(ec), signWith: ec.privateKey, version: 1 }), err: /version/ },
    { name: 'secp256k1 curve', pem: craftCsr({ spkiDer: spki(k1), signWith: k1.privateKey }), err: /curve secp256k1/ },
    { name: 'RSA 1024', pem: craftCsr({ spkiDer: spki(rsa1024), signWith: rsa1024.privateKey, algOid: OID.sha256WithRSA }), err: /shorter than 2048/ },
    { name: 'Ed25519 key', pem: craftCsr({ spkiDer: spki(ed), signWith: ed.privateKey }), err: /ed25519 keys are not accepted/ },
  ];
  t.ok(spkiAt > 0 && sanAt > 0, 'found the SPKI and SAN in the CSR');
  t.doesNotThrow(() => signCsr(issuer, craftCsr({ spkiDer: spki(ec), signWith: ec.privateKey }), { spiffeId: idA }), 'the untampered hand-made CSR is accepted');
  for (const c of cases) t.throws(() => signCsr(issuer, c.pem, { spiffeId: idA }), c.err, c.name);
});

t.test('Node TLS mTLS between EC and RSA leaves under the RSA issuer chain (table)', async (t) => {
  const ecA = leafFor(issuer, idA);
  const ecB = leafFor(issuer, idB);
  const rsaLeaf = (() => { const r = rsaCsr(idB); return { keyPem: r.keyPem, certPem: signCsr(issuer, r.csrPem, { spiffeId: idB }).certPem }; })();
  const foreignEc = leafFor(otherIssuer, idB);
  const expiredEc = leafFor(issuer, idB, HOUR, new Date(Date.now() - 3 * HOUR));
  const both = { ok: true, serverSawClient: idB, clientSawServer: idA };
  const cases: { name: string; server: Pem; sChain: string; client: Pem; cChain: string; bundle: string; want: typeof both | RegExp | false }[] = [
    { name: 'EC server, EC client', server: ecA, sChain: issuer.certPem, client: ecB, cChain: issuer.certPem, bundle: anchor.certPem, want: both },
    { name: 'EC server, RSA client', server: ecA, sChain: issuer.certPem, client: rsaLeaf, cChain: issuer.certPem, bundle: anchor.certPem, want: both },
    { name: 'RSA server, EC client', server: { ...rsaLeaf }, sChain: issuer.certPem, client: ecA, cChain: issuer.certPem, bundle: anchor.certPem, want: { ok: true, serverSawClient: idA, clientSawServer: idB } as typeof both },
    { name: 'client leaf under another anchor refused by the server', server: ecA, sChain: issuer.certPem, client: foreignEc, cChain: otherIssuer.certPem, bundle: anchor.certPem, want: false },
    { name: 'server leaf under another anchor refused by the client', server: foreignEc, sChain: otherIssuer.certPem, client: ecA, cChain: issuer.certPem, bundle: anchor.certPem, want: /unable to verify|self-signed|issuer/i },
    { name: 'expired EC server leaf refused', server: expiredEc, sChain: issuer.certPem, client: ecA, cChain: issuer.certPem, bundle: anchor.certPem, want: /expired/i },
    { name: 'expired EC client leaf refused', server: ecA, sChain: issuer.certPem, client: expiredEc, cChain: issuer.certPem, bundle: anchor.certPem, want: false },
    { name: 'EC leaf without its issuer in the chain refused', server: ecA, sChain: '', client: ecB, cChain: issuer.certPem, bundle: anchor.certPem, want: /unable to verify|issuer/i },
  ];
  for (const c of cases) {
    const r = await handshake(c.server, c.sChain, c.client, c.cChain, c.bundle);
    if (c.want === false) t.equal(r.ok, false, c.name);
    else if (c.want instanceof RegExp) {
      t.equal(r.ok, false, c.name);
      if (!r.ok) t.match(r.error, c.want, `${c.name}: ${r.error}`);
    } else t.same(r, c.want, c.name);
  }
});

t.test('verifyChain and certValidity read EC leaves (table)', async (t) => {
  const good = leafFor(issuer, idA);
  const cases: { name: string; leaf: string; chain: string[]; bundle: string; now?: Date; ok: boolean; err?: RegExp }[] = [
    { name: 'EC leaf chains to the anchor', leaf: good.certPem, chain: [issuer.certPem], bundle: anchor.certPem, ok: true },
    { name: 'EC leaf under another anchor', leaf: leafFor(otherIssuer, idA).certPem, chain: [otherIssuer.certPem], bundle: anchor.certPem, ok: false, err: /does not chain/ },
    { name: 'EC leaf with the wrong issuer in its chain', leaf: good.certPem, chain: [otherIssuer.certPem], bundle: anchor.certPem, ok: false, err: /does not chain/ },
    { name: 'EC leaf expired', leaf: leafFor(issuer, idA, HOUR, new Date(Date.now() - 3 * HOUR)).certPem, chain: [issuer.certPem], bundle: anchor.certPem, ok: false, err: /expired/ },
    { name: 'EC leaf checked past its end', leaf: good.certPem, chain: [issuer.certPem], bundle: anchor.certPem, now: new Date(Date.now() + 25 * HOUR), ok: false, err: /expired/ },
  ];
  for (const c of cases) {
    const r = verifyChain(c.leaf, c.chain, c.bundle, c.now);
    t.equal(r.ok, c.ok, c.name);
    if (!r.ok && c.err) t.match(r.error, c.err, `${c.name}: ${r.error}`);
  }
  // A leaf whose signature bytes were altered no longer verifies.
  const d = derOf(good.certPem);
  d[d.length - 5] = (d[d.length - 5] ?? 0) ^ 0x01;
  const bad = `-----BEGIN CERTIFICATE-----\n${d.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  t.equal(verifyChain(bad, [issuer.certPem], anchor.certPem).ok, false, 'altered signature refused');
  const v = certValidity(good.certPem);
  t.equal(v.spiffeId, idA);
  t.match(v.subject, /CN=weft workload/);
  t.equal(spiffeIdOfCert(good.certPem), idA);
  const iss = issueCert(issuer, { spiffeId: idB, dnsNames: ['weft-control.weft-system.svc', 'localhost'], ipAddresses: ['127.0.0.1'] });
  t.equal(createPrivateKey(iss.keyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1', 'issueCert makes EC leaves too');
  t.same(verifyChain(iss.certPem, [issuer.certPem], anchor.certPem), { ok: true, spiffeId: idB });
  t.equal(new X509Certificate(iss.certPem).subjectAltName, `URI:${idB}, DNS:weft-control.weft-system.svc, DNS:localhost, IP Address:127.0.0.1`);
});

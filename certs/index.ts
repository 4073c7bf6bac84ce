// certs/: trust anchor and issuer, CSR signing, SPIFFE IDs, chain verification,
// rotation timing. Keys come from node's native RSA; forge builds the ASN.1.
export type { Pem, LeafOpts } from './sign.js';
export { createTrustAnchor, createIssuer, generateKeyAndCsr, signCsr, issueCert } from './sign.js';
export { spiffeId, parseSpiffeId } from './spiffe.js';
export { spiffeIdOfCert, spiffeIdOfSubjectAltName, certValidity, renewAt, splitPemBundle } from './pem.js';
export { verifyChain, type VerifyOptions } from './verify.js';
export { writeSecretFile, loadOrCreateAuthority, loadIssuerDir, ISSUER_DIR_FILES } from './authority.js';

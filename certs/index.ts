// certs/: trust anchor and issuer, CSR signing, SPIFFE IDs, chain verification,
// rotation timing. Anchor and issuer are RSA 2048 (node's native keygen, forge's pki);
// workload leaves are EC P-256, laid out with forge.asn1 and signed with node's crypto.
export type { Pem, LeafOpts } from './sign.js';
export { createTrustAnchor, createIssuer, generateKeyAndCsr, signCsr, issueCert } from './sign.js';
export { spiffeId, parseSpiffeId } from './spiffe.js';
export { spiffeIdOfCert, spiffeIdOfSubjectAltName, certValidity, renewAt, splitPemBundle } from './pem.js';
export { verifyChain, type VerifyOptions } from './verify.js';
export { writeSecretFile, writePublicFile, loadOrCreateAuthority, loadIssuerDir, ISSUER_DIR_FILES } from './authority.js';
export {
  certSha256, rotate, rotateAnchor, rotateIssuer, finishRotation, rotationStatus, readAuthorityFiles, writeAuthorityFiles, ROTATE_STEPS,
  type AuthorityFiles, type AuthorityLayout, type RotateStep, type RotateOptions, type RotateResult, type RotationPhase, type RotationStatus,
} from './rotate.js';

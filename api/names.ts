// Names every part agrees on (shared/DESIGN.md, "Names every part agrees on").
export const WEFT_VERSION = '0.1.0';

export const INJECT_NAMESPACE_LABEL = 'weft.io/inject';
export const INJECT_ANNOTATION = 'weft.io/inject';
export const INJECTED_ANNOTATION = 'weft.io/injected';

export const PORTS = {
  outbound: 7001,
  inbound: 7002,
  admin: 7090,
  controlGrpc: 7443,
  controlAdmin: 7091,
  injector: 8443,
} as const;

export const PROXY_UID = 2102;
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const LEAF_LIFETIME_MS = 24 * 3600 * 1000;
export const RENEW_FRACTION = 0.7;

/** ALPN protocols of the mesh hop. */
export const ALPN_HTTP = ['h2', 'http/1.1'];
export const ALPN_OPAQUE = 'weft-opaque';

/** Local-mode STATE directory layout (control writes, local sidecars read). */
export const STATE_FILES = {
  trustBundle: 'trust-bundle.pem', // PEM anchors (several during rotation)
  bootstrapToken: 'bootstrap-token', // mode 0600
  anchorCert: 'ca/anchor.pem',
  anchorKey: 'ca/anchor.key', // mode 0600
  issuerCert: 'ca/issuer.pem',
  issuerKey: 'ca/issuer.key', // mode 0600
  sessionKey: 'session-key', // mode 0600
  controlAddress: 'control-address', // "127.0.0.1:7443"
} as const;

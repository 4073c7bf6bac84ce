// weft_certificate_expiry_timestamp_seconds{kind="anchor"} for each anchor the
// sidecar trusts now (identity = the anchor's SHA-256): anchors come and go
// in a rotation, so series of anchors that left the bundle are removed.
// (kind="leaf" is set where the sidecar is wired, sidecar/index.ts.)
import { certSha256, certValidity, splitPemBundle } from '../../certs/index.js';
import type { IdentityHolder } from './bootstrap.js';
import type { SidecarMetrics } from '../admin/metrics.js';

export function trackAnchorExpiry(identity: IdentityHolder, metrics: SidecarMetrics): void {
  let shown = new Set<string>();
  let bundle = '';
  const update = (): void => {
    const id = identity.current;
    if (!id || id.bundlePem === bundle) return;
    bundle = id.bundlePem;
    const now = new Set<string>();
    for (const b of splitPemBundle(bundle)) {
      try {
        const sha = certSha256(b);
        metrics.certExpiry.set({ kind: 'anchor', identity: sha }, certValidity(b).notAfter.getTime() / 1000);
        now.add(sha);
      } catch {
        // an unreadable block is not trusted by TLS either
      }
    }
    for (const sha of shown) if (!now.has(sha)) metrics.certExpiry.remove({ kind: 'anchor', identity: sha });
    shown = now;
  };
  identity.on('changed', update);
  update();
}

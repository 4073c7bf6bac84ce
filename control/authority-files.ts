// Watches the issuer and trust bundle files (STATE/ca/issuer.{pem,key} and
// STATE/trust-bundle.pem locally; the mounted issuer directory in a cluster)
// and offers what changed to the LiveAuthority. Polling, not fs.watch: the
// rotate commands and the kubelet replace files by rename, which inotify
// watchers on the old inode miss; a 1 s read of three small files is cheap
// and keeps the "within 5 s" promise.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LiveAuthority } from './authority.js';

export interface AuthorityFilesOptions {
  dir: string;
  files: { issuerCert: string; issuerKey: string; trustBundle: string };
  authority: LiveAuthority;
  intervalMs?: number;
  /** Called after the authority took the change (e.g. copy the bundle to STATE for local sidecars). */
  label?: string;
}

export class AuthorityFilesWatch {
  private timer: NodeJS.Timeout | undefined;
  private last = '';

  constructor(private readonly o: AuthorityFilesOptions) {}

  start(): void {
    this.last = this.read() ?? '';
    this.timer = setInterval(() => this.poll(), this.o.intervalMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private read(): string | undefined {
    try {
      const f = this.o.files;
      return JSON.stringify([f.issuerCert, f.issuerKey, f.trustBundle].map((p) => readFileSync(join(this.o.dir, p), 'utf8')));
    } catch {
      return undefined; // a file missing for a moment (being replaced): look again next time
    }
  }

  /** One look; exposed for tests. */
  poll(): void {
    const now = this.read();
    if (now === undefined || now === this.last) return;
    const [certPem, keyPem, trustBundlePem] = JSON.parse(now) as [string, string, string];
    const err = this.o.authority.offer({ issuer: { certPem, keyPem }, trustBundlePem }, this.o.label ?? `files in ${this.o.dir}`);
    // Remember only what was taken: a half-written pair is offered again next time.
    if (err === undefined) this.last = now;
  }
}

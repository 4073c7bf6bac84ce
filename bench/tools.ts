// The outside tools the bench drives: Debian's haproxy, nginx, wrk and
// nghttp2-client (h2load). Checked on every run; installed with apt-get when
// missing (the bench says so), because the comparison is meaningless without them.
import { execFileSync, spawnSync } from 'node:child_process';

interface Tool {
  bin: string;
  pkg: string;
  version: string[];
}

const TOOLS: Tool[] = [
  { bin: 'haproxy', pkg: 'haproxy', version: ['-v'] },
  { bin: 'nginx', pkg: 'nginx', version: ['-v'] },
  { bin: 'wrk', pkg: 'wrk', version: ['--version'] },
  { bin: 'h2load', pkg: 'nghttp2-client', version: ['--version'] },
];

function which(bin: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

function firstLine(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? '?';
}

/** Ensures every tool is present; returns one line per tool ("haproxy: present, HAProxy version 2.6.12 …"). */
export function ensureTools(log: (s: string) => void): Record<string, string> {
  const missing = TOOLS.filter((t) => !which(t.bin));
  if (missing.length > 0) {
    const pkgs = missing.map((t) => t.pkg);
    log(`bench: missing ${missing.map((t) => t.bin).join(', ')}; installing Debian packages ${pkgs.join(' ')} with apt-get`);
    try {
      execFileSync('apt-get', ['update'], { stdio: 'inherit' });
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch (e) {
      throw new Error(`bench: apt-get install ${pkgs.join(' ')} failed (${(e as Error).message}); install them and rerun`);
    }
  }
  const versions: Record<string, string> = {};
  for (const t of TOOLS) {
    if (!which(t.bin)) throw new Error(`bench: ${t.bin} (Debian package ${t.pkg}) still missing after apt-get`);
    versions[t.bin] = firstLine(t.bin, t.version);
    log(`bench: ${t.bin}: ${missing.includes(t) ? 'installed now' : 'present'} — ${versions[t.bin]}`);
  }
  return versions;
}

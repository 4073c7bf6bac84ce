// SO_ORIGINAL_DST: where a connection redirected by iptables was going.
//
// iptables REDIRECT rewrites the destination of a connection to the sidecar's
// listener; conntrack keeps the original tuple, and getsockopt(SOL_IP,
// SO_ORIGINAL_DST) on the accepted socket reads it back (IPv6:
// getsockopt(SOL_IPV6, IP6T_SO_ORIGINAL_DST)). Node has no API for this
// option, so libc's getsockopt is called through koffi, loaded once on first
// use. When koffi or libc cannot be loaded (another OS, a missing prebuilt
// binary) every lookup answers undefined: the sidecar then behaves as in
// local mode (explicit proxy) instead of crashing.
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';

export interface OriginalDst {
  address: string;
  port: number;
}

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80;
const IP6T_SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;
// sa_family is in host byte order.
const LE = endianness() === 'LE';
const family16 = (b: Buffer): number => (LE ? b.readUInt16LE(0) : b.readUInt16BE(0));

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: Buffer) => number;

let getsockopt: GetSockOpt | null | undefined; // undefined: not tried yet; null: unavailable
let loadError: string | undefined;

function load(): GetSockOpt | null {
  if (getsockopt !== undefined) return getsockopt;
  getsockopt = null;
  if (process.platform !== 'linux') {
    loadError = `SO_ORIGINAL_DST needs Linux (platform is ${process.platform})`;
    return null;
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as {
      load(path: string): { func(decl: string): GetSockOpt };
    };
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)');
  } catch (e) {
    loadError = `cannot call getsockopt through koffi: ${(e as Error).message}`;
    getsockopt = null;
  }
  return getsockopt;
}

/** Why originalDst() always answers undefined here, or undefined when it works. */
export function originalDstUnavailable(): string | undefined {
  load();
  return loadError;
}

/** The file descriptor under a net.Socket or a TLSSocket wrapping one (Linux). */
function fdOf(socket: Socket): number | undefined {
  type WithHandle = { _handle?: { fd?: unknown } | null; _parent?: WithHandle | null };
  let s: WithHandle | null | undefined = socket as unknown as WithHandle;
  for (let i = 0; i < 3 && s; i++) {
    const fd = s._handle?.fd;
    if (typeof fd === 'number' && fd >= 0) return fd;
    s = s._parent;
  }
  return undefined;
}

function ipv4(b: Buffer, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function ipv6(b: Buffer, off: number): string {
  // A v4-mapped address is reported in dotted form, as Node does for sockets.
  if (b.readUInt32BE(off) === 0 && b.readUInt32BE(off + 4) === 0 && b.readUInt32BE(off + 8) === 0xffff) {
    return ipv4(b, off + 12);
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(off + 2 * i).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

function normalize(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/**
 * The pre-NAT destination of an accepted socket, or undefined when it was
 * not redirected (the original destination is the listener's own address),
 * when it cannot be read (no conntrack entry, not Linux, koffi missing), or
 * on any error. Call it on the accepted socket right away, before wrapping it
 * in TLS (a TLSSocket over a net.Socket works too). Cost: one syscall.
 */
export function originalDst(socket: Socket): OriginalDst | undefined {
  const fn = load();
  if (!fn) return undefined;
  const fd = fdOf(socket);
  if (fd === undefined) return undefined;
  const family = socket.localAddress && socket.localAddress.includes(':') && !socket.localAddress.startsWith('::ffff:') ? 6 : 4;
  const val = Buffer.alloc(28);
  const len = Buffer.alloc(4);
  let result: OriginalDst | undefined;
  try {
    if (family === 4 || socket.localAddress?.startsWith('::ffff:')) {
      len.writeUInt32LE(16);
      if (fn(fd, SOL_IP, SO_ORIGINAL_DST, val, len) === 0 && family16(val) === AF_INET) {
        result = { address: ipv4(val, 4), port: val.readUInt16BE(2) };
      }
    }
    if (!result && family === 6) {
      len.writeUInt32LE(28);
      if (fn(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, val, len) === 0 && family16(val) === AF_INET6) {
        result = { address: ipv6(val, 8), port: val.readUInt16BE(2) };
      }
    }
  } catch {
    return undefined;
  }
  if (!result) return undefined;
  if (result.port === socket.localPort && result.address === normalize(socket.localAddress)) return undefined;
  return result;
}

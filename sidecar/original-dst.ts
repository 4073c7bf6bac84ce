// SO_ORIGINAL_DST: where a connection redirected by iptables was going.
// (Owned by the interception work; this first version answers "not known".)
import type { Socket } from 'node:net';

export interface OriginalDst {
  address: string;
  port: number;
}

/** The pre-NAT destination of an accepted socket, or undefined when it was not redirected or cannot be read. */
export function originalDst(_socket: Socket): OriginalDst | undefined {
  return undefined;
}

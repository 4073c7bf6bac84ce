// Control plane at scale (filled in below).
export interface ControlScaleResult {
  sidecars: number;
  ack?: { p50Ms: number; p99Ms: number; maxMs: number };
  lines: string[];
}
export async function runControlScale(dir: string, log: (s: string) => void): Promise<ControlScaleResult> {
  void dir;
  void log;
  throw new Error('not written yet');
}

// `--control` may name several control replicas, comma-separated
// ("10.0.0.5:7443,10.0.0.6:7443"): the config stream and Certify try them in
// turn, moving to the next one after a failure, so a replica that dies only
// costs its sidecars one reconnect.

/** The addresses of a `--control` value, in order; empty items dropped. */
export function controlAddresses(control: string): string[] {
  const list = control.split(',').map((s) => s.trim()).filter(Boolean);
  return list.length ? list : [control];
}

/** The address for attempt `n` (0, 1, 2, ...): round robin from the first. */
export function controlAt(control: string, n: number): string {
  const list = controlAddresses(control);
  return list[((n % list.length) + list.length) % list.length]!;
}

// What `weft get` shows under its table besides the listed kind's own load
// errors: every file and resource that failed to load and that no `weft get`
// kind lists — a file that does not read or parse, a document that is not an
// object, an unknown kind, a Workload, an EndpointSlice — so nothing that
// failed is invisible, whatever its kind.
import { formatConfigError, type ConfigError } from '../control/index.js';

/** Kinds whose load errors `weft get routes|services|policies` shows with its table. */
const LISTED_KINDS = new Set(['HTTPRoute', 'GRPCRoute', 'Service', 'BackendLBPolicy', 'BackendTLSPolicy', 'AuthorizationPolicy']);
const RESOURCE_LABEL = /^(\S+) (?:[^/\s]+\/)?\S+$/;

export function otherLoadErrors(errors: readonly ConfigError[]): ConfigError[] {
  return errors.filter((e) => {
    if (e.source === 'compile') return false; // compile's are route and policy status
    const m = RESOURCE_LABEL.exec(e.resource);
    return !m || !LISTED_KINDS.has(m[1]!);
  });
}

export function otherLoadErrorsText(errors: readonly ConfigError[]): string {
  const others = otherLoadErrors(errors);
  if (others.length === 0) return '';
  return `\nOther files and resources that failed to load (their last good version keeps serving):\n${others.map((e) => `  ${formatConfigError(e)}`).join('\n')}\n`;
}

// Whether a pod gets the proxy: the namespace label turns injection on, the
// pod annotation (or label) overrides it either way; never twice, never into
// hostNetwork pods (their iptables rules would capture the node's traffic).
import { INJECT_ANNOTATION, INJECT_NAMESPACE_LABEL, INJECTED_ANNOTATION } from '../api/index.js';
import type { PodLike } from './pod.js';

export type Decision = { inject: true } | { inject: false; reason: string };

export function decide(pod: PodLike, namespaceLabels: Record<string, string>): Decision {
  const ann = pod.metadata?.annotations ?? {};
  const labels = pod.metadata?.labels ?? {};
  if (ann[INJECTED_ANNOTATION] !== undefined) {
    return { inject: false, reason: `already injected (annotation ${INJECTED_ANNOTATION}: "${ann[INJECTED_ANNOTATION]}")` };
  }
  if (pod.spec?.hostNetwork === true) return { inject: false, reason: 'pod uses hostNetwork (spec.hostNetwork: true)' };
  // The annotation wins over the label; the label exists because webhooks can select on labels, not annotations.
  const podSays = ann[INJECT_ANNOTATION] ?? labels[INJECT_ANNOTATION];
  if (podSays === 'disabled') return { inject: false, reason: `pod opts out (${INJECT_ANNOTATION}: disabled)` };
  if (podSays === 'enabled') return { inject: true };
  if (podSays !== undefined) {
    return { inject: false, reason: `pod ${INJECT_ANNOTATION}: "${podSays}" is neither "enabled" nor "disabled"` };
  }
  if (namespaceLabels[INJECT_NAMESPACE_LABEL] === 'enabled') return { inject: true };
  return { inject: false, reason: `neither the namespace label ${INJECT_NAMESPACE_LABEL}=enabled nor the pod annotation ${INJECT_ANNOTATION}: enabled is set` };
}

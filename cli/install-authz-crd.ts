// The AuthorizationPolicy CRD (policy.weft.io/v1alpha1, GEP-3779's fields)
// that `weft install` ships. The schema states the shape and the simple
// rules (enums, ranges, required fields); control's validate-authz.ts checks
// the same rules again with messages naming the field, and writes status.
import { AUTHZ_GROUP } from '../api/index.js';

type Obj = Record<string, unknown>;

const str = (extra: Obj = {}): Obj => ({ type: 'string', ...extra });
const labelSelector: Obj = {
  type: 'object',
  description: 'Pods of the policy\'s namespace this policy targets; {} selects every pod.',
  properties: {
    matchLabels: { type: 'object', additionalProperties: str() },
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['key', 'operator'],
        properties: { key: str(), operator: str({ enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }), values: { type: 'array', items: str() } },
      },
    },
  },
};

const condition: Obj = {
  type: 'object',
  required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'],
  properties: {
    type: str(),
    status: str({ enum: ['True', 'False', 'Unknown'] }),
    reason: str(),
    message: str({ maxLength: 32768 }),
    observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    lastTransitionTime: str({ format: 'date-time' }),
  },
};

export function authorizationPolicyCrd(labels: Record<string, string>): Obj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `authorizationpolicies.${AUTHZ_GROUP}`, labels },
    spec: {
      group: AUTHZ_GROUP,
      names: { kind: 'AuthorizationPolicy', listKind: 'AuthorizationPolicyList', plural: 'authorizationpolicies', singular: 'authorizationpolicy', shortNames: ['authzpolicy'] },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Action', type: 'string', jsonPath: '.spec.action' },
            { name: 'Accepted', type: 'string', jsonPath: '.status.ancestors[0].conditions[?(@.type=="Accepted")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'GEP-3779 AuthorizationPolicy: who may call the pods it targets, by workload identity.',
              required: ['spec'],
              properties: {
                apiVersion: str(),
                kind: str(),
                metadata: { type: 'object' },
                spec: {
                  type: 'object',
                  required: ['targetRefs', 'action'],
                  properties: {
                    targetRefs: {
                      type: 'array',
                      minItems: 1,
                      maxItems: 16,
                      items: {
                        type: 'object',
                        required: ['group', 'kind'],
                        properties: { group: str({ maxLength: 253 }), kind: str({ minLength: 1, maxLength: 63 }), name: str({ maxLength: 253 }), selector: labelSelector },
                        'x-kubernetes-validations': [
                          { rule: "self.kind != 'Pod' || has(self.selector)", message: 'targetRefs of kind Pod must have a selector' },
                          { rule: "self.kind != 'Pod' || !has(self.name)", message: 'targetRefs of kind Pod may not have a name' },
                          { rule: "self.kind == 'Pod' || !has(self.selector)", message: 'a selector is only allowed on targetRefs of kind Pod' },
                        ],
                      },
                    },
                    action: str({ enum: ['ALLOW'], description: 'ALLOW (GEP-3779 v1); a policy without rules allows nothing.' }),
                    rules: {
                      type: 'array',
                      maxItems: 64,
                      items: {
                        type: 'object',
                        properties: {
                          sources: {
                            type: 'array',
                            maxItems: 128,
                            description: 'Omitted: any source. []: none.',
                            items: {
                              type: 'object',
                              required: ['type'],
                              properties: {
                                type: str({ enum: ['ServiceAccount', 'SPIFFE'] }),
                                serviceAccount: {
                                  type: 'object',
                                  required: ['name'],
                                  properties: { namespace: str({ maxLength: 63 }), name: str({ minLength: 1, maxLength: 253, description: '"*": every service account of the namespace' }) },
                                },
                                spiffe: str({ maxLength: 2048, pattern: '^spiffe://[a-z0-9._-]+(/[^/]+)+$' }),
                              },
                              'x-kubernetes-validations': [
                                { rule: "self.type != 'ServiceAccount' || (has(self.serviceAccount) && !has(self.spiffe))", message: 'a source of type ServiceAccount must have serviceAccount and no spiffe' },
                                { rule: "self.type != 'SPIFFE' || (has(self.spiffe) && !has(self.serviceAccount))", message: 'a source of type SPIFFE must have spiffe and no serviceAccount' },
                              ],
                            },
                          },
                          networkAttributes: {
                            type: 'object',
                            properties: { ports: { type: 'array', maxItems: 64, items: { type: 'integer', minimum: 1, maximum: 65535 } } },
                          },
                        },
                      },
                    },
                  },
                },
                status: {
                  type: 'object',
                  properties: {
                    ancestors: {
                      type: 'array',
                      maxItems: 16,
                      items: {
                        type: 'object',
                        required: ['ancestorRef', 'controllerName'],
                        properties: {
                          ancestorRef: { type: 'object', properties: { group: str(), kind: str(), namespace: str(), name: str(), sectionName: str(), port: { type: 'integer' } } },
                          controllerName: str(),
                          conditions: { type: 'array', maxItems: 8, items: condition },
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

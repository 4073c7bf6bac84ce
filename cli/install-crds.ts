// CRDs `weft install` adds because weft reads them and the Gateway API v1.1
// bundle lacks them: XBackendTrafficPolicy (gateway.networking.x-k8s.io/v1alpha1,
// GEP-3388, experimental channel since v1.3). The schema is the upstream one
// (config/crd/experimental/gateway.networking.x-k8s.io_xbackendtrafficpolicies.yaml)
// without descriptions; with the experimental bundle ≥ v1.3 installed, both
// describe the same object and either may be applied.
type Obj = Record<string, unknown>;

const DURATION = { type: 'string', pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$' };
const sessionPersistence: Obj = {
  type: 'object',
  properties: {
    absoluteTimeout: DURATION,
    idleTimeout: DURATION,
    sessionName: { type: 'string', maxLength: 128 },
    type: { type: 'string', default: 'Cookie', enum: ['Cookie', 'Header'] },
    cookieConfig: { type: 'object', properties: { lifetimeType: { type: 'string', default: 'Session', enum: ['Permanent', 'Session'] } } },
  },
  'x-kubernetes-validations': [
    { message: 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent', rule: "!has(self.cookieConfig) || !has(self.cookieConfig.lifetimeType) || self.cookieConfig.lifetimeType != 'Permanent' || has(self.absoluteTimeout)" },
    { message: 'cookieConfig can only be set with type Cookie', rule: "!has(self.cookieConfig) || self.type == 'Cookie'" },
  ],
};
const ancestorStatus: Obj = {
  type: 'object',
  required: ['ancestors'],
  properties: {
    ancestors: {
      type: 'array',
      maxItems: 16,
      items: {
        type: 'object',
        required: ['ancestorRef', 'controllerName'],
        properties: {
          ancestorRef: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          controllerName: { type: 'string', maxLength: 253, minLength: 1 },
          conditions: { type: 'array', maxItems: 8, items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      },
    },
  },
};

export function xBackendTrafficPolicyCRD(labels: Record<string, string>): Obj {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: 'xbackendtrafficpolicies.gateway.networking.x-k8s.io',
      labels: { ...labels, 'gateway.networking.k8s.io/policy': 'Direct' },
      annotations: { 'gateway.networking.k8s.io/channel': 'experimental', 'api-approved.kubernetes.io': 'https://github.com/kubernetes-sigs/gateway-api/pull/3607' },
    },
    spec: {
      group: 'gateway.networking.x-k8s.io',
      names: { categories: ['gateway-api'], kind: 'XBackendTrafficPolicy', listKind: 'XBackendTrafficPolicyList', plural: 'xbackendtrafficpolicies', shortNames: ['xbtrafficpolicy'], singular: 'xbackendtrafficpolicy' },
      scope: 'Namespaced',
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [{ jsonPath: '.metadata.creationTimestamp', name: 'Age', type: 'date' }],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: {
                  type: 'object',
                  required: ['targetRefs'],
                  properties: {
                    targetRefs: {
                      type: 'array',
                      minItems: 1,
                      maxItems: 16,
                      'x-kubernetes-list-type': 'map',
                      'x-kubernetes-list-map-keys': ['group', 'kind', 'name'],
                      items: {
                        type: 'object',
                        required: ['group', 'kind', 'name'],
                        properties: {
                          group: { type: 'string', maxLength: 253, pattern: '^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$' },
                          kind: { type: 'string', maxLength: 63, minLength: 1, pattern: '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$' },
                          name: { type: 'string', maxLength: 253, minLength: 1 },
                        },
                      },
                    },
                    retryConstraint: {
                      type: 'object',
                      properties: {
                        budget: {
                          type: 'object',
                          default: { interval: '10s', percent: 20 },
                          properties: {
                            interval: { ...DURATION, default: '10s', 'x-kubernetes-validations': [{ message: 'interval cannot be greater than one hour or less than one second', rule: "!(duration(self) < duration('1s') || duration(self) > duration('1h'))" }] },
                            percent: { type: 'integer', default: 20, minimum: 0, maximum: 100 },
                          },
                        },
                        minRetryRate: {
                          type: 'object',
                          default: { count: 10, interval: '1s' },
                          properties: {
                            count: { type: 'integer', minimum: 1, maximum: 1000000 },
                            interval: { ...DURATION, 'x-kubernetes-validations': [{ message: 'interval cannot be greater than one hour', rule: "!(duration(self) == duration('0s') || duration(self) > duration('1h'))" }] },
                          },
                        },
                      },
                    },
                    sessionPersistence,
                  },
                },
                status: ancestorStatus,
              },
            },
          },
        },
      ],
    },
  };
}

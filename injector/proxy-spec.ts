// The containers and volumes the injector adds to a pod.
import { PORTS, PROXY_UID, WEFT_VERSION, STATE_FILES, SIDECAR_ENV, SIDECAR_NODE_OPTIONS } from '../api/index.js';
import type { ProxyConfig } from './config.js';
import type { Container, Volume } from './pod.js';

export const INIT_CONTAINER_NAME = 'weft-init';
export const PROXY_CONTAINER_NAME = 'weft-proxy';
export const IDENTITY_VOLUME = 'weft-identity';
/** Holds trust-bundle.pem and bootstrap-token: the same names as local mode's STATE dir. */
export const IDENTITY_DIR = '/var/run/weft/identity';
export const TRUST_ANCHOR_CONFIGMAP = 'weft-trust-anchor';
export const TRUST_ANCHOR_KEY = 'ca-bundle.pem';
export const TOKEN_AUDIENCE = 'weft';
export const DEFAULT_IMAGE = `ghcr.io/weft-mesh/weft:${WEFT_VERSION}`;
export const DEFAULT_CONTROL = `weft-control.weft-system.svc:${PORTS.controlGrpc}`;

export interface InjectOptions {
  /** Container image holding the `weft` binary (default ghcr.io/weft-mesh/weft:<version>). */
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Control's gRPC address as sidecars dial it. */
  controlAddress?: string;
  /** false: a plain container with a start-up hold, for clusters older than 1.29 (no native sidecars). */
  nativeSidecar?: boolean;
  version?: string;
  /** Token lifetime; the kubelet refreshes it at 80%. */
  tokenExpirationSeconds?: number;
}

export interface ResolvedOptions {
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  controlAddress: string;
  nativeSidecar: boolean;
  version: string;
  tokenExpirationSeconds: number;
}

export function resolveOptions(o: InjectOptions = {}): ResolvedOptions {
  return {
    image: o.image ?? DEFAULT_IMAGE,
    imagePullPolicy: o.imagePullPolicy ?? 'IfNotPresent',
    controlAddress: o.controlAddress ?? DEFAULT_CONTROL,
    nativeSidecar: o.nativeSidecar ?? true,
    version: o.version ?? WEFT_VERSION,
    tokenExpirationSeconds: o.tokenExpirationSeconds ?? 3600,
  };
}

export function initContainer(cfg: ProxyConfig, o: ResolvedOptions): Container {
  // The admin port is never intercepted: the kubelet's probes must reach the proxy itself.
  const skipIn = [String(PORTS.admin), ...cfg.skipInboundPorts];
  const args = [
    'init',
    '--proxy-uid', String(PROXY_UID),
    '--inbound-port', String(PORTS.inbound),
    '--outbound-port', String(PORTS.outbound),
    '--skip-inbound-ports', skipIn.join(','),
  ];
  if (cfg.skipOutboundPorts.length > 0) args.push('--skip-outbound-ports', cfg.skipOutboundPorts.join(','));
  return {
    name: INIT_CONTAINER_NAME,
    image: cfg.image ?? o.image,
    imagePullPolicy: o.imagePullPolicy,
    command: ['weft'],
    args,
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    // iptables needs NET_ADMIN and NET_RAW in the pod's network namespace, and root to use them.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

const fieldEnv = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });

/** The TCP ports the pod's own containers declare (the sidecar forwards inbound traffic to them). */
export function declaredPorts(containers: Container[]): number[] {
  const ports = new Set<number>();
  for (const c of containers) for (const p of c.ports ?? []) if ((p.protocol ?? 'TCP') === 'TCP' && p.containerPort) ports.add(p.containerPort);
  return [...ports].sort((a, b) => a - b);
}

export function proxyContainer(cfg: ProxyConfig, o: ResolvedOptions, appPorts: number[] = []): Container {
  const c: Container = {
    name: PROXY_CONTAINER_NAME,
    image: cfg.image ?? o.image,
    imagePullPolicy: o.imagePullPolicy,
    command: ['weft'],
    // $(VAR) is expanded by the kubelet from the env below.
    args: [
      'sidecar',
      '--control', o.controlAddress,
      '--state-dir', IDENTITY_DIR,
      '--pod-ip', '$(POD_IP)',
      '--pod-name', '$(POD_NAME)',
      '--namespace', '$(POD_NAMESPACE)',
      '--service-account', '$(SERVICE_ACCOUNT)',
      ...(appPorts.length > 0 ? ['--app-ports', appPorts.join(',')] : []),
      '--drain-timeout', `${cfg.drainTimeoutMs}ms`,

      ...(cfg.limitArgs ?? []),
    ],
    env: [
      fieldEnv('POD_NAME', 'metadata.name'),
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('POD_IP', 'status.podIP'),
      fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
      fieldEnv('NODE_NAME', 'spec.nodeName'),
      { name: 'WEFT_LOG_LEVEL', value: cfg.logLevel },
      // The sidecar's V8 and malloc bounds (api/runtime.ts), as in the image and weft up.
      { name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS },
      ...Object.entries(SIDECAR_ENV).map(([name, value]) => ({ name, value })),
      ...(cfg.failureAccrual !== undefined ? [{ name: 'WEFT_FAILURE_ACCRUAL', value: String(cfg.failureAccrual) }] : []),
      ...(cfg.maxInFlight !== undefined ? [{ name: 'WEFT_MAX_IN_FLIGHT', value: String(cfg.maxInFlight) }] : []),

      // observe: access log and tracing per pod from its annotations (an absent annotation reads as "": off).
      fieldEnv('WEFT_ACCESS_LOG', "metadata.annotations['weft.io/access-log']"),
      fieldEnv('WEFT_TRACE_COLLECTOR', "metadata.annotations['weft.io/trace-collector']"),
      fieldEnv('WEFT_TRACE_SAMPLING', "metadata.annotations['weft.io/trace-sampling']"),
    ],
    ports: [
      { name: 'weft-outbound', containerPort: PORTS.outbound, protocol: 'TCP' },
      { name: 'weft-inbound', containerPort: PORTS.inbound, protocol: 'TCP' },
      { name: 'weft-admin', containerPort: PORTS.admin, protocol: 'TCP' },
    ],
    resources: cfg.resources,
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [{ name: IDENTITY_VOLUME, mountPath: IDENTITY_DIR, readOnly: true }],
    readinessProbe: { httpGet: { path: '/ready', port: PORTS.admin }, periodSeconds: 5, failureThreshold: 3, timeoutSeconds: 1 },
    livenessProbe: { httpGet: { path: '/live', port: PORTS.admin }, periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 1, initialDelaySeconds: 5 },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (o.nativeSidecar) {
    // A restartable init container starts before the pod's own init containers and
    // stops after the app; the kubelet moves on only once the startup probe passes,
    // so every later container (init containers included) finds the mesh ready.
    c.restartPolicy = 'Always';
    c.startupProbe = { httpGet: { path: '/ready', port: PORTS.admin }, periodSeconds: 1, failureThreshold: 120, timeoutSeconds: 1 };
  } else {
    // Before 1.29: the kubelet starts containers in order and waits for each
    // postStart hook, so holding here keeps the app from starting before the proxy is ready.
    c.lifecycle = {
      postStart: {
        exec: {
          command: [
            'node', '-e',
            `const h=require('node:http');const end=Date.now()+120000;(function p(){h.get('http://127.0.0.1:${PORTS.admin}/ready',r=>{r.resume();if(r.statusCode===200)process.exit(0);else setTimeout(p,250)}).on('error',()=>{if(Date.now()>end)process.exit(1);setTimeout(p,250)})})()`,
          ],
        },
      },
    };
  }
  return c;
}

/** Seconds the kubelet must allow past the sidecar's drain (its own stop, the app's). */
export const TERMINATION_MARGIN_S = 5;

/**
 * The pod's terminationGracePeriodSeconds that fits the drain: Kubernetes'
 * default (30 s) unless the drain plus the margin needs more; a pod's own
 * longer value is kept. undefined: nothing to change.
 */
export function terminationGraceFor(current: number | undefined, drainTimeoutMs: number): number | undefined {
  const need = Math.ceil(drainTimeoutMs / 1000) + TERMINATION_MARGIN_S;
  const have = current ?? 30;
  return have >= need ? undefined : need;
}

export function identityVolume(o: ResolvedOptions): Volume {
  return {
    name: IDENTITY_VOLUME,
    projected: {
      defaultMode: 0o444,
      sources: [
        // Same file names as local mode's STATE dir, so the sidecar reads both the same way.
        { serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: o.tokenExpirationSeconds, path: STATE_FILES.bootstrapToken } },
        { configMap: { name: TRUST_ANCHOR_CONFIGMAP, items: [{ key: TRUST_ANCHOR_KEY, path: STATE_FILES.trustBundle }] } },
      ],
    },
  };
}

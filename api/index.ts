// api/: the contract between control and sidecar, and the Gateway API types.
export * from './gateway.js';
export * from './mesh.js';
export * from './metrics.js';
export * from './proto.js';
export * from './names.js';
export * from './runtime.js';

// The mesh harness the e2e tests share lives with the conformance runner that
// `weft conformance` ships (conformance/harness.ts); tests import it from here.
export * from '../../conformance/harness.js';

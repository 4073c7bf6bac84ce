// Copies the non-TypeScript files the built code reads at run time (the .proto
// contract, the dashboard page) next to the compiled JavaScript, so dist/ runs on its own.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/api', { recursive: true });
cpSync('api/weft.proto', 'dist/api/weft.proto');
// `weft conformance` runs its echo apps from dist/ too (the image has no e2e/).
mkdirSync('dist/conformance/apps', { recursive: true });
cpSync('conformance/apps/grpc-echo.proto', 'dist/conformance/apps/grpc-echo.proto');
cpSync('conformance/apps/grpc-echo-app.mjs', 'dist/conformance/apps/grpc-echo-app.mjs');
cpSync('web', 'dist/web', { recursive: true });

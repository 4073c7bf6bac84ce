// Copies the non-TypeScript files the built code reads at run time (the .proto
// contract, the dashboard page) next to the compiled JavaScript, so dist/ runs on its own.
import { cpSync, mkdirSync } from 'node:fs';
mkdirSync('dist/api', { recursive: true });
cpSync('api/weft.proto', 'dist/api/weft.proto');
cpSync('web', 'dist/web', { recursive: true });

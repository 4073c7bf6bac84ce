// smiley: answers with a smiley. Two workloads run this file: smiley-v1 and
// smiley-v2 differ only in their env (SMILEY, VERSION, and optionally
// ERROR_RATE and DELAY_MS to make a bad rollout visible in the table).
import http from 'node:http';
import { json, listen, sleep } from './mesh-http.mjs';

const SMILEY = process.env.SMILEY || '😃';
const VERSION = process.env.VERSION || 'v1';
const ERROR_RATE = Number(process.env.ERROR_RATE || 0);
const DELAY_MS = Number(process.env.DELAY_MS || 0);

listen(
  http.createServer(async (req, res) => {
    await sleep(DELAY_MS * (0.5 + Math.random()));
    if (Math.random() < ERROR_RATE) return json(res, 500, { error: 'smiley failed on purpose', version: VERSION });
    json(res, 200, { smiley: SMILEY, version: VERSION, pod: process.env.POD_NAME });
  }),
  `smiley ${VERSION}`,
);

// color: answers with a color.
import http from 'node:http';
import { json, listen, sleep } from './mesh-http.mjs';

const COLOR = process.env.COLOR || 'blue';
const DELAY_MS = Number(process.env.DELAY_MS || 0);

listen(
  http.createServer(async (req, res) => {
    await sleep(DELAY_MS * (0.5 + Math.random()));
    json(res, 200, { color: COLOR, pod: process.env.POD_NAME });
  }),
  'color',
);

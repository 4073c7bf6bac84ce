// face: the page the load generator asks for. It calls `smiley` and `color`
// through the mesh and returns both in one JSON answer. When either call
// fails, face answers 502 with what it got, so a failing backend shows up in
// face's own success rate as well as in smiley's.
import http from 'node:http';
import { json, listen, meshRequest } from './mesh-http.mjs';

const SMILEY_URL = process.env.SMILEY_URL || 'http://smiley/';
const COLOR_URL = process.env.COLOR_URL || 'http://color/';

async function call(url) {
  try {
    const r = await meshRequest(url, { timeoutMs: 1500 });
    if (r.status !== 200) return { ok: false, error: `${url} answered ${r.status}` };
    return { ok: true, value: JSON.parse(r.body) };
  } catch (e) {
    return { ok: false, error: `${url}: ${e.message}` };
  }
}

listen(
  http.createServer(async (req, res) => {
    if (req.url === '/ready') return json(res, 200, { ok: true });
    const [smiley, color] = await Promise.all([call(SMILEY_URL), call(COLOR_URL)]);
    const ok = smiley.ok && color.ok;
    json(res, ok ? 200 : 502, {
      smiley: smiley.ok ? smiley.value.smiley : '🤬',
      smileyVersion: smiley.ok ? smiley.value.version : undefined,
      color: color.ok ? color.value.color : 'grey',
      errors: [smiley, color].filter((c) => !c.ok).map((c) => c.error),
      pod: process.env.POD_NAME,
    });
  }),
  'face',
);

// The weft dashboard page: fetches /api/state from the server that served it
// every second and redraws. No dependencies, nothing loaded from elsewhere.
const REFRESH_MS = 1000;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtRate(x) {
  if (x === null || x === undefined) return '-';
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}
function fmtPct(x) {
  if (x === null || x === undefined) return '-';
  return `${(x * 100).toFixed(x >= 0.9995 ? 0 : 1)}%`;
}
function fmtLat(s) {
  if (s === null || s === undefined) return '-';
  if (s < 0.001) return `${(s * 1e6).toFixed(0)}µs`;
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)}ms`;
  return `${s.toFixed(2)}s`;
}
function srClass(x) {
  if (x === null || x === undefined) return '';
  return x >= 0.99 ? 'ok' : x >= 0.95 ? 'warn' : 'bad';
}

function trafficCells(t) {
  return [
    el('td', { class: 'n rps' }, fmtRate(t.rps)),
    el('td', { class: `n sr ${srClass(t.successRate)}` }, fmtPct(t.successRate)),
    el('td', { class: 'n p50' }, fmtLat(t.p50)),
    el('td', { class: 'n p99' }, fmtLat(t.p99)),
  ];
}

function shareCell(share) {
  if (share === null || share === undefined) return el('td', { class: 'n' }, '-');
  return el('td', { class: 'n share' }, el('span', { class: 'bar', style: `width:${Math.round(share * 60)}px` }), `${Math.round(share * 100)}%`);
}

function renderServices(state) {
  const body = $('#services tbody');
  const rows = [];
  for (const s of state.services) {
    rows.push(el('tr', { class: 'svc', 'data-service': s.name, 'data-rps': s.rps ?? 0 },
      el('td', { class: 'name' }, s.name), el('td', {}, s.ports.join(', ')), el('td', {}), ...trafficCells(s)));
    for (const r of s.routes) {
      rows.push(el('tr', { class: 'sub route', 'data-service': s.name, 'data-route': r.route },
        el('td', { class: 'name' }, 'route'), el('td', {}, r.route), shareCell(r.share), ...trafficCells(r)));
    }
    for (const b of s.backends) {
      rows.push(el('tr', { class: 'sub backend', 'data-service': s.name, 'data-backend': b.backend },
        el('td', { class: 'name' }, 'backend'), el('td', {}, b.backend), shareCell(b.share), ...trafficCells(b)));
    }
    if (s.attachedRoutes.length || s.policies.length) {
      const parts = [];
      if (s.attachedRoutes.length) parts.push(`routes: ${s.attachedRoutes.join(', ')}`);
      if (s.policies.length) parts.push(`policies: ${s.policies.join(', ')}`);
      rows.push(el('tr', { class: 'meta', 'data-service': s.name }, el('td', {}), el('td', { colSpan: 6 }, parts.join(' · '))));
    }
  }
  body.replaceChildren(...rows);
}

function renderWorkloads(state) {
  const body = $('#workloads tbody');
  body.replaceChildren(...state.workloads.map((w) =>
    el('tr', { 'data-workload': w.name },
      el('td', {}, w.name + (w.meshed ? '' : ' (no sidecar)')),
      el('td', {}, el('code', {}, w.identity)),
      el('td', {}, w.pods.map((p) => p.split(' ')[0]).join(', ')),
      el('td', { class: 'n rps' }, fmtRate(w.rps)),
      el('td', { class: `n sr ${srClass(w.successRate)}` }, fmtPct(w.successRate)),
      el('td', { class: 'n p99' }, fmtLat(w.p99)),
    )));
}

// Columns by depth: a node's column is one more than its deepest caller's.
function layout(edges) {
  const nodes = new Map();
  // A workload and a Service may share a name: nodes are keyed by kind too.
  const node = (id, kind) => {
    const key = `${kind}:${id}`;
    if (!nodes.has(key)) nodes.set(key, { key, id, kind, depth: 0, ins: [] });
    return nodes.get(key);
  };
  for (const e of edges) {
    const from = node(e.from, e.kind === 'calls' ? 'wl' : 'svc');
    node(e.to, e.kind === 'calls' ? 'svc' : 'wl').ins.push(from.key);
  }
  for (let pass = 0; pass < nodes.size; pass++) {
    let changed = false;
    for (const n of nodes.values()) {
      for (const from of n.ins) {
        const d = nodes.get(from).depth + 1;
        if (d > n.depth && d < 2 * nodes.size) {
          n.depth = d;
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  const cols = [];
  for (const n of [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    (cols[n.depth] ??= []).push(n);
  }
  return { nodes, cols: cols.filter(Boolean) };
}

function renderTopology(state) {
  const host = $('#topology');
  const { nodes, cols } = layout(state.edges);
  if (!nodes.size) {
    host.replaceChildren(el('p', { class: 'muted', style: 'padding:1rem' }, 'no traffic yet'));
    return;
  }
  const W = 170, H = 26, GX = 90, GY = 18;
  const rowsMax = Math.max(...cols.map((c) => c.length));
  const width = cols.length * (W + GX) + 20;
  const height = rowsMax * (H + GY) + 30;
  const s = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'topology' });
  cols.forEach((col, ci) => col.forEach((n, ri) => {
    n.x = 10 + ci * (W + GX);
    n.y = 15 + ri * (H + GY) + ((rowsMax - col.length) * (H + GY)) / 2;
  }));
  for (const e of state.edges) {
    const a = nodes.get(`${e.kind === 'calls' ? 'wl' : 'svc'}:${e.from}`), b = nodes.get(`${e.kind === 'calls' ? 'svc' : 'wl'}:${e.to}`);
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const bad = e.successRate !== null && e.successRate < 0.95;
    s.append(svg('path', { class: `edge${bad ? ' bad' : ''}`, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'stroke-width': Math.min(6, 1 + Math.log10(1 + (e.rps ?? 0)) * 2) }));
    s.append(svg('text', { class: 'elabel', x: mx - 20, y: (y1 + y2) / 2 - 4 }, `${fmtRate(e.rps)}/s`));
  }
  for (const n of nodes.values()) {
    const g = svg('g', { class: `node ${n.kind}`, 'data-node': n.key });
    g.append(svg('rect', { x: n.x, y: n.y, width: W, height: H, rx: 5 }));
    g.append(svg('text', { x: n.x + 8, y: n.y + 17 }, `${n.kind === 'svc' ? '◆ ' : ''}${n.id}`));
    s.append(g);
  }
  host.replaceChildren(s);
}

function render(state) {
  $('#source').textContent = state.source;
  $('#window').textContent = `rates over the last ${state.windowSeconds}s`;
  $('#updated').textContent = `updated ${state.time.slice(11, 19)}`;
  $('#updated').dataset.time = state.time;
  const errs = $('#errors');
  if (state.errors.length) {
    errs.hidden = false;
    errs.replaceChildren(el('strong', {}, 'problems'), ...state.errors.map((e) => el('div', {}, e)));
  } else errs.hidden = true;
  renderServices(state);
  renderTopology(state);
  renderWorkloads(state);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
}

async function tick() {
  try {
    const res = await fetch('/api/state', { cache: 'no-store' });
    if (!res.ok) throw new Error(`state answered ${res.status}`);
    render(await res.json());
    $('#live').classList.add('on');
  } catch (e) {
    $('#live').classList.remove('on');
    $('#source').textContent = `cannot reach the dashboard server: ${e.message}`;
  } finally {
    setTimeout(tick, REFRESH_MS);
  }
}

tick();

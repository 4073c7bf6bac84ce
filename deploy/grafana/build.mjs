// Writes weft's Grafana dashboards (deploy/grafana/*.json) from one place, so
// the four dashboards share their variables, filters and definitions of
// "success" and "latency". The JSON files are what users import; run
// `node deploy/grafana/build.mjs` after editing this file and commit both.
//
// Every query uses only metric and label names from api/metrics.ts (checked
// by e2e/dashboards-lint.test.ts) and only the labels the sidecars and control
// export themselves, plus Prometheus' own `instance`: the same dashboards work
// for `weft up` on a laptop and in a cluster, whatever the scrape config adds.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const DS = { type: 'prometheus', uid: '${datasource}' };
const W = '[$__rate_interval]';

// A request failed when the server answered 5xx, when no response came at
// all (status_code "" or "0": the connection failed), or when a gRPC call
// ended with any status but OK — the same rule as `weft stat` (cli/stat-table.ts
// isFailure). Prometheus regexes are anchored: "0?" is "" or "0".
const OK = 'status_class!="5xx",status_code!~"0?",grpc_status=~"0?"';

const sel = (...parts) => parts.filter(Boolean).join(',');
const reqRate = (f, by) => `sum${by ? ` by (${by})` : ''} (rate(weft_requests_total{${f}}${W}))`;
const success = (f, by) => `${reqRate(sel(f, OK), by)} / ${reqRate(f, by)}`;
const quantile = (q, f, by) =>
  `histogram_quantile(${q}, sum by (${['le', by].filter(Boolean).join(', ')}) (rate(weft_request_duration_seconds_bucket{${f}}${W})))`;
const hquantile = (q, metric, by) =>
  `histogram_quantile(${q}, sum by (${['le', by].filter(Boolean).join(', ')}) (rate(${metric}_bucket${W})))`;

// ---- variables ----
const dsVar = {
  name: 'datasource',
  label: 'Data source',
  type: 'datasource',
  query: 'prometheus',
  current: {},
  hide: 0,
  refresh: 1,
  regex: '',
  options: [],
  includeAll: false,
  multi: false,
};
function queryVar(name, label, query) {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    definition: query,
    query: { query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
    refresh: 2,
    includeAll: true,
    allValue: '.*',
    multi: true,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    sort: 1,
    hide: 0,
    regex: '',
  };
}
const nsVar = queryVar('namespace', 'Namespace', 'label_values(weft_requests_total, dst_namespace)');
const svcVar = queryVar(
  'service',
  'Service',
  'label_values(weft_requests_total{direction="outbound",dst_namespace=~"$namespace"}, dst_service)',
);
const wlVar = queryVar(
  'workload',
  'Workload',
  'label_values(weft_requests_total{direction="inbound",dst_namespace=~"$namespace"}, dst_workload)',
);

// ---- panels ----
function target(expr, legendFormat, refId, opts = {}) {
  return {
    datasource: DS,
    expr,
    legendFormat: legendFormat ?? '__auto',
    refId,
    range: !opts.instant,
    instant: !!opts.instant,
    ...(opts.format ? { format: opts.format } : {}),
  };
}
function timeseries(title, unit, targets, opts = {}) {
  return {
    type: 'timeseries',
    title,
    description: opts.description ?? '',
    datasource: DS,
    fieldConfig: {
      defaults: {
        unit,
        ...(unit === 'percentunit' ? { min: 0, max: 1 } : {}),
        custom: { lineWidth: 1, fillOpacity: opts.stack ? 30 : 10, showPoints: 'never', spanNulls: true, ...(opts.stack ? { stacking: { mode: opts.stack, group: 'A' } } : {}) },
      },
      overrides: [],
    },
    options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'mean'] }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: targets.map((t, i) => target(t[0], t[1], String.fromCharCode(65 + i))),
    w: opts.w ?? 12,
    h: opts.h ?? 8,
  };
}
function stat(title, unit, expr, opts = {}) {
  return {
    type: 'stat',
    title,
    description: opts.description ?? '',
    datasource: DS,
    fieldConfig: {
      defaults: {
        unit,
        decimals: opts.decimals,
        thresholds: opts.thresholds ?? { mode: 'absolute', steps: [{ color: 'green', value: null }] },
        color: { mode: 'thresholds' },
      },
      overrides: [],
    },
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' },
    targets: [target(expr, opts.legend ?? '', 'A')],
    w: opts.w ?? 6,
    h: opts.h ?? 4,
  };
}
function table(title, cols, by, opts = {}) {
  // One instant query per column, merged on the grouping labels.
  return {
    type: 'table',
    title,
    description: opts.description ?? '',
    datasource: DS,
    fieldConfig: { defaults: { custom: { align: 'auto' } }, overrides: cols.map((c, i) => ({ matcher: { id: 'byName', options: `Value #${String.fromCharCode(65 + i)}` }, properties: [{ id: 'displayName', value: c[0] }, { id: 'unit', value: c[1] }, ...(c[3] ? [{ id: 'links', value: [c[3]] }] : [])] })) },
    options: { showHeader: true, sortBy: [{ displayName: cols[0][0], desc: true }] },
    transformations: [
      { id: 'merge', options: {} },
      { id: 'organize', options: { excludeByName: { Time: true }, indexByName: {}, renameByName: Object.fromEntries(by.split(', ').map((l) => [l, l])) } },
    ],
    targets: cols.map((c, i) => target(c[2], '', String.fromCharCode(65 + i), { instant: true, format: 'table' })),
    w: opts.w ?? 24,
    h: opts.h ?? 8,
  };
}
const row = (title) => ({ type: 'row', title, collapsed: false, panels: [], w: 24, h: 1 });

function dashboard(uid, title, description, vars, panels) {
  // Lay panels out left to right, wrapping at 24 columns.
  let x = 0;
  let y = 0;
  let rowH = 0;
  let id = 1;
  const laid = panels.map((p) => {
    const { w, h, ...rest } = p;
    if (x + w > 24 || p.type === 'row') {
      y += rowH;
      x = 0;
      rowH = 0;
    }
    const out = { id: id++, ...rest, gridPos: { h, w, x, y } };
    x += w;
    rowH = Math.max(rowH, h);
    if (p.type === 'row') {
      y += h;
      x = 0;
      rowH = 0;
    }
    return out;
  });
  return {
    id: null,
    uid,
    title,
    description,
    tags: ['weft', 'service-mesh'],
    timezone: 'browser',
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '10s',
    time: { from: 'now-30m', to: 'now' },
    timepicker: {},
    fiscalYearStartMonth: 0,
    liveNow: false,
    weekStart: '',
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    links: [
      { type: 'dashboards', title: 'weft', tags: ['weft'], asDropdown: true, includeVars: true, keepTime: true, icon: 'external link', targetBlank: false, tooltip: '', url: '' },
    ],
    templating: { list: [dsVar, ...vars] },
    panels: laid,
  };
}

// ---- Mesh overview ----
const OUT_NS = 'direction="outbound",dst_namespace=~"$namespace"';
const BY_SVC = 'dst_namespace, dst_service';
const svcLink = {
  title: 'Service and routes',
  url: '/d/weft-service-routes/weft-service-and-routes?${datasource:queryparam}&var-namespace=${__data.fields.dst_namespace}&var-service=${__data.fields.dst_service}',
};
const overview = dashboard(
  'weft-mesh-overview',
  'weft / Mesh overview',
  'Golden metrics of every meshed Service, as the calling sidecars see them (direction="outbound").',
  [nsVar],
  [
    stat('Request rate', 'reqps', reqRate(OUT_NS)),
    stat('Success rate', 'percentunit', success(OUT_NS), {
      decimals: 2,
      thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'orange', value: 0.95 }, { color: 'green', value: 0.99 }] },
    }),
    stat('p99 latency', 's', quantile(0.99, OUT_NS)),
    stat('mTLS share of inbound requests', 'percentunit', `${reqRate('direction="inbound",dst_namespace=~"$namespace",tls="true"')} / ${reqRate('direction="inbound",dst_namespace=~"$namespace"')}`, {
      description: 'Requests that arrived at a sidecar over mutual TLS from another sidecar; the rest came from outside the mesh.',
    }),
    table(
      'Services',
      [
        ['RPS', 'reqps', reqRate(OUT_NS, BY_SVC), svcLink],
        ['Success', 'percentunit', success(OUT_NS, BY_SVC)],
        ['p50', 's', quantile(0.5, OUT_NS, BY_SVC)],
        ['p95', 's', quantile(0.95, OUT_NS, BY_SVC)],
        ['p99', 's', quantile(0.99, OUT_NS, BY_SVC)],
      ],
      BY_SVC,
      { description: 'One row per destination Service, like `weft stat services`. Click a row to open its Service dashboard.' },
    ),
    timeseries('Top services by request rate', 'reqps', [[`topk(10, ${reqRate(OUT_NS, BY_SVC)})`, '{{dst_namespace}}/{{dst_service}}']]),
    timeseries('Success rate by service', 'percentunit', [[success(OUT_NS, BY_SVC), '{{dst_namespace}}/{{dst_service}}']]),
    timeseries('p50 latency by service', 's', [[quantile(0.5, OUT_NS, BY_SVC), '{{dst_namespace}}/{{dst_service}}']], { w: 8 }),
    timeseries('p95 latency by service', 's', [[quantile(0.95, OUT_NS, BY_SVC), '{{dst_namespace}}/{{dst_service}}']], { w: 8 }),
    timeseries('p99 latency by service', 's', [[quantile(0.99, OUT_NS, BY_SVC), '{{dst_namespace}}/{{dst_service}}']], { w: 8 }),
    timeseries('Responses by status class', 'reqps', [[reqRate(OUT_NS, 'status_class'), '{{status_class}}']], { stack: 'normal' }),
    timeseries('Inbound requests by TLS', 'reqps', [[reqRate('direction="inbound",dst_namespace=~"$namespace"', 'tls'), 'tls={{tls}}']], { stack: 'normal' }),
  ],
);

// ---- Service and routes ----
const SVC = 'direction="outbound",dst_namespace=~"$namespace",dst_service=~"$service"';
// The resilience metrics are outbound only and carry no direction label.
const RES = 'dst_namespace=~"$namespace",dst_service=~"$service"';
const ROUTE = 'route_kind, route_namespace, route_name';
const routes = dashboard(
  'weft-service-routes',
  'weft / Service and routes',
  'One Service as its callers see it: per route, per route rule and per backend, so a traffic split is visible as it shifts.',
  [nsVar, svcVar],
  [
    stat('Request rate', 'reqps', reqRate(SVC)),
    stat('Success rate', 'percentunit', success(SVC), { decimals: 2 }),
    stat('p50 latency', 's', quantile(0.5, SVC)),
    stat('p99 latency', 's', quantile(0.99, SVC)),
    row('Routes'),
    timeseries('Requests by route', 'reqps', [[reqRate(SVC, ROUTE), '{{route_kind}} {{route_namespace}}/{{route_name}}']], {
      description: 'route_name is empty for requests that matched no route (the Service default).',
    }),
    timeseries('Requests by route rule', 'reqps', [[reqRate(SVC, `${ROUTE}, route_rule`), '{{route_name}} rule {{route_rule}}']]),
    timeseries('Success rate by route', 'percentunit', [[success(SVC, ROUTE), '{{route_namespace}}/{{route_name}}']]),
    timeseries(
      'Latency by route',
      's',
      [
        [quantile(0.5, SVC, ROUTE), 'p50 {{route_name}}'],
        [quantile(0.95, SVC, ROUTE), 'p95 {{route_name}}'],
        [quantile(0.99, SVC, ROUTE), 'p99 {{route_name}}'],
      ],
    ),
    row('Backends (traffic split)'),
    timeseries('Requests by backend', 'reqps', [[reqRate(SVC, 'backend'), '{{backend}}']], {
      stack: 'normal',
      description: 'The backend Service each rule chose, by weight: a canary or blue/green split shows here as it shifts.',
    }),
    timeseries('Share of requests by backend', 'percentunit', [[`${reqRate(SVC, 'backend')} / ignoring (backend) group_left ${reqRate(SVC)}`, '{{backend}}']], {
      stack: 'normal',
    }),
    timeseries('Success rate by backend', 'percentunit', [[success(SVC, 'backend'), '{{backend}}']]),
    timeseries('p95 latency by backend', 's', [[quantile(0.95, SVC, 'backend'), '{{backend}}']]),
    timeseries('Requests by route and backend', 'reqps', [[reqRate(SVC, 'route_name, route_rule, backend'), '{{route_name}} {{route_rule}} → {{backend}}']], {
      w: 24,
      description: 'Which rule sent traffic where: each route rule with the backends its weights chose.',
    }),
    row('Responses and endpoints'),
    timeseries('Responses by status', 'reqps', [[reqRate(SVC, 'status_code, grpc_status'), '{{status_code}} {{grpc_status}}']], {
      stack: 'normal',
      description: 'HTTP status code, and the grpc-status for gRPC calls.',
    }),
    timeseries('Requests by destination workload', 'reqps', [[reqRate(SVC, 'dst_namespace, dst_workload'), '{{dst_namespace}}/{{dst_workload}}']]),
    timeseries('Requests by caller', 'reqps', [[reqRate(SVC, 'src_namespace, src_workload'), '{{src_namespace}}/{{src_workload}}']]),
    timeseries('Requests by TLS', 'reqps', [[reqRate(SVC, 'tls'), 'tls={{tls}}']]),
    // Resilience (issue 14): retries made and not made, endpoints failure
    // accrual keeps out, requests shed. "or vector(0)": quiet is a 0, not "no data".
    row('Retries, ejections and shedding'),
    timeseries('Retries by reason', 'reqps', [[`sum by (reason) (rate(weft_retries_total{${RES}}${W})) or vector(0)`, '{{reason}}']], {
      stack: 'normal',
      description: 'Tries made again by the calling sidecars. Safe (nothing reached the app): connect_refused, connect_timeout, unreachable, tls_handshake, reset_before_request, refused_stream, goaway, app_refused. By the route\'s retry policy: status, grpc_status, timeout, reset.',
    }),
    timeseries('Retries as a share of requests', 'percentunit', [[`(sum(rate(weft_retries_total{${RES}}${W})) or vector(0)) / ${reqRate(SVC)}`, 'retries / requests']], {
      description: 'Kept below the retry budget (XBackendTrafficPolicy, default 20% plus 10 per second).',
    }),
    timeseries('Retries not made', 'reqps', [[`sum by (reason) (rate(weft_retries_skipped_total{${RES}}${W})) or vector(0)`, '{{reason}}']], {
      description: 'A retry was due but not made: budget (the retry budget was spent), body_too_large (more than 64 KiB of request body), attempts, deadline (timeouts.request), no_endpoint.',
    }),
    timeseries('Requests shed', 'reqps', [[`sum by (backend) (rate(weft_requests_shed_total{${RES}}${W})) or vector(0)`, '{{backend}}']], {
      description: 'Answered 503 weft-proxy-error: overloaded because the backend had too many requests in flight from one sidecar.',
    }),
    timeseries('Endpoints out of the balancer', 'short', [[`max by (backend, endpoint) (weft_endpoint_ejected{${RES}}) or vector(0)`, '{{backend}} {{endpoint}}']], {
      description: '1 while failure accrual keeps an endpoint out (after consecutive failures), probing it again with backoff.',
    }),
    timeseries('Ejections', 'short', [[`sum by (backend, endpoint) (increase(weft_endpoint_ejections_total{${RES}}${W})) or vector(0)`, '{{backend}} {{endpoint}}']]),
  ],
);

// ---- Workload ----
const IN_WL = 'direction="inbound",dst_namespace=~"$namespace",dst_workload=~"$workload"';
const OUT_WL = 'direction="outbound",src_namespace=~"$namespace",src_workload=~"$workload"';
// tcp_* series carry no workload label: keep those of the sidecars (targets,
// by `instance`) that record requests for this workload, either way.
const OF_WL = `and on (instance) (weft_requests_total{${IN_WL}} or weft_requests_total{${OUT_WL}})`;
const tcp = (expr) => `sum by (direction, peer) (${expr} ${OF_WL})`;
const workload = dashboard(
  'weft-workload',
  'weft / Workload',
  'One workload: requests it served (inbound, by caller) and made (outbound, by destination), and its TCP connections.',
  [nsVar, wlVar],
  [
    stat('Inbound request rate', 'reqps', reqRate(IN_WL)),
    stat('Inbound success rate', 'percentunit', success(IN_WL), { decimals: 2 }),
    stat('Outbound request rate', 'reqps', reqRate(OUT_WL)),
    stat('Outbound success rate', 'percentunit', success(OUT_WL), { decimals: 2 }),
    row('Inbound'),
    // The server's sidecar knows its callers by the identity their client
    // certificate proves (namespace and service account), not by workload.
    timeseries('Inbound requests by caller', 'reqps', [[reqRate(IN_WL, 'src_namespace, src_service_account'), '{{src_namespace}}/{{src_service_account}}']], {
      description: 'Callers by the identity their client certificate proves: namespace/service account.',
    }),
    timeseries('Inbound success rate by caller', 'percentunit', [[success(IN_WL, 'src_namespace, src_service_account'), '{{src_namespace}}/{{src_service_account}}']]),
    timeseries(
      'Inbound latency',
      's',
      [
        [quantile(0.5, IN_WL), 'p50'],
        [quantile(0.95, IN_WL), 'p95'],
        [quantile(0.99, IN_WL), 'p99'],
      ],
    ),
    timeseries('Inbound requests by caller identity', 'reqps', [[reqRate(IN_WL, 'tls, peer_identity'), 'tls={{tls}} {{peer_identity}}']], {
      description: "The caller's SPIFFE ID from its client certificate; empty for callers outside the mesh.",
    }),
    row('Outbound'),
    timeseries('Outbound requests by destination', 'reqps', [[reqRate(OUT_WL, 'dst_namespace, dst_service'), '{{dst_namespace}}/{{dst_service}}']]),
    timeseries('Outbound success rate by destination', 'percentunit', [[success(OUT_WL, 'dst_namespace, dst_service'), '{{dst_namespace}}/{{dst_service}}']]),
    timeseries(
      'Outbound latency',
      's',
      [
        [quantile(0.5, OUT_WL), 'p50'],
        [quantile(0.95, OUT_WL), 'p95'],
        [quantile(0.99, OUT_WL), 'p99'],
      ],
    ),
    timeseries('Outbound requests by destination workload', 'reqps', [[reqRate(OUT_WL, 'dst_namespace, dst_workload'), '{{dst_namespace}}/{{dst_workload}}']]),
    row('TCP'),
    timeseries('TCP connections open', 'short', [[tcp('weft_tcp_connections_open'), '{{direction}} {{peer}}']]),
    timeseries(
      'TCP connections opened and closed',
      'cps',
      [
        [tcp(`rate(weft_tcp_connections_opened_total${W})`), 'opened {{direction}} {{peer}}'],
        [tcp(`rate(weft_tcp_connections_closed_total${W})`), 'closed {{direction}} {{peer}}'],
      ],
    ),
    timeseries('TCP bytes read', 'Bps', [[tcp(`rate(weft_tcp_read_bytes_total${W})`), '{{direction}} {{peer}}']]),
    timeseries('TCP bytes written', 'Bps', [[tcp(`rate(weft_tcp_write_bytes_total${W})`), '{{direction}} {{peer}}']]),
    row('Authorization'),
    // weft_authz_decisions_total carries no workload label either: the
    // inbound sidecars (by instance) of this workload's request series.
    timeseries(
      'Authorization decisions',
      'reqps',
      [[`sum by (decision, policy) (rate(weft_authz_decisions_total${W}) and on (instance) weft_requests_total{${IN_WL}})`, '{{decision}} {{policy}}']],
      {
        stack: 'normal',
        description:
          'Inbound requests and opaque connections by outcome: allow, deny (403 / PERMISSION_DENIED / closed), audit (let through, but a policy would deny it), and the AuthorizationPolicy (ns/name), default inbound policy (default:<mode>) or probe path that decided.',
      },
    ),
    timeseries(
      'Denied and audited callers',
      'reqps',
      [[`sum by (source_identity, decision, policy) (rate(weft_authz_decisions_total{decision=~"deny|audit"}${W}) and on (instance) weft_requests_total{${IN_WL}})`, '{{decision}} {{source_identity}} ({{policy}})']],
      { description: 'Who was refused (or, in audit mode, would be): the caller\'s SPIFFE ID, empty for plaintext callers.' },
    ),
  ],
);

// ---- Control plane ----
const control = dashboard(
  'weft-control-plane',
  'weft / Control plane',
  'Control: connected sidecars, compile and push latency (a change until the last ACK), NACKs, certificates; sidecars: config age and certificate expiry.',
  [],
  [
    stat('Connected sidecars', 'short', 'sum(weft_control_connected_sidecars)'),
    stat('Sidecars connected to control', 'short', 'sum(weft_control_connected)', { description: "The sidecars' own view: 1 per sidecar whose stream to control is up." }),
    stat('Invalid resources', 'short', 'sum(weft_control_config_errors)', {
      thresholds: { mode: 'absolute', steps: [{ color: 'green', value: null }, { color: 'red', value: 1 }] },
    }),
    stat('Trust anchor expires in', 'dtdurations', 'min(weft_control_trust_anchor_expiry_timestamp_seconds) - time()'),
    row('Pushes'),
    timeseries(
      'Push latency (change → last ACK)',
      's',
      [
        [hquantile(0.5, 'weft_control_push_duration_seconds'), 'p50'],
        [hquantile(0.95, 'weft_control_push_duration_seconds'), 'p95'],
        [hquantile(0.99, 'weft_control_push_duration_seconds'), 'p99'],
      ],
    ),
    timeseries('Pushes', 'ops', [[`sum(rate(weft_control_push_duration_seconds_count${W}))`, 'pushes/s']]),
    timeseries(
      'Compile time',
      's',
      [
        [hquantile(0.5, 'weft_control_compile_duration_seconds'), 'p50'],
        [hquantile(0.99, 'weft_control_compile_duration_seconds'), 'p99'],
        [`sum(rate(weft_control_compile_duration_seconds_sum${W})) / sum(rate(weft_control_compile_duration_seconds_count${W}))`, 'mean'],
      ],
    ),
    timeseries(
      'NACKs',
      'short',
      [
        // No NACK is the normal state: show 0, not "No data" (the counter has
        // no series until a first reason is seen).
        [`sum by (reason) (increase(weft_control_nacks_total${W})) or vector(0)`, 'control: {{reason}}'],
        [`sum by (instance) (increase(weft_config_updates_nacked_total${W})) or vector(0)`, 'sidecar {{instance}}'],
      ],
      { description: 'Updates a sidecar refused (it keeps its previous config), by reason as control heard it, and per sidecar.' },
    ),
    row('Sidecars'),
    timeseries('Connected sidecars', 'short', [['sum(weft_control_connected_sidecars)', 'control'], ['sum(weft_control_connected)', 'sidecars reporting connected']]),
    timeseries('Config updates applied', 'ops', [[`sum by (instance) (rate(weft_config_updates_applied_total${W}))`, '{{instance}}']]),
    timeseries('Config age per sidecar', 's', [['time() - weft_config_last_applied_timestamp_seconds', '{{instance}}']], {
      description: 'Time since each sidecar last applied an update.',
    }),
    timeseries(
      'Sidecars per directory version',
      'short',
      [
        ['count by (version) (weft_config_version_info{resource="directory"})', 'sidecars on {{version}}'],
        ['count by (version) (weft_control_config_version_info)', 'control serves {{version}}'],
      ],
      { description: 'The service directory version each sidecar applied, next to the one control serves: after a change, every sidecar should move to it within seconds.' },
    ),
    timeseries('Protocol detection', 'ops', [[`sum by (protocol) (rate(weft_protocol_detections_total${W}))`, '{{protocol}}']]),
    row('Certificates and sources'),
    timeseries('Certificates signed', 'short', [[`sum(increase(weft_control_certificates_signed_total${W}))`, 'signed']]),
    timeseries(
      'Certificate expiry',
      'dtdurations',
      [
        ['min by (instance) (weft_certificate_expiry_timestamp_seconds) - time()', 'sidecar {{instance}}'],
        ['min(weft_control_trust_anchor_expiry_timestamp_seconds) - time()', 'trust anchor'],
        ['min(weft_control_issuer_expiry_timestamp_seconds) - time()', 'issuer'],
      ],
      { description: 'Time left before each certificate expires. Sidecars renew at 70% of their lifetime; anchors and issuers are rotated by the operator.' },
    ),
    timeseries('Source synced', 'short', [['max by (source) (weft_control_source_synced)', '{{source}}']], {
      description: '1 when a configuration source (Kubernetes API, YAML directory) has synced.',
    }),
    timeseries('Invalid resources', 'short', [['sum(weft_control_config_errors)', 'invalid resources']]),
  ],
);

const dashboards = {
  'mesh-overview.json': overview,
  'service-routes.json': routes,
  'workload.json': workload,
  'control-plane.json': control,
};
for (const [file, d] of Object.entries(dashboards)) {
  writeFileSync(join(here, file), JSON.stringify(d, null, 2) + '\n');
}

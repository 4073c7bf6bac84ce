#!/usr/bin/env bash
# weft on a real cluster (kind): install, inject, route, status, identity.
# Not run by `npm test` (no Docker or cluster on the build machines); run it
# where Docker, kind and kubectl are installed:
#
#   npm run build && e2e/kind/run.sh            # creates cluster "weft-e2e"
#   KEEP=1 e2e/kind/run.sh                      # leave the cluster up afterwards
#
# Checks, in order: the manifests apply; control and injector become ready;
# a pod in a labelled namespace gets weft-init + the weft-proxy native sidecar;
# an HTTPRoute on a Service gets Accepted/ResolvedRefs from weft.io/mesh-controller;
# traffic follows a 50/50 split; mTLS identity is the pod's service account;
# `weft check` passes.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-weft-e2e}
VERSION=$(node -p 'require("./package.json").version')
IMAGE=ghcr.io/weft-mesh/weft:${VERSION}
WEFT="node dist/cli/weft.js"
WORK=$(mktemp -d)
GATEWAY_API=https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.1.0/experimental-install.yaml

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
cleanup() {
  rm -rf "$WORK"
  if [ -z "${KEEP:-}" ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

for tool in docker kind kubectl node; do command -v "$tool" >/dev/null || fail "$tool is not installed"; done
[ -f dist/cli/weft.js ] || fail "run npm run build first"

step "cluster and image"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --image kindest/node:v1.30.0
docker build -t "$IMAGE" .
kind load docker-image --name "$CLUSTER" "$IMAGE"

step "Gateway API v1.1 CRDs (experimental channel: BackendLBPolicy, BackendTLSPolicy)"
kubectl apply --server-side -f "$GATEWAY_API"
kubectl wait --for condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io

step "weft certs + weft install"
$WEFT certs --out "$WORK/certs"
$WEFT install --certs "$WORK/certs" > "$WORK/weft.yaml"
kubectl apply -f "$WORK/weft.yaml"
kubectl -n weft-system rollout status deploy/weft-control --timeout=180s
kubectl -n weft-system rollout status deploy/weft-injector --timeout=180s

step "a meshed namespace with two versions of a service and a client"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace shop weft.io/inject=enabled --overwrite
cat <<YAML | kubectl apply -f -
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: shop }
$(for v in v1 v2; do cat <<V
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web-$v, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: web, version: $v } }
  template:
    metadata: { labels: { app: web, version: $v } }
    spec:
      serviceAccountName: web
      containers:
        - name: web
          image: registry.k8s.io/e2e-test-images/agnhost:2.47
          args: ["netexec", "--http-port=8080"]
          ports: [{ containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: web-$v, namespace: shop }
spec: { selector: { app: web, version: $v }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
V
done)
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { selector: { app: web }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web-split, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: web, port: 80 }]
  rules:
    - backendRefs:
        - { name: web-v1, port: 80, weight: 50 }
        - { name: web-v2, port: 80, weight: 50 }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: shop }
spec:
  replicas: 1
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      serviceAccountName: client
      containers:
        - name: client
          image: curlimages/curl:8.10.1
          command: ["sleep", "infinity"]
YAML
kubectl -n shop rollout status deploy/web-v1 deploy/web-v2 deploy/client --timeout=180s

step "injection"
POD=$(kubectl -n shop get pod -l app=client -o jsonpath='{.items[0].metadata.name}')
INIT=$(kubectl -n shop get pod "$POD" -o jsonpath='{.spec.initContainers[*].name}')
[ "$INIT" = "weft-init weft-proxy" ] || fail "init containers are '$INIT'"
[ "$(kubectl -n shop get pod "$POD" -o jsonpath='{.spec.initContainers[1].restartPolicy}')" = Always ] || fail "weft-proxy is not a native sidecar"
[ -n "$(kubectl -n shop get pod "$POD" -o jsonpath='{.metadata.annotations.weft\.io/injected}')" ] || fail "no weft.io/injected annotation"
kubectl -n shop get configmap weft-trust-anchor >/dev/null || fail "trust anchor ConfigMap not published into shop"

step "route status"
for _ in $(seq 30); do
  ACC=$(kubectl -n shop get httproute web-split -o jsonpath='{.status.parents[?(@.controllerName=="weft.io/mesh-controller")].conditions[?(@.type=="Accepted")].status}')
  [ "$ACC" = True ] && break; sleep 2
done
[ "$ACC" = True ] || fail "HTTPRoute not Accepted by weft.io/mesh-controller"
RES=$(kubectl -n shop get httproute web-split -o jsonpath='{.status.parents[?(@.controllerName=="weft.io/mesh-controller")].conditions[?(@.type=="ResolvedRefs")].status}')
[ "$RES" = True ] || fail "ResolvedRefs is '$RES'"

step "traffic follows the split"
OUT=$(kubectl -n shop exec "$POD" -c client -- sh -c 'for i in $(seq 200); do curl -s http://web.shop.svc/hostname; echo; done')
V1=$(grep -c '^web-v1' <<<"$OUT" || true); V2=$(grep -c '^web-v2' <<<"$OUT" || true)
echo "web-v1: $V1  web-v2: $V2"
[ "$V1" -ge 60 ] && [ "$V2" -ge 60 ] || fail "split is $V1/$V2, expected about 100/100"

step "mTLS between sidecars (inbound metrics name the client's identity)"
WEBPOD=$(kubectl -n shop get pod -l version=v1 -o jsonpath='{.items[0].metadata.name}')
kubectl -n shop port-forward "pod/$WEBPOD" 17090:7090 >/dev/null 2>&1 & PF=$!
sleep 2
curl -s http://127.0.0.1:17090/metrics | grep -q 'spiffe://cluster.local/ns/shop/sa/client' || { kill $PF; fail "no inbound metric labelled with the client's SPIFFE ID"; }
kill $PF

step "weft check"
$WEFT check --certs "$WORK/certs"

printf '\nall kind checks passed\n'

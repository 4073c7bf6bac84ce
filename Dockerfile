# weft: one image for control, the sidecar, `weft init` (iptables) and the
# injector. Build: docker build -t weft .
# Run: docker run --rm weft version

# ---- build: compile TypeScript with the dev dependencies ----------------------
FROM node:26-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything tsconfig.json includes (.dockerignore keeps node_modules and dist out).
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: production dependencies, the built code, iptables for init ------
FROM node:26-slim
# `weft init` installs the pod's NAT rules (nft backend, as in current kernels).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# The sidecar runs as uid 2102: `weft init` exempts this uid from interception.
RUN groupadd --system --gid 2102 weft \
 && useradd --system --uid 2102 --gid 2102 --home-dir /var/lib/weft --create-home weft
WORKDIR /opt/weft
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# weft up examples/faces writes its state beside the example.
COPY --from=build --chown=2102:2102 /src/examples ./examples
ENV NODE_ENV=production
# The sidecar's V8 and allocator bounds (api/runtime.ts SIDECAR_NODE_OPTIONS and
# SIDECAR_ENV; deploy/kubernetes/test checks they agree). Node 26 is the Active
# LTS, faster and smaller than Node 24 (bench/results.md, Runtimes); Node 20 now
# measures faster still but is past end of life.
ENV NODE_OPTIONS="--max-semi-space-size=1 --v8-pool-size=1" MALLOC_ARENA_MAX=2
# Node's compile cache, shipped warm: a sidecar's first start in a fresh pod
# skips compiling its modules (cli/weft.ts enables the cache for sidecar and
# control). Written as the sidecar's user, whose files these are (Node makes
# them 0600); root, as in `weft init`, reads them too.
ENV NODE_COMPILE_CACHE=/opt/weft/compile-cache
RUN mkdir /opt/weft/compile-cache && chown 2102:2102 /opt/weft/compile-cache
# `weft` on PATH (dist/cli/weft.js starts with #!/usr/bin/env node): the
# injected init and sidecar containers and the control and injector
# Deployments (deploy/kubernetes/weft.yaml) all run `weft <cmd>`.
RUN chmod 755 dist/cli/weft.js && ln -s /opt/weft/dist/cli/weft.js /usr/local/bin/weft
# The sidecar's user by default; `weft init` runs as root with NET_ADMIN
# (the injector sets runAsUser: 0 on the init container).
USER 2102:2102
RUN node dist/cli/weft.js sidecar --help > /dev/null && node dist/cli/weft.js control --help > /dev/null
ENTRYPOINT ["node", "/opt/weft/dist/cli/weft.js"]
CMD ["--help"]

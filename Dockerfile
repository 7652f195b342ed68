# livemig agents and CLI in one image (docker-compose.yml runs it as pki, dest, source and migrate).
# No build step: the TypeScript sources run through tsx, a runtime dependency (README: "Two
# containers"). The production dependencies only (`npm ci --omit=dev`: no TypeScript, eslint,
# vitest, …) are installed in a full node image, where bufferutil can compile if no prebuilt
# binary fits the platform, and copied into the slim one. Node 24 LTS here; the code is tested on
# Node 20.19+ too (package.json engines).
ARG NODE_VERSION=24
FROM node:${NODE_VERSION}-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY agent-source/package.json agent-source/
COPY agent-dest/package.json agent-dest/
COPY agent/package.json agent/
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim
# iproute2 (tc: tbf, netem) and nftables (packet loss) shape the container's link
# (docker/entrypoint.sh); ip makes VM_NIC's macvlan, and iputils' arping announces the VM's
# address where it arrives (a gratuitous ARP: clients' caches learn its new MAC at once).
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 nftables iputils-arping \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app ./
COPY . .
# Fails the build if the CLI cannot load with the production dependencies alone, and fills tsx's
# compile cache (under /tmp) so the first commands and healthchecks start faster.
RUN node bin/livemig.mjs --help > /dev/null
# The CLI's and the worker threads' bundles (scripts/build-bundles.ts): `npm ci`'s prepare script
# builds them, but the deps stage above has no sources yet (it skips them), so they are built here.
RUN node --import tsx scripts/build-bundles.ts
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["node", "bin/livemig.mjs", "--help"]

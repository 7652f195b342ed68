# livemig agents and CLI in one image (docker-compose.yml runs it as pki, dest, source and migrate).
# No build step: the TypeScript sources run through tsx, so the image is the repo plus
# node_modules, installed in a full node image (where bufferutil can compile if no prebuilt
# binary fits the platform) and copied into the slim one.
FROM node:20-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY shared/package.json shared/
COPY agent-source/package.json agent-source/
COPY agent-dest/package.json agent-dest/
COPY agent/package.json agent/
RUN npm ci --no-audit --no-fund

FROM node:20-bookworm-slim
# iproute2 (tc: tbf, netem) and nftables (packet loss) shape the container's link: docker/entrypoint.sh.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 nftables \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app ./
COPY . .
ENTRYPOINT ["/bin/sh", "/app/docker/entrypoint.sh"]
CMD ["node", "bin/livemig.mjs", "--help"]

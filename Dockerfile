# ai-sessions application image: the API gateway and the worker (see docker-compose.yml).
# The sandbox image the worker starts for sessions is a different one: runner/Dockerfile.
FROM node:20-bookworm-slim

WORKDIR /app

# Full install, not --omit=dev: the services run TypeScript directly through tsx
# and the worker bundles workflow code at start.
COPY package.json package-lock.json ./
RUN npm ci && npm cache clean --force

COPY . .

# The blob area for file transfer (BLOB_DIR), owned by `node`: a named volume mounted
# here starts with this ownership. Compose shares one volume between gateway and worker.
RUN mkdir -p /var/lib/ai-sessions/blobs && chown node:node /var/lib/ai-sessions/blobs

# Run unprivileged. The worker talks to the host's Docker engine through the mounted
# /var/run/docker.sock; `node` reaches it only through the socket's group, which
# compose adds with group_add (DOCKER_GID). Without it, Docker calls fail with EACCES.
USER node

ENV NODE_ENV=production
EXPOSE 8080
CMD ["npx", "tsx", "api/main.ts"]

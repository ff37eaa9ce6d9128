# tollgate gateway image: build with the dev toolchain, run with production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
# Defaults for `docker run`: the container configuration and the shipped policies. Compose (and
# you) mount your own over /etc/tollgate.
COPY deploy/compose/tollgate.yaml /etc/tollgate/tollgate.yaml
COPY policies /etc/tollgate/policies
# The CA is generated into /var/lib/tollgate/ca on first start unless one is mounted there.
RUN mkdir -p /var/lib/tollgate/ca /var/log/tollgate && chown -R node:node /var/lib/tollgate /var/log/tollgate
USER node
EXPOSE 3128 9090
# bin/tollgate execs node (signals from docker reach the gateway) with the inspector pointed at an
# address nothing can bind, so SIGUSR1 (log rotation) can never open a debugger.
ENTRYPOINT ["/app/bin/tollgate"]
CMD ["--config", "/etc/tollgate/tollgate.yaml"]

# syntax=docker/dockerfile:1
# Satoyama gateway image: `docker compose build gateway` (see docker-compose.yml and
# docs/deploy.md). Multi-arch by its base: amd64 servers and arm64 Raspberry Pi OS alike.

# ---- build: one wheel for Satoyama plus wheels for its dependencies
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY firmware_bridge ./firmware_bridge
COPY rules ./rules
COPY dashboards ./dashboards
RUN pip wheel --wheel-dir /wheels .

# ---- runtime: the installed package only, no sources, run as an unprivileged user
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels satoyama

# A fixed uid so the ownership of the data volume survives rebuilds; `dialout` so a
# radio receiver mapped in with `devices:` can be opened (gid 20 on Debian and Raspberry
# Pi OS alike).
RUN groupadd --system --gid 10001 satoyama \
    && useradd --system --uid 10001 --gid satoyama --groups dialout \
       --home-dir /data --no-create-home --shell /usr/sbin/nologin satoyama \
    && mkdir -p /data /config \
    && chown satoyama:satoyama /data

# A new named volume mounted here starts with this directory's owner (satoyama).
VOLUME ["/data"]
WORKDIR /data
USER satoyama

# Healthy = the configuration still loads (secrets from the environment included), the
# SQLite store on the volume opens and answers queries (read-only: the check never writes),
# and the gateway wrote its runtime report there within 15 s (it does every 5 s from its
# main loop). `satoyama run` is PID 1, so a dead process stops the container and
# `restart: unless-stopped` handles it; this catches what a live process does not show: a
# hung main loop, a missing or unreadable volume, a corrupt or locked store, a config that
# no longer loads. It does not demand recent readings: a quiet night or a farm whose nodes
# report every 30 minutes is not an unhealthy gateway (stale nodes are alerts, not health).
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 \
    CMD ["satoyama", "status", "-c", "/config/satoyama.yaml", "--check"]

# SIGTERM: sources stop, the pipeline drains the queue and commits, the store closes.
STOPSIGNAL SIGTERM
CMD ["satoyama", "run", "-c", "/config/satoyama.yaml"]

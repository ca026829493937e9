# syntax=docker/dockerfile:1
# msgflash-relay image: a wheel is built in the first stage and only that wheel (with its runtime
# dependencies, pre-built as wheels too) is installed in the final stage, so no compiler, build
# backend or dev dependency reaches production. Build: docker build -t msgflash-relay .
# (BuildKit is required for the RUN --mount below; it is the default builder of Docker 23+.)

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: the same install path as CI (pip install .), but into wheels -------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# pyproject.toml names README.md as the long description: setuptools needs it to build.
COPY pyproject.toml README.md ./
COPY service ./service
COPY consumers ./consumers

# The project wheel plus one wheel per runtime dependency, so the final stage installs offline;
# with the otel extra, so OTEL_EXPORTER_OTLP_ENDPOINT alone switches trace export on.
RUN python -m pip wheel --wheel-dir /wheels ".[otel]"

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# Global ARGs are visible to FROM lines only; re-declared to label the base image.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="msgflash-relay" \
      org.opencontainers.image.description="Relay between a RabbitMQ command bus and the MsgFlash WhatsApp API, with signed webhooks back onto the bus." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric UID/GID so Kubernetes' runAsNonRoot can verify it and volume ownership
# (fsGroup) is predictable; 10001 stays clear of the base image's system accounts.
RUN groupadd --system --gid 10001 relay \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /var/lib/msgflash-relay --shell /usr/sbin/nologin relay \
    && install --directory --owner 10001 --group 10001 --mode 0750 /var/lib/msgflash-relay

# Install from the build stage's wheels only (--no-index): nothing else is fetched, and the
# bind mount keeps the wheel files out of the image layers. The only version there is the one
# just built, so hadolint's "pin versions in pip" has nothing to pin.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links /wheels "msgflash-relay[otel]" \
    && msgflash-relay --help > /dev/null

# The default RELAY_STATE_URL (sqlite:///./relay-state.db) is relative to the working
# directory, so the working directory is the one place the relay user may write.
WORKDIR /var/lib/msgflash-relay
USER 10001:10001

# 8080: webhooks and ingress (public); 9090: probes and metrics (admin, never public).
EXPOSE 8080 9090

# Liveness only (the process serves HTTP); /readyz additionally needs the broker. urllib
# raises on any non-2xx answer or refused connection, which makes the check fail. slim has
# no curl. The sandbox (same image) overrides this check in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RELAY_ADMIN_PORT', '9090'), timeout=3)"]

ENTRYPOINT ["msgflash-relay"]
CMD ["run"]

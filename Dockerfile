# syntax=docker/dockerfile:1
# One image for every service; the command picks the service:
#   docker run IMAGE python -m services.risk        (gateway, matcher, risk, oracle, liquidator)
#   docker run IMAGE python -m libs.common.admin create-topics
# Configuration is the EXCHANGE_* environment only; the default command prints it.
# Every service serves Prometheus metrics and GET /health on EXCHANGE_METRICS_PORT (9100
# here): /health is the image's health check; the gateway also answers GET /health on 18080
# (public API) and serves its operator API on 18081.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv

WORKDIR /src
# Runtime dependencies first, pinned by the lock, so a code change does not reinstall them.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.in \
    && pip install -c requirements.lock -r /tmp/requirements.in

COPY . .
RUN pip install -c requirements.lock .
# The hot modules compiled with mypyc (libs/common/native.py) into /src/build/native; the
# compiler, mypy and setuptools stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* \
    && pip install -c requirements.lock mypy setuptools \
    && python -m libs.common.compile \
    && python -m libs.common.compile --status | grep -q "compiled (mypyc)"


FROM python:3.11-slim AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXCHANGE_MARKETS_FILE=/app/config/markets.toml \
    EXCHANGE_METRICS_HOST=0.0.0.0 \
    EXCHANGE_METRICS_PORT=9100 \
    EXCHANGE_GATEWAY_HOST=0.0.0.0

RUN groupadd --system --gid 10001 exchange \
    && useradd --system --uid 10001 --gid exchange --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin exchange

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The services run from the source tree in /app, where config/markets.toml lives. It stays
# owned by root, read-only to the service user, and is compiled once here.
COPY . /app
# The compiled modules: loaded because their stamp matches the sources copied above.
COPY --from=build /src/build/native /app/build/native
RUN python -m compileall -q /app \
    && python -m libs.common.compile --status | grep -q "compiled (mypyc)"

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 9100 18080 18081
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['EXCHANGE_METRICS_PORT'], timeout=3)"]

CMD ["python", "-m", "libs.common.settings"]

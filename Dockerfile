# The idp service image: `idp serve` as a non-root user, for PostgreSQL and Redis.
#
#   docker build -t idp:0.1.0 .
#   docker run --rm -p 8000:8000 --env-file idp.env idp:0.1.0            # serve
#   docker run --rm --env-file idp.env idp:0.1.0 migrate                  # before each rollout
#
# The base is pinned by version tag and by the digest of its multi-architecture index. Both
# stages use it, as the final stage runs the virtualenv the first one builds. To move to a newer
# build, read the digest with `docker buildx imagetools inspect python:<tag>`.
# tests/test_dockerfile.py checks this file statically.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY idp ./idp
# Dependencies come as wheels only: a missing wheel fails the build instead of pulling a
# compiler into it. Only idp itself is built here (pure Python).
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/idp \
 && /opt/idp/bin/pip install --only-binary=:all: /wheels/idp-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="idp" \
      org.opencontainers.image.description="OAuth 2.1 / OpenID Connect identity provider"
RUN groupadd --system --gid 10001 idp \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin idp
WORKDIR /app
COPY --from=build /opt/idp /opt/idp
COPY migrations ./migrations
# IDP_WORKERS: uvicorn worker processes (`idp serve --workers`). Forwarded headers are
# believed only from IDP_TRUSTED_PROXIES: idp reads X-Forwarded-For itself and uvicorn's
# proxy_headers stays off. The migrations are PostgreSQL's: this image is for PostgreSQL.
ENV PATH=/opt/idp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IDP_ENV=prod \
    IDP_WORKERS=2 \
    IDP_MIGRATIONS_DIR=/app/migrations/postgres
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["idp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

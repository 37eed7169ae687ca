# Build: docker build -t idp .   Run: docker run -e IDP_ENV=prod -e IDP_ISSUER=... idp
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY idp ./idp
RUN python -m venv /opt/idp && /opt/idp/bin/pip install --no-cache-dir .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /app idp
WORKDIR /app
COPY --from=build /opt/idp /opt/idp
COPY migrations ./migrations
ENV PATH=/opt/idp/bin:$PATH \
    IDP_ENV=prod \
    IDP_MIGRATIONS_DIR=/app/migrations/postgres \
    PYTHONDONTWRITEBYTECODE=1
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/jwks')"
ENTRYPOINT ["idp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# One image for every process type; the command picks the process (see docker-compose.yml).
# Base images follow their supported release lines (README "Images"): Node 24 LTS for npm, and
# Python 3.14, the newest that every pinned runtime dependency ships wheels for.
FROM node:24-slim AS js
WORKDIR /app
COPY package.json .npmrc ./
# pusher-js for the viewer page, which the API serves from node_modules.
RUN npm install --omit=dev --no-audit --no-fund

FROM python:3.14-slim-trixie
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY workers ./workers
COPY api ./api
COPY ingest ./ingest
COPY workflows ./workflows
COPY activities ./activities
COPY travis_logs ./travis_logs
# Runtime dependencies only: the Temporal CLI and moto of `travis-logs dev` are the `dev` extra.
RUN pip install --no-cache-dir -c constraints.txt . \
    && useradd --system --uid 10001 --home-dir /app travis-logs
COPY --from=js /app/node_modules ./node_modules
USER travis-logs
# The API answers /healthz on PORT; compose turns the check off for the other process types.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5555'), timeout=2)"]
ENTRYPOINT ["travis-logs"]

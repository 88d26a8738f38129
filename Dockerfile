# One image for every process type; the command picks the process (see docker-compose.yml).
FROM node:20-slim AS js
WORKDIR /app
COPY package.json .npmrc ./
# pusher-js for the viewer page, which the API serves from node_modules.
RUN npm install --omit=dev --no-audit --no-fund

FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY workers ./workers
COPY api ./api
COPY ingest ./ingest
COPY workflows ./workflows
COPY activities ./activities
COPY travis_logs ./travis_logs
RUN pip install --no-cache-dir -c constraints.txt .
COPY --from=js /app/node_modules ./node_modules
ENTRYPOINT ["travis-logs"]

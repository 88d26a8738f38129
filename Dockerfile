# One image for every process type; the command picks the process (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY travis_logs ./travis_logs
RUN pip install --no-cache-dir -c constraints.txt .
ENTRYPOINT ["travis-logs"]

# Image of the analytics Cloud Run service `nba-phase3-analytics-processors`.
# The same image runs the daily health check and reconciliation as Cloud Run
# jobs (command `phase3ops health` / `phase3ops reconcile --days 3 --fix`).
# Deploy it by digest: the infra program refuses a tag-only image.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PHASE3OPS_PIPELINE=/app/pipeline.yaml \
    PHASE3OPS_WAREHOUSE=bigquery

WORKDIR /app
COPY pyproject.toml constraints.txt README.md pipeline.yaml ./
COPY src ./src
COPY alerts ./alerts
RUN pip install -c constraints.txt . && useradd --uid 10001 --no-create-home app
USER app

# One worker, several threads: processors wait on I/O (BigQuery, Firestore,
# Pub/Sub), and the processor locks are what serialise conflicting runs.
CMD exec gunicorn --bind ":${PORT:-8080}" --workers 1 --threads 8 --timeout 0 \
    "phase3ops.analytics.service:create_app_from_environment()"

# MLflow tracking server and registry for the chart's optional mlflow Deployment, with the drivers it needs there:
# psycopg2 (backend store on PostgreSQL) and boto3 (artifacts proxied into the S3 bucket). Its version matches the
# client the trainer uses.
# Build from the repository root: docker build -f docker/mlflow.Dockerfile -t rpsquest/mlflow:0.1.0 .

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.44.5

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="rpsquest-mlflow" \
      org.opencontainers.image.description="MLflow tracking server for RPS Quest"
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host", "0.0.0.0", "--port", "5000"]

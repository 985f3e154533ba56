# The game server: Starlette + uvicorn, ONNX Runtime; no torch, no xgboost, no scikit-learn, no mlflow.
# Build from the repository root: docker build -f docker/server.Dockerfile -t rpsquest/server:0.1.0 .
# The base image is pinned by version; pin it by digest too (python:3.11.14-slim-bookworm@sha256:...) where your
# registry policy asks for it.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY inference/ inference/
COPY server/ server/
COPY storage/ storage/
COPY trainer/ trainer/
# the runtime dependencies only; the packages stay in /app, next to web/ which the server serves
RUN /opt/venv/bin/pip install --editable . \
    && /opt/venv/bin/python -m compileall -q /app /opt/venv

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="rpsquest-server" \
      org.opencontainers.image.description="RPS Quest game server" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 rpsquest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rpsquest
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY web/ /app/web/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RPSQUEST_DATA_DIR=/data
WORKDIR /app
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["rpsquest"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

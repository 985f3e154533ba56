# The trainer: PyTorch (CPU build), XGBoost, scikit-learn, ONNX export, the MLflow client.
# Build from the repository root: docker build -f docker/trainer.Dockerfile -t rpsquest/trainer:0.1.0 .
# Runs `rpsquest train --min-rounds N` (the chart's CronJob) or `rpsquest promote`.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
# the CPU build of torch, from PyTorch's own index: PyPI's build pulls in gigabytes of CUDA libraries
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY inference/ inference/
COPY server/ server/
COPY storage/ storage/
COPY trainer/ trainer/
RUN /opt/venv/bin/pip install --editable '.[train]' \
    && /opt/venv/bin/python -m compileall -q /app

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="rpsquest-trainer" \
      org.opencontainers.image.description="RPS Quest trainer" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid 10001 rpsquest \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin rpsquest
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY datasets/ /app/datasets/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RPSQUEST_DATA_DIR=/data \
    HOME=/tmp
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["rpsquest"]
CMD ["train"]

"""Export a trained model to the store: parity gate, golden rows, model card."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.features import FEATURE_VERSION
from inference.store import ModelStore, model_key
from trainer.datasets import Dataset
from trainer.families import INPUT_NAME, Model

PARITY_TOLERANCE = 1e-5
GOLDEN_ROWS = 8


class ParityError(Exception):
    """The ONNX export does not reproduce the native model."""


def metrics(probs: np.ndarray, data: Dataset) -> dict[str, float]:
    """Weighted top-1 accuracy and log loss of `probs` on `data`."""
    w = data.weight.astype(np.float64)
    hit = (probs.argmax(axis=1) == data.y).astype(np.float64)
    loss = -np.log(np.clip(probs[np.arange(len(data)), data.y], 1e-12, None))
    return {
        "accuracy": round(float((hit * w).sum() / w.sum()), 5),
        "log_loss": round(float((loss * w).sum() / w.sum()), 5),
        "rows": len(data),
    }


def onnx_probs(onnx_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
    return out


def publish(
    store: ModelStore,
    model: Model,
    *,
    version: str,
    config: str,
    config_version: int,
    params: dict[str, Any],
    valid: Dataset,
    window: dict[str, Any],
    extra_metrics: dict[str, Any] | None = None,
    mlflow_run_id: str | None = None,
) -> tuple[str, dict[str, Any], bytes]:
    """Check and store one model as `version`; returns (version, card, onnx bytes). Raises ParityError."""
    onnx_bytes = model.to_onnx()
    rows = valid.x[:2000]
    native = model.predict(rows)
    exported = onnx_probs(onnx_bytes, rows)
    worst = float(np.abs(native - exported).max())
    if worst > PARITY_TOLERANCE:
        raise ParityError(f"{model.family} {config}: ONNX differs from the native model by {worst:.2e}")
    golden = valid.x[:GOLDEN_ROWS]
    card: dict[str, Any] = {
        "family": model.family,
        "version": version,
        "config": config,
        "config_version": config_version,
        "feature_version": FEATURE_VERSION,
        "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "created": time.time(),
        "hyperparameters": params,
        "training": model.info,
        "metrics": {
            "valid": metrics(model.predict(valid.x), valid),
            "parity_max_abs_diff": worst,
            **(extra_metrics or {}),
        },
        "data_window": window,
        "mlflow_run_id": mlflow_run_id,
        "golden": {"inputs": golden.tolist(), "outputs": onnx_probs(onnx_bytes, golden).tolist()},
        "explain": model.explain(),
    }
    store.write(model_key(model.family, version, "model.onnx"), onnx_bytes)
    store.write(model_key(model.family, version, "card.json"), json.dumps(card, indent=1).encode())
    return version, card, onnx_bytes

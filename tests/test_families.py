"""trainer.families and trainer.publish against mlops.md: the three families, ONNX parity, early stopping, the
danger term, the parity gate and the model card.

Every model here is trained on a small simulated data set with small parameters (well under a second per fit);
the trained models and their ONNX exports are shared by the module.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.features import FEATURE_VERSION, N_FEATURES
from inference.pool import load_model
from inference.store import LocalStore
from trainer.coldstart import simulated_histories
from trainer.datasets import Dataset, examples, split_groups
from trainer.families import FEATURE_NAMES, Model, fit, hunter_of
from trainer.publish import PARITY_TOLERANCE, ParityError, onnx_probs, publish

FAMILIES = ("mlp", "xgboost", "logistic")
# Small versions of config.toml's configurations (fast fits on ~2,500 rows).
PARAMS: dict[str, dict[str, Any]] = {
    "mlp": {"hidden": [32], "dropout": 0.1, "weight_decay": 1e-4, "learning_rate": 0.003, "batch_size": 64,
            "max_epochs": 30, "patience": 3, "danger": 0.0},
    "xgboost": {"n_estimators": 80, "max_depth": 3, "learning_rate": 0.3, "subsample": 0.8, "colsample_bytree": 0.8,
                "min_child_weight": 5.0, "reg_lambda": 1.0, "early_stopping_rounds": 5, "danger": 0.0},
    "logistic": {"l2": 1e-4, "learning_rate": 0.02, "batch_size": 128, "max_epochs": 30, "patience": 3,
                 "danger": 0.0},
}  # fmt: skip
# For the danger comparisons: a fixed short run, selected on the training rows themselves, so that early
# stopping picks by the same criterion with and without the danger term.
DANGER_PARAMS: dict[str, dict[str, Any]] = {
    "mlp": {**PARAMS["mlp"], "max_epochs": 8, "patience": 8},
    "xgboost": {**PARAMS["xgboost"], "n_estimators": 20, "early_stopping_rounds": 20},
    "logistic": {**PARAMS["logistic"], "max_epochs": 8, "patience": 8},
}
CHANCE = 0.36
# torch.onnx.export (dynamo) warns about a deprecated internal; not ours
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


@dataclass
class Data:
    train: Dataset
    valid: Dataset  # early stopping
    test: Dataset  # never seen while training


@pytest.fixture(scope="module")
def data() -> Data:
    full = examples(simulated_histories(300, 1))
    rest_mask, test_mask = split_groups(full.group, 0.2, 0)
    rest, test = full.take(np.where(rest_mask)[0]), full.take(np.where(test_mask)[0])
    train_mask, valid_mask = split_groups(rest.group, 0.2, 1)
    return Data(rest.take(np.where(train_mask)[0]), rest.take(np.where(valid_mask)[0]), test)


@pytest.fixture(scope="module")
def models(data: Data) -> dict[str, Model]:
    return {family: fit(family, PARAMS[family], data.train, data.valid, 0) for family in FAMILIES}


@pytest.fixture(scope="module")
def onnx_models(models: dict[str, Model]) -> dict[str, bytes]:
    return {family: model.to_onnx() for family, model in models.items()}


def _hunter_mass(model: Model, data: Dataset) -> float:
    probs = model.predict(data.x)
    return float(probs[np.arange(len(data)), hunter_of(data.y)].mean())


def _weighted_logloss(probs: np.ndarray, data: Dataset) -> float:
    w = data.weight.astype(np.float64)
    loss = -np.log(probs[np.arange(len(data)), data.y].astype(np.float64))
    return float((loss * w).sum() / w.sum())


# -- the families ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_export_agrees_with_native_model(
    family: str, models: dict[str, Model], onnx_models: dict[str, bytes], data: Data
) -> None:
    native = models[family].predict(data.test.x)
    exported = onnx_probs(onnx_models[family], data.test.x)
    assert exported.shape == native.shape == (len(data.test), 3)
    assert float(np.abs(native - exported).max()) <= PARITY_TOLERANCE
    # any batch size (the export has a dynamic batch dimension), including a single row
    assert np.allclose(onnx_probs(onnx_models[family], data.test.x[:1]), native[:1], atol=PARITY_TOLERANCE)


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_are_probability_distributions(
    family: str, models: dict[str, Model], onnx_models: dict[str, bytes], data: Data
) -> None:
    for probs in (models[family].predict(data.test.x), onnx_probs(onnx_models[family], data.test.x)):
        assert probs.shape == (len(data.test), 3)
        assert probs.dtype == np.float32
        assert np.all(probs >= 0.0) and np.all(probs <= 1.0)
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert float(probs.std(axis=0).max()) > 1e-3, "the model ignores its input"


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_trains_the_same_model(family: str, models: dict[str, Model], data: Data) -> None:
    again = fit(family, PARAMS[family], data.train, data.valid, 0)
    assert np.array_equal(again.predict(data.test.x), models[family].predict(data.test.x))
    assert again.info == models[family].info


@pytest.mark.parametrize("family", ["mlp", "xgboost"])
def test_another_seed_trains_another_model(family: str, models: dict[str, Model], data: Data) -> None:
    if family == "xgboost":
        assert PARAMS[family]["subsample"] < 1.0  # row sampling is what the seed drives
    other = fit(family, PARAMS[family], data.train, data.valid, 1)
    assert float(np.abs(other.predict(data.test.x) - models[family].predict(data.test.x)).max()) > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_accuracy_on_unseen_games_is_above_chance(family: str, models: dict[str, Model], data: Data) -> None:
    assert not set(data.test.group) & (set(data.train.group) | set(data.valid.group))
    probs = models[family].predict(data.test.x)
    accuracy = float((probs.argmax(axis=1) == data.test.y).mean())
    assert accuracy > CHANCE, f"{family}: {accuracy:.3f}"
    assert _weighted_logloss(probs, data.test) < math.log(3)


@pytest.mark.parametrize("family", ["mlp", "logistic"])
def test_torch_early_stopping_restores_the_best_epoch(family: str, models: dict[str, Model], data: Data) -> None:
    info = models[family].info
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= PARAMS[family]["max_epochs"]
    if family == "mlp":
        # these parameters over-fit quickly: training ran past its best epoch, so restoring it matters
        assert info["best_epoch"] < info["epochs_run"]
        assert info["epochs_run"] - info["best_epoch"] == PARAMS[family]["patience"]
    own = _weighted_logloss(models[family].predict(data.valid.x), data.valid)
    assert own == pytest.approx(info["valid_logloss"], abs=1e-5)


def test_xgboost_early_stopping_keeps_the_best_trees(models: dict[str, Model], data: Data) -> None:
    model = models["xgboost"]
    best = model.info["best_iteration"]
    booster = model.booster  # type: ignore[attr-defined]
    assert booster.num_boosted_rounds() == best + 1
    assert best + 1 < PARAMS["xgboost"]["n_estimators"]  # it did stop early
    own = _weighted_logloss(model.predict(data.valid.x), data.valid)
    assert own == pytest.approx(model.info["valid_logloss"], abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_danger_term_changes_the_model(family: str, data: Data) -> None:
    plain = fit(family, {**DANGER_PARAMS[family], "danger": 0.0}, data.train, data.train, 0)
    some = fit(family, {**DANGER_PARAMS[family], "danger": 0.5}, data.train, data.train, 0)
    strong = fit(family, {**DANGER_PARAMS[family], "danger": 3.0}, data.train, data.train, 0)
    assert float(np.abs(plain.predict(data.test.x) - some.predict(data.test.x)).max()) > 1e-3
    # the danger term penalises the probability of the move that beats the true move
    assert _hunter_mass(strong, data.train) < _hunter_mass(plain, data.train) - 0.005
    assert _hunter_mass(some, data.train) < _hunter_mass(plain, data.train)


@pytest.mark.parametrize("family", FAMILIES)
def test_explain_names_features(family: str, models: dict[str, Model]) -> None:
    explained = models[family].explain()
    assert isinstance(explained["kind"], str)
    if family == "logistic":
        coefficients = explained["coefficients"]
        assert list(coefficients) == list(FEATURE_NAMES)
        assert all(len(c) == 3 for c in coefficients.values())
        assert any(abs(v) > 1e-3 for c in coefficients.values() for v in c)
        return
    importance = explained["importance"]
    assert importance and set(importance) <= set(FEATURE_NAMES)
    assert all(v >= 0 for v in importance.values())
    assert sum(importance.values()) == pytest.approx(1.0, abs=1e-3)
    if family == "mlp":
        assert len(importance) == N_FEATURES


def test_unknown_family_is_refused(data: Data) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        fit("forest", {}, data.train, data.valid, 0)


# -- the parity gate and the model card ----------------------------------------------------------


@dataclass
class Exported:
    """A real model whose export is computed once; `shift` is added to its native predictions."""

    inner: Model
    onnx: bytes
    shift: float = 0.0
    family: str = field(init=False)
    info: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.family = self.inner.family
        self.info = self.inner.info

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.inner.predict(x) + np.float32(self.shift)
        return out

    def to_onnx(self) -> bytes:
        return self.onnx

    def explain(self) -> dict[str, Any]:
        return self.inner.explain()


WINDOW = {"from": 1.0, "to": 2.0, "games": 300, "rows": 1234, "sources": {"sim": 300}}


def _publish(
    store: LocalStore, model: Model, data: Data, family: str, version: str = "v1"
) -> tuple[str, dict[str, Any], bytes]:
    return publish(
        store, model, version=version, config="Production", config_version=7, params=PARAMS[family], valid=data.valid,
        window=WINDOW, extra_metrics={"recorded_holdout": {"accuracy": 0.5}}, mlflow_run_id="run-1",
    )  # fmt: skip


@pytest.mark.parametrize("shift", [1e-3, 3 * PARITY_TOLERANCE])
def test_parity_gate_refuses_a_model_whose_onnx_differs(
    shift: float, tmp_path: Path, models: dict[str, Model], onnx_models: dict[str, bytes], data: Data
) -> None:
    store = LocalStore(tmp_path / "store")
    bad = Exported(models["xgboost"], onnx_models["xgboost"], shift)
    with pytest.raises(ParityError, match="xgboost"):
        _publish(store, bad, data, "xgboost")
    assert store.keys("") == []
    assert not (tmp_path / "store").exists() or not any(p.is_file() for p in (tmp_path / "store").rglob("*"))


def test_parity_gate_lets_a_difference_within_tolerance_through(
    tmp_path: Path, models: dict[str, Model], onnx_models: dict[str, bytes], data: Data
) -> None:
    store = LocalStore(tmp_path / "store")
    close = Exported(models["xgboost"], onnx_models["xgboost"], PARITY_TOLERANCE / 4)
    version, card, _ = _publish(store, close, data, "xgboost")
    assert version == "v1"
    assert card["metrics"]["parity_max_abs_diff"] <= PARITY_TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_publish_writes_model_and_card(
    family: str, tmp_path: Path, models: dict[str, Model], onnx_models: dict[str, bytes], data: Data
) -> None:
    store = LocalStore(tmp_path / "store")
    model = Exported(models[family], onnx_models[family])
    version, card, onnx_bytes = _publish(store, model, data, family)
    assert version == "v1"
    assert store.keys("") == [f"models/{family}/v1/card.json", f"models/{family}/v1/model.onnx"]
    stored = store.read(f"models/{family}/v1/model.onnx")
    assert stored == onnx_bytes == onnx_models[family]
    raw_card = store.read(f"models/{family}/v1/card.json")
    assert raw_card is not None
    stored_card = json.loads(raw_card)
    assert stored_card == json.loads(json.dumps(card))

    assert stored_card["family"] == family and stored_card["version"] == "v1"
    assert stored_card["config"] == "Production" and stored_card["config_version"] == 7
    assert stored_card["feature_version"] == FEATURE_VERSION == 1
    assert stored_card["sha256"] == hashlib.sha256(stored).hexdigest()
    assert stored_card["hyperparameters"] == PARAMS[family]
    assert stored_card["data_window"] == WINDOW
    assert stored_card["mlflow_run_id"] == "run-1"
    assert stored_card["training"] == models[family].info

    metrics = stored_card["metrics"]
    probs = models[family].predict(data.valid.x)
    assert metrics["valid"]["rows"] == len(data.valid)
    assert metrics["valid"]["accuracy"] == pytest.approx(float((probs.argmax(1) == data.valid.y).mean()), abs=1e-4)
    assert metrics["valid"]["log_loss"] == pytest.approx(_weighted_logloss(probs, data.valid), abs=1e-4)
    assert metrics["recorded_holdout"] == {"accuracy": 0.5}
    assert 0.0 <= metrics["parity_max_abs_diff"] <= PARITY_TOLERANCE

    golden_in = np.asarray(stored_card["golden"]["inputs"], dtype=np.float32)
    golden_out = np.asarray(stored_card["golden"]["outputs"], dtype=np.float32)
    assert golden_in.shape == (8, N_FEATURES) and golden_out.shape == (8, 3)
    assert np.array_equal(golden_in, data.valid.x[:8])
    assert float(np.abs(onnx_probs(stored, golden_in) - golden_out).max()) <= 1e-6
    assert float(np.abs(models[family].predict(golden_in) - golden_out).max()) <= PARITY_TOLERANCE

    explained = stored_card["explain"]
    by_feature = explained["coefficients"] if family == "logistic" else explained["importance"]
    assert by_feature and set(by_feature) <= set(FEATURE_NAMES)

    # what the trainer publishes, the server accepts
    assert load_model(store, family, "v1").version == "v1"

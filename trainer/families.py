"""The three model families: mlp and logistic (PyTorch), xgboost; training, native prediction, ONNX export.

Every family is trained with the danger term of mlops.md: the loss adds
lambda * mean(p[hunter(y)]), the probability given to the move that beats the true
move (the one that makes the bot lose). For mlp and logistic it is part of the
autograd loss; for xgboost it is part of a custom objective whose gradient is exact
(d p_h / d z_k = p_h (1[k = h] - p_k)) and whose Hessian keeps XGBoost's softmax
diagonal 2 p (1 - p), a positive bound that keeps Newton steps stable.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engine.features import N_FEATURES
from trainer.datasets import Dataset

INPUT_NAME = "features"
OUTPUT_NAME = "probs"
FEATURE_NAMES: tuple[str, ...] = (
    *(f"player_{m}_{k}ago" for k in (1, 2, 3) for m in ("rock", "paper", "scissors")),
    *(f"bot_{m}_{k}ago" for k in (1, 2, 3) for m in ("rock", "paper", "scissors")),
    *(f"outcome_{o}_{k}ago" for k in (1, 2, 3) for o in ("win", "lose", "draw")),
    "value_rock", "value_paper", "value_scissors",
    *(f"value_{m}_{k}ago" for k in (1, 2, 3) for m in ("rock", "paper", "scissors")),
    "share_rock", "share_paper", "share_scissors",
    "share_high", "share_beats_high", "share_beats_that",
    "score_diff", "player_needs", "bot_needs", "round", "reserved",
)  # fmt: skip
assert len(FEATURE_NAMES) == N_FEATURES


class Model(Protocol):
    """A trained model of any family."""

    family: str
    info: dict[str, Any]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Native probabilities (n, 3) for float32 inputs (n, 50)."""
        ...

    def to_onnx(self) -> bytes:
        """A single-file ONNX model: input `features` (n, 50) float32, output `probs` (n, 3) float32."""
        ...

    def explain(self) -> dict[str, Any]:
        """What explains the model: feature importances or coefficients, by feature name."""
        ...


def hunter_of(y: np.ndarray) -> np.ndarray:
    return (y + 1) % 3


# -- PyTorch families ------------------------------------------------------------------------


@dataclass
class TorchModel:
    family: str
    net: Any
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        self.net.eval()
        with torch.no_grad():
            out: np.ndarray = self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        return out

    def to_onnx(self) -> bytes:
        import torch

        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        self.net.eval()
        with warnings.catch_warnings():  # the exporter's own use of a deprecated torch API
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                self.net,
                (torch.zeros(2, N_FEATURES),),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: "batch"},),
                external_data=False,
                verbose=False,
            )
        assert program is not None
        buffer = io.BytesIO()
        program.save(buffer, external_data=False)  # type: ignore[arg-type]
        return buffer.getvalue()

    def explain(self) -> dict[str, Any]:
        first = self.net.body[0].weight.detach().numpy() * self.net.scale.numpy()[None, :]
        if self.family == "logistic":
            return {
                "kind": "coefficients (per standardised feature, logits of rock, paper, scissors)",
                "coefficients": {n: [round(float(v), 5) for v in first[:, i]] for i, n in enumerate(FEATURE_NAMES)},
            }
        importance = np.abs(first).sum(axis=0)
        importance = importance / importance.sum()
        return {
            "kind": "first-layer weight mass per standardised feature",
            "importance": {n: round(float(v), 5) for n, v in zip(FEATURE_NAMES, importance, strict=True)},
        }


def _torch_net(mean: np.ndarray, std: np.ndarray, hidden: list[int], dropout: float) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        mean: torch.Tensor
        scale: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean.astype(np.float32)))
            self.register_buffer("scale", torch.from_numpy((1.0 / std).astype(np.float32)))
            layers: list[nn.Module] = []
            width = N_FEATURES
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
                width = h
            layers.append(nn.Linear(width, 3))
            self.body = nn.Sequential(*layers)

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.body((x - self.mean) * self.scale)
            return out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.logits(x), dim=-1)

    return Net()


def fit_torch(family: str, params: dict[str, Any], train: Dataset, valid: Dataset, seed: int) -> TorchModel:
    """mlp (hidden layers) or logistic (none): Adam, weighted cross-entropy + danger, early stopping."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    hidden = list(params.get("hidden", [])) if family == "mlp" else []
    mean = train.x.mean(axis=0)
    std = train.x.std(axis=0)
    std[std < 1e-6] = 1.0
    net = _torch_net(mean, std, hidden, float(params.get("dropout", 0.0)))
    decay = float(params.get("weight_decay", params.get("l2", 0.0)))
    optimiser = torch.optim.AdamW(net.parameters(), lr=float(params["learning_rate"]), weight_decay=decay)
    danger = float(params.get("danger", 0.0))
    tensors = [torch.from_numpy(a) for a in (train.x, train.y, train.weight, hunter_of(train.y))]
    vx, vy, vw = (torch.from_numpy(a) for a in (valid.x, valid.y, valid.weight))
    generator = torch.Generator().manual_seed(seed)
    batch = int(params["batch_size"])
    best_loss, best_state, best_epoch, stale = float("inf"), copy.deepcopy(net.state_dict()), 0, 0
    epoch = 0
    for epoch in range(1, int(params["max_epochs"]) + 1):
        net.train()
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            x, y, w, h = (t[idx] for t in tensors)
            logits = net.logits(x)
            loss = F.cross_entropy(logits, y, reduction="none")
            if danger:
                loss = loss + danger * torch.softmax(logits, dim=-1).gather(1, h[:, None]).squeeze(1)
            loss = (loss * w).sum() / w.sum()
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        net.eval()
        with torch.no_grad():
            valid_loss = float((F.cross_entropy(net.logits(vx), vy, reduction="none") * vw).sum() / vw.sum())
        if valid_loss < best_loss - 1e-5:
            best_loss, best_state, best_epoch, stale = valid_loss, copy.deepcopy(net.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= int(params["patience"]):
                break
    net.load_state_dict(best_state)
    net.eval()
    return TorchModel(family, net, {"best_epoch": best_epoch, "epochs_run": epoch, "valid_logloss": best_loss})


# -- XGBoost -----------------------------------------------------------------------------------


@dataclass
class XGBoostModel:
    booster: Any
    family: str = "xgboost"
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        out: np.ndarray = self.booster.predict(xgb.DMatrix(np.asarray(x, dtype=np.float32)))
        return out.reshape(-1, 3)

    def to_onnx(self) -> bytes:
        import onnx
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        model = convert_xgboost(self.booster, initial_types=[(INPUT_NAME, FloatTensorType([None, N_FEATURES]))])
        graph = model.graph
        probs = next(o for o in graph.output if o.name != "label")
        for node in graph.node:
            node.output[:] = [OUTPUT_NAME if o == probs.name else o for o in node.output]
        keep = [o for o in graph.output if o.name == probs.name]
        keep[0].name = OUTPUT_NAME
        del graph.output[:]
        graph.output.extend(keep)
        onnx.checker.check_model(model)
        return bytes(model.SerializeToString())

    def explain(self) -> dict[str, Any]:
        gains = self.booster.get_score(importance_type="gain")
        total = sum(gains.values()) or 1.0
        return {
            "kind": "total gain share per feature",
            "importance": {FEATURE_NAMES[int(k[1:])]: round(v / total, 5) for k, v in gains.items()},
        }


def fit_xgboost(params: dict[str, Any], train: Dataset, valid: Dataset, seed: int) -> XGBoostModel:
    """multi:softprob with the danger term in a custom objective; early stopping keeps the best trees."""
    import xgboost as xgb

    danger = float(params.get("danger", 0.0))
    booster_params = {
        "objective": "multi:softprob", "num_class": 3, "eval_metric": "mlogloss", "seed": seed, "nthread": 2,
        "max_depth": int(params["max_depth"]), "eta": float(params["learning_rate"]),
        "subsample": float(params["subsample"]), "colsample_bytree": float(params["colsample_bytree"]),
        "min_child_weight": float(params["min_child_weight"]), "lambda": float(params["reg_lambda"]),
        "tree_method": "hist",
    }  # fmt: skip
    dtrain = xgb.DMatrix(train.x, label=train.y, weight=train.weight)
    dvalid = xgb.DMatrix(valid.x, label=valid.y, weight=valid.weight)
    hunters = hunter_of(train.y)
    onehot, hunter_onehot = np.eye(3)[train.y], np.eye(3)[hunters]

    def objective(margin: np.ndarray, data: Any) -> tuple[np.ndarray, np.ndarray]:
        z = margin.reshape(-1, 3)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = p - onehot
        if danger:
            p_h = p[np.arange(len(p)), hunters][:, None]
            grad = grad + danger * p_h * (hunter_onehot - p)
        hess = np.maximum(2.0 * p * (1.0 - p), 1e-6)
        w = data.get_weight()[:, None]
        return grad * w, hess * w

    booster = xgb.train(
        booster_params, dtrain, num_boost_round=int(params["n_estimators"]), evals=[(dvalid, "valid")],
        obj=objective, early_stopping_rounds=int(params["early_stopping_rounds"]), verbose_eval=False,
    )  # fmt: skip
    best = int(booster.best_iteration)
    trimmed = booster[: best + 1]
    return XGBoostModel(trimmed, info={"best_iteration": best, "valid_logloss": float(booster.best_score)})


def fit(family: str, params: dict[str, Any], train: Dataset, valid: Dataset, seed: int) -> Model:
    """Train one model of `family` with `params` on `train`, stopping early on `valid`."""
    if family == "xgboost":
        return fit_xgboost(params, train, valid, seed)
    if family in ("mlp", "logistic"):
        return fit_torch(family, params, train, valid, seed)
    raise ValueError(f"unknown family {family!r}")

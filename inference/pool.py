"""The ONNX Runtime model pool: verified model versions, alias routing and hot swap.

A version serves only after its card names feature contract v1, the sha256 of its
ONNX file matches the card and its golden inputs give the card's golden outputs.
`reload` loads and checks everything a new manifest names before swapping the routing
table in one assignment; a version that fails is refused and the alias keeps its
previous version. Every loaded version keeps its session, so a game keeps the version
it started with across swaps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

import numpy as np
import onnxruntime as ort

from engine.features import FEATURE_VERSION, N_FEATURES
from engine.opponents import ALIASES, FAMILIES
from inference.store import ModelStore, model_key, read_manifest

log = logging.getLogger("rpsquest.inference")
GOLDEN_TOLERANCE = 1e-5


class ModelRejected(Exception):
    """A model version that must not serve, and why."""


class LoadedModel:
    """One verified version with its ONNX Runtime session.

    A single row runs through an I/O binding on buffers allocated once (about half the cost
    of `session.run` for one row); that makes `predict` meant for one thread, the event loop's.
    """

    def __init__(self, family: str, version: str, card: dict[str, Any], session: ort.InferenceSession) -> None:
        self.family = family
        self.version = version
        self.card = card
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self._input = np.zeros((1, N_FEATURES), dtype=np.float32)
        self._output = np.zeros((1, 3), dtype=np.float32)
        self._binding = session.io_binding()
        self._binding.bind_ortvalue_input(self.input_name, ort.OrtValue.ortvalue_from_numpy(self._input))
        self._binding.bind_ortvalue_output(
            session.get_outputs()[0].name, ort.OrtValue.ortvalue_from_numpy(self._output)
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(rock, paper, scissors) (n, 3) for float32 feature rows (n, 50), in one call: a batch of
        rounds costs little more than one."""
        if len(x) == 1:
            self._input[:] = x
            self.session.run_with_iobinding(self._binding)
            return self._output.copy()
        out: np.ndarray = self.session.run(None, {self.input_name: x})[0]
        return out


def _options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def load_model(store: ModelStore, family: str, version: str) -> LoadedModel:
    """Load one version from the store and check it; raises ModelRejected."""
    card_bytes = store.read(model_key(family, version, "card.json"))
    model_bytes = store.read(model_key(family, version, "model.onnx"))
    if card_bytes is None or model_bytes is None:
        raise ModelRejected(f"{family} {version}: missing model.onnx or card.json")
    try:
        card = json.loads(card_bytes)
    except ValueError as exc:
        raise ModelRejected(f"{family} {version}: unreadable card ({exc})") from None
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelRejected(
            f"{family} {version}: feature contract {card.get('feature_version')}, the server speaks {FEATURE_VERSION}"
        )
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != card.get("sha256"):
        raise ModelRejected(f"{family} {version}: sha256 {digest[:12]}… does not match its card")
    try:
        session = ort.InferenceSession(model_bytes, _options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelRejected(f"{family} {version}: ONNX Runtime cannot load it ({exc})") from None
    model = LoadedModel(family, version, card, session)
    golden = card.get("golden") or {}
    inputs = np.asarray(golden.get("inputs", []), dtype=np.float32)
    expected = np.asarray(golden.get("outputs", []), dtype=np.float32)
    if inputs.ndim != 2 or len(inputs) == 0 or inputs.shape[1] != N_FEATURES or expected.shape != (len(inputs), 3):
        raise ModelRejected(f"{family} {version}: the card has no usable golden inputs and outputs")
    got = session.run(None, {model.input_name: inputs})[0]
    worst = float(np.abs(got - expected).max())
    if worst > GOLDEN_TOLERANCE:
        raise ModelRejected(f"{family} {version}: golden outputs differ by {worst:.2e}")
    return model


class ModelPool:
    """Every loaded version, and which version each alias of each family serves."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.generation = 0
        self.routes: dict[str, dict[str, LoadedModel]] = {}
        self.rejected: dict[str, str] = {}
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True when every family has a Production model."""
        return all("Production" in self.routes.get(f, {}) for f in FAMILIES)

    def serving(self, family: str, alias: str) -> str | None:
        """The version `alias` of `family` serves now, or None."""
        model = self.routes.get(family, {}).get(alias)
        return None if model is None else model.version

    def preload(self, family: str, version: str) -> bool:
        """Load a version now (blocking: reads the store and builds a session); False when it is refused."""
        return self.model(family, version) is not None

    def model(self, family: str, version: str) -> LoadedModel | None:
        """A loaded version, loading it from the store if needed (a game's version after a swap or restart)."""
        found = self._loaded.get((family, version))
        if found is None:
            try:
                found = self._load(family, version)
            except ModelRejected as exc:
                log.warning("%s", exc)
                return None
        return found

    def _load(self, family: str, version: str) -> LoadedModel:
        with self._lock:
            found = self._loaded.get((family, version))
            if found is None:
                found = load_model(self.store, family, version)
                self._loaded[(family, version)] = found
            return found

    def reload(self) -> bool:
        """Read the manifest and swap in what it names; returns True when the routing changed.

        Blocking (it reads the store and builds sessions): call it off the event loop.
        """
        manifest = read_manifest(self.store)
        if manifest is None or int(manifest.get("generation", 0)) == self.generation:
            return False
        routes: dict[str, dict[str, LoadedModel]] = {}
        rejected: dict[str, str] = {}
        for family in FAMILIES:
            current = self.routes.get(family, {})
            routes[family] = {}
            for alias, version in manifest.get("families", {}).get(family, {}).items():
                if alias not in ALIASES:
                    continue
                try:
                    routes[family][alias] = self._load(family, str(version))
                except ModelRejected as exc:
                    log.warning("refused: %s", exc)
                    rejected[f"{family}/{alias}"] = str(exc)
                    if alias in current:
                        routes[family][alias] = current[alias]
        self.routes = routes
        self.rejected = rejected
        self.generation = int(manifest["generation"])
        log.info("model manifest generation %d loaded", self.generation)
        return True

    def predict(self, family: str, version: str, x: np.ndarray) -> np.ndarray | None:
        """One version's predictions (n, 3) for feature rows `x` (n, 50), or None when it cannot serve."""
        model = self.model(family, version)
        return None if model is None else model.predict(x)

    def shadows(self, family: str, alias: str, x: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        """(version, predictions (n, 3)) of every alias of `family` other than `alias`, for rows `x` (n, 50)."""
        return {other: (m.version, m.predict(x)) for other, m in self.routes.get(family, {}).items() if other != alias}

    def predict_all(self, family: str, alias: str, version: str, x: np.ndarray) -> dict[str, tuple[str, np.ndarray]]:
        """Every alias's predictions for rows `x`; `alias` answers with the game's own `version`."""
        out = self.shadows(family, alias, x)
        served = self.predict(family, version, x)
        if served is not None:
            out[alias] = (version, served)
        return out

"""The ONNX Runtime model pool: verified model versions, alias routing and hot swap.

A version serves only after its card names feature contract v1, the sha256 of its
ONNX file matches the card and its golden inputs give the card's golden outputs.
`reload` loads and checks everything a new manifest names before swapping the routing
table in one assignment; a version that fails is refused and the alias keeps its
previous version. Each family's entry is checked on its own, so one family's bad entry
never holds back another's changes, and a manifest that cannot be read at all leaves
everything serving as it was, as does a manifest older than the one applied (a stale
copy). `reload` says what happened in a `ReloadReport`.

A version stays loaded while an alias routes to it or something holds it (`pin`, `preload`):
the game service keeps each live game's version, so a game keeps the version it started
with across swaps, and a version nobody uses any more is released. Predicting never loads:
loading happens in `reload` and `preload`, off the event loop, and a version that fails to
load is not tried again before the next reload.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import onnxruntime as ort

from engine.features import FEATURE_VERSION, N_FEATURES
from engine.opponents import ALIASES, FAMILIES
from inference.store import Manifest, ManifestError, ModelStore, load_manifest, model_key

log = logging.getLogger("rpsquest.inference")
GOLDEN_TOLERANCE = 1e-5
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
WHOLE_ENTRY = "*"  # where a refusal concerns a family's whole manifest entry, not one alias
# a family's status after a reload, by (anything refused, any alias moved)
_STATUS = {
    (False, True): "applied",
    (True, True): "partly applied",
    (True, False): "refused",
    (False, False): "unchanged",
}


class ModelRejected(Exception):
    """A model version that must not serve, and why; `reason` is one of REASONS."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


REASONS = ("missing", "checksum", "contract", "golden", "store", "other")  # why a version was refused


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
    try:
        card_bytes = store.read(model_key(family, version, "card.json"))
        model_bytes = store.read(model_key(family, version, "model.onnx"))
    except Exception as exc:  # S3 or file-system errors of every kind
        raise ModelRejected(
            f"{family} {version}: the store cannot be read ({type(exc).__name__}: {exc})", "store"
        ) from None
    if card_bytes is None or model_bytes is None:
        raise ModelRejected(f"{family} {version}: missing model.onnx or card.json", "missing")
    try:
        card = json.loads(card_bytes)
    except ValueError as exc:
        raise ModelRejected(f"{family} {version}: unreadable card ({exc})", "other") from None
    if not isinstance(card, dict):
        raise ModelRejected(f"{family} {version}: unreadable card (not a JSON object)", "other")
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelRejected(
            f"{family} {version}: feature contract {card.get('feature_version')}, the server speaks {FEATURE_VERSION}",
            "contract",
        )
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != card.get("sha256"):
        raise ModelRejected(f"{family} {version}: sha256 {digest[:12]}… does not match its card", "checksum")
    try:
        session = ort.InferenceSession(model_bytes, _options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ModelRejected(f"{family} {version}: ONNX Runtime cannot load it ({exc})", "other") from None
    model = LoadedModel(family, version, card, session)
    golden = card.get("golden")
    try:
        inputs = np.asarray(golden.get("inputs", []) if isinstance(golden, dict) else [], dtype=np.float32)
        expected = np.asarray(golden.get("outputs", []) if isinstance(golden, dict) else [], dtype=np.float32)
    except (TypeError, ValueError):  # ragged rows or values that are not numbers
        inputs = expected = np.zeros(0, dtype=np.float32)
    if inputs.ndim != 2 or len(inputs) == 0 or inputs.shape[1] != N_FEATURES or expected.shape != (len(inputs), 3):
        raise ModelRejected(f"{family} {version}: the card has no usable golden inputs and outputs", "golden")
    try:
        got = session.run(None, {model.input_name: inputs})[0]
    except Exception as exc:  # onnxruntime's own errors: an input or output shape the contract does not have
        raise ModelRejected(f"{family} {version}: the golden inputs do not run ({exc})", "golden") from None
    worst = float(np.abs(got - expected).max())
    if worst > GOLDEN_TOLERANCE:
        raise ModelRejected(f"{family} {version}: golden outputs differ by {worst:.2e}", "golden")
    return model


class ManifestReport(msgspec.Struct, omit_defaults=True):
    """How the last read of the manifest went: `ok`, `missing`, `unreadable`, `wrong shape`, `store error`
    (`not read` before the first read), the generation it names and, when it could not be used, why."""

    status: str
    generation: int | None = None
    error: str | None = None


STALE = "stale"  # the manifest's status when it names a generation older than the one applied


class FamilyReport(msgspec.Struct, omit_defaults=True):
    """What a reload did to one family: `applied`, `partly applied`, `refused` or `unchanged`; the version
    each alias serves now; what was refused and why, by alias (`*`: the family's whole entry)."""

    status: str
    serving: dict[str, str]
    refused: dict[str, str] = {}


class ReloadReport(msgspec.Struct):
    """The answer of one reload. `changed`: some alias now serves another version. `rejected` flattens
    every family's refusals as `family/alias` -> reason. `loaded`: the versions in memory, by family
    (those the aliases route to and those live games still use)."""

    changed: bool
    generation: int
    manifest: ManifestReport
    families: dict[str, FamilyReport]
    rejected: dict[str, str]
    loaded: dict[str, list[str]] = {}


def _entry(family: str, entry: object) -> tuple[dict[str, str], dict[str, str]]:
    """A family's manifest entry checked: (alias -> version wanted, alias -> why refused)."""
    if entry is None:
        return {}, {WHOLE_ENTRY: f"{family}: the manifest names no versions for it"}
    if not isinstance(entry, dict):
        return {}, {WHOLE_ENTRY: f"{family}: the entry must be an object of alias -> version, not {entry!r:.60}"}
    wanted: dict[str, str] = {}
    refused: dict[str, str] = {}
    for alias, version in entry.items():
        if alias not in ALIASES:
            refused[alias] = f"{family}: unknown alias {alias!r:.40}; the aliases are {', '.join(ALIASES)}"
        elif not isinstance(version, str) or not VERSION_NAME.fullmatch(version):
            refused[alias] = f"{family} {alias}: {version!r:.40} is not a version name"
        else:
            wanted[alias] = version
    if "Production" not in entry:
        refused["Production"] = f"{family}: the entry names no Production version"
    return wanted, refused


class ModelPool:
    """Every loaded version, and which version each alias of each family serves.

    `on_refused(family, reason)` is told of every version that failed to load (reason: one of REASONS).
    """

    def __init__(self, store: ModelStore, on_refused: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.generation = 0
        self.routes: dict[str, dict[str, LoadedModel]] = {}
        self.manifest = ManifestReport("not read")
        self.families: dict[str, FamilyReport] = {}  # as the last manifest that could be read left them
        # a version leaves when the routes and every holder have let go of it
        self._loaded: weakref.WeakValueDictionary[tuple[str, str], LoadedModel] = weakref.WeakValueDictionary()
        self._refused: dict[tuple[str, str], tuple[str, str]] = {}  # since the last reload: (message, reason)
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._applied: Manifest | None = None  # the manifest the routes follow

    @property
    def ready(self) -> bool:
        """True when every family has a Production model."""
        return all("Production" in self.routes.get(f, {}) for f in FAMILIES)

    @property
    def rejected(self) -> dict[str, str]:
        """Every refusal of the last manifest that could be read: `family/alias` -> reason."""
        return {f"{f}/{where}": why for f, report in self.families.items() for where, why in report.refused.items()}

    def serving(self, family: str, alias: str) -> str | None:
        """The version `alias` of `family` serves now, or None."""
        model = self.routes.get(family, {}).get(alias)
        return None if model is None else model.version

    def loaded(self) -> dict[str, list[str]]:
        """The versions in memory, by family."""
        out: dict[str, list[str]] = {}
        for family, version in sorted(self._loaded.keys()):
            out.setdefault(family, []).append(version)
        return out

    def pin(self, family: str, version: str) -> LoadedModel | None:
        """A version if it is loaded, never loading it: holding it keeps it loaded."""
        return self._loaded.get((family, version))

    def preload(self, family: str, version: str) -> LoadedModel | None:
        """`model`, for the game service: holding what it returns keeps the version loaded."""
        return self.model(family, version)

    def model(self, family: str, version: str) -> LoadedModel | None:
        """A version, loaded from the store if needed (blocking: reads the store and builds a session; a
        game's version after a swap or restart); None when it cannot serve."""
        found = self._loaded.get((family, version))
        if found is None:
            try:
                found = self._load(family, version)
            except ModelRejected as exc:
                log.warning("%s; its games are played by the in-game predictor", exc)
                return None
        return found

    def _load(self, family: str, version: str) -> LoadedModel:
        """The version, loaded and checked unless it is loaded; raises ModelRejected, also without trying
        when it failed since the last reload."""
        key = (family, version)
        with self._lock:
            found = self._loaded.get(key)
            if found is not None:
                return found
            if key in self._refused:
                raise ModelRejected(*self._refused[key])
            try:
                found = load_model(self.store, family, version)
            except Exception as exc:
                if not isinstance(exc, ModelRejected):  # a check that broke on an input nobody foresaw
                    log.exception("checking %s %s failed", family, version)
                    exc = ModelRejected(f"{family} {version}: could not be checked ({type(exc).__name__}: {exc})",
                                        "other")  # fmt: skip
                self._refused[key] = (str(exc), exc.reason)
                if self._on_refused is not None:
                    self._on_refused(family, exc.reason)
                raise exc from None
            self._loaded[key] = found
            return found

    def reload(self, force: bool = False) -> ReloadReport:
        """Read the manifest and swap in what it names, family by family; says what happened.

        A manifest equal to the one applied last is skipped unless `force`d (then refused entries
        are tried again). Blocking (it reads the store and builds sessions): call
        it off the event loop.
        """
        with self._reload_lock:
            with self._lock:
                self._refused.clear()  # what failed is tried again, once, after each reload
            try:
                manifest = load_manifest(self.store)
            except ManifestError as exc:
                log.warning("model manifest %s: %s; the current versions keep serving", exc.status, exc)
                self.manifest = ManifestReport(exc.status, error=str(exc))
                return self.report()
            if manifest.generation < self.generation:  # e.g. a store replica that lags behind: never go back
                error = f"generation {manifest.generation} is older than generation {self.generation}, applied"
                log.warning("model manifest %s: %s; the current versions keep serving", STALE, error)
                self.manifest = ManifestReport(STALE, manifest.generation, error)
                return self.report()
            self.manifest = ManifestReport("ok", manifest.generation)
            if manifest == self._applied and not force:
                return self.report()
            routes: dict[str, dict[str, LoadedModel]] = {}
            families: dict[str, FamilyReport] = {}
            for family in FAMILIES:
                routes[family], families[family] = self._apply(family, manifest.families.get(family))
            for family in manifest.families:
                if family not in FAMILIES:
                    reason = f"{family}: unknown family; the families are {', '.join(FAMILIES)}"
                    log.warning("refused: %s", reason)
                    families[family] = FamilyReport("refused", {}, {WHOLE_ENTRY: reason})
            self.routes = routes
            self.families = families
            self.generation = manifest.generation
            self._applied = manifest
            log.info("model manifest generation %d read", self.generation)
            return self.report(changed=any(f.status in ("applied", "partly applied") for f in families.values()))

    def _apply(self, family: str, entry: object) -> tuple[dict[str, LoadedModel], FamilyReport]:
        """The routes of `family` after its manifest entry, loading what it names; refused aliases keep theirs."""
        current = self.routes.get(family, {})
        wanted, refused = _entry(family, entry)
        routes: dict[str, LoadedModel] = {}
        for alias, version in wanted.items():
            try:
                routes[alias] = self._load(family, version)
            except ModelRejected as exc:
                refused[alias] = str(exc)
        for where, reason in refused.items():
            log.warning("refused: %s", reason)
            if where == WHOLE_ENTRY:
                routes.update(current)
            elif where in current:
                routes[where] = current[where]
        serving = {alias: model.version for alias, model in routes.items()}
        moved = serving != {alias: model.version for alias, model in current.items()}
        return routes, FamilyReport(_STATUS[bool(refused), moved], serving, refused)

    def report(self, changed: bool = False) -> ReloadReport:
        """The state as a reload report; without `changed`, every family shows as unchanged or refused."""
        families = self.families
        if not changed:
            families = {
                f: msgspec.structs.replace(r, status="refused" if r.refused else "unchanged")
                for f, r in families.items()
            }
        return ReloadReport(changed, self.generation, self.manifest, families, self.rejected, self.loaded())

    def predict(self, family: str, version: str, x: np.ndarray) -> np.ndarray | None:
        """One version's predictions (n, 3) for feature rows `x` (n, 50), or None when it is not loaded
        (never loads it: see `preload`)."""
        model = self._loaded.get((family, version))
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

"""inference.pool and inference.store against protocol.md (Model store) and mlops.md: verified loading, routing,
hot swap that refuses bad versions, and the local store. Uses the real ONNX files of the session's `trained_store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.features import N_FEATURES, features
from engine.opponents import ALIASES, FAMILIES
from engine.rules import Round
from inference.pool import ModelPool, ModelRejected, load_model
from inference.store import LocalStore, model_key, read_manifest, versions, write_manifest

# trainer bootstrap gives each alias its own configuration's first version
FIRST_MANIFEST = {family: {"Production": "v1", "B": "v2", "shadow1": "v3", "shadow2": "v4"} for family in FAMILIES}


@pytest.fixture
def root(tmp_path: Path, trained_store: Path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(trained_store, copy)
    return copy


@pytest.fixture
def store(root: Path) -> LocalStore:
    return LocalStore(root)


def _card(root: Path, family: str, version: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads((root / model_key(family, version, "card.json")).read_text())
    return card


def _write_card(root: Path, family: str, version: str, card: dict[str, Any]) -> None:
    (root / model_key(family, version, "card.json")).write_text(json.dumps(card))


def _corrupt(root: Path, family: str, version: str) -> None:
    """Change the ONNX bytes and give the card their sha256: only ONNX Runtime can tell."""
    path = root / model_key(family, version, "model.onnx")
    data = path.read_bytes()
    bad = data[: len(data) // 2]
    path.write_bytes(bad)
    card = _card(root, family, version)
    card["sha256"] = hashlib.sha256(bad).hexdigest()
    _write_card(root, family, version, card)


def _wrong_sha(root: Path, family: str, version: str) -> None:
    card = _card(root, family, version)
    card["sha256"] = hashlib.sha256(b"another model").hexdigest()
    _write_card(root, family, version, card)


def _feature_version_2(root: Path, family: str, version: str) -> None:
    _write_card(root, family, version, {**_card(root, family, version), "feature_version": 2})


def _golden_mismatch(root: Path, family: str, version: str) -> None:
    card = _card(root, family, version)
    outputs = card["golden"]["outputs"]
    card["golden"]["outputs"] = [[row[1], row[2], row[0]] for row in outputs]  # the same numbers, wrong places
    _write_card(root, family, version, card)


def _no_card(root: Path, family: str, version: str) -> None:
    (root / model_key(family, version, "card.json")).unlink()


def _no_model(root: Path, family: str, version: str) -> None:
    (root / model_key(family, version, "model.onnx")).unlink()


def _no_golden(root: Path, family: str, version: str) -> None:
    card = _card(root, family, version)
    del card["golden"]
    _write_card(root, family, version, card)


def _unreadable_card(root: Path, family: str, version: str) -> None:
    (root / model_key(family, version, "card.json")).write_bytes(b'{"feature_version": 1, ')


Damage = Callable[[Path, str, str], None]
# kind -> (damage, what the refusal says)
BAD: dict[str, tuple[Damage, str]] = {
    "corrupted onnx": (_corrupt, "ONNX Runtime cannot load it"),
    "wrong sha256": (_wrong_sha, "sha256"),
    "feature version 2": (_feature_version_2, "feature contract 2"),
    "golden mismatch": (_golden_mismatch, "golden outputs differ"),
    "missing card": (_no_card, "missing model.onnx or card.json"),
    "missing model": (_no_model, "missing model.onnx or card.json"),
    "no golden rows": (_no_golden, "no usable golden"),
    "unreadable card": (_unreadable_card, "unreadable card"),
}


def _bad_version(root: Path, family: str, kind: str, version: str) -> str:
    """A copy of `family` v1 as `version`, damaged as `kind` says."""
    shutil.copytree(root / "models" / family / "v1", root / "models" / family / version)
    card = _card(root, family, version)
    _write_card(root, family, version, {**card, "version": version})
    BAD[kind][0](root, family, version)
    return version


def _vector() -> np.ndarray:
    history = [
        Round(1, (16, 10, 11), 0, 2, 16, 0),
        Round(2, (15, 20, 10), 1, 1, 21, 5),
        Round(3, (10, 15, 20), 0, 1, 21, 20),
    ]
    return features(history, (10, 13, 18))


# -- load_model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_load_model_accepts_every_trained_version(family: str, root: Path, store: LocalStore) -> None:
    for version in ("v1", "v2", "v3", "v4"):
        model = load_model(store, family, version)
        assert (model.family, model.version) == (family, version)
        card = _card(root, family, version)
        assert model.card == card
        golden_in = np.asarray(card["golden"]["inputs"], dtype=np.float32)
        p = model.predict(golden_in[:1])[0]
        assert p.shape == (3,)
        assert np.allclose(p, card["golden"]["outputs"][0], atol=1e-5)
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("kind", list(BAD))
def test_load_model_refuses_a_bad_version(kind: str, root: Path, store: LocalStore) -> None:
    version = _bad_version(root, "xgboost", kind, "v7")
    with pytest.raises(ModelRejected) as refused:
        load_model(store, "xgboost", version)
    message = str(refused.value)
    assert message.startswith("xgboost v7: ")
    assert BAD[kind][1] in message


def test_load_model_refuses_every_family_with_a_corrupted_file(root: Path, store: LocalStore) -> None:
    for family in FAMILIES:
        _corrupt(root, family, "v2")
        with pytest.raises(ModelRejected, match="ONNX Runtime cannot load it"):
            load_model(store, family, "v2")


def test_load_model_refuses_a_version_that_does_not_exist(store: LocalStore) -> None:
    with pytest.raises(ModelRejected, match="mlp v99: missing"):
        load_model(store, "mlp", "v99")


# -- ModelPool ----------------------------------------------------------------------------------


def _routes(pool: ModelPool) -> dict[str, dict[str, str]]:
    return {
        family: {alias: model.version for alias, model in aliases.items()} for family, aliases in pool.routes.items()
    }


def test_pool_serves_the_manifest(store: LocalStore) -> None:
    pool = ModelPool(store)
    assert not pool.ready
    assert pool.serving("mlp", "Production") is None
    assert pool.reload() is True
    assert pool.ready
    assert pool.generation == 1
    assert pool.rejected == {}
    assert _routes(pool) == FIRST_MANIFEST
    for family in FAMILIES:
        for alias in ALIASES:
            assert pool.serving(family, alias) == FIRST_MANIFEST[family][alias]
    assert pool.serving("mlp", "nobody") is None
    assert pool.serving("forest", "Production") is None
    assert pool.reload() is False  # same generation: nothing to do


def test_pool_without_manifest_is_not_ready(tmp_path: Path) -> None:
    pool = ModelPool(LocalStore(tmp_path / "empty"))
    assert pool.reload() is False
    assert not pool.ready


def test_pool_refuses_bad_versions_and_keeps_serving_the_previous_one(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload()
    for i, kind in enumerate(BAD):
        bad = _bad_version(root, "mlp", kind, f"v{10 + i}")
        manifest = {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": bad}}
        generation = write_manifest(store, manifest)
        assert pool.reload() is True, kind
        assert pool.generation == generation
        assert pool.serving("mlp", "Production") == "v1", kind
        assert pool.ready
        assert list(pool.rejected) == ["mlp/Production"], kind
        assert f"mlp {bad}: " in pool.rejected["mlp/Production"] and BAD[kind][1] in pool.rejected["mlp/Production"]
        assert _routes(pool) == FIRST_MANIFEST, kind
    # a later good manifest swaps in, and clears the refusal
    good = {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": "v2", "B": "v1"}}
    write_manifest(store, good)
    assert pool.reload() is True
    assert pool.serving("mlp", "Production") == "v2"
    assert pool.serving("mlp", "B") == "v1"
    assert pool.rejected == {}
    assert _routes(pool) == good


def test_bad_version_of_another_alias_keeps_that_alias(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload()
    bad = _bad_version(root, "logistic", "golden mismatch", "v5")
    manifest = {**FIRST_MANIFEST, "logistic": {**FIRST_MANIFEST["logistic"], "shadow2": bad, "B": "v1"}}
    write_manifest(store, manifest)
    assert pool.reload()
    assert pool.serving("logistic", "shadow2") == "v4"  # kept
    assert pool.serving("logistic", "B") == "v1"  # the good change in the same manifest is applied
    assert list(pool.rejected) == ["logistic/shadow2"]


def test_first_manifest_with_a_bad_production_is_not_ready(root: Path, store: LocalStore) -> None:
    bad = _bad_version(root, "xgboost", "wrong sha256", "v5")
    write_manifest(store, {**FIRST_MANIFEST, "xgboost": {**FIRST_MANIFEST["xgboost"], "Production": bad}})
    pool = ModelPool(store)
    assert pool.reload() is True
    assert not pool.ready  # nothing to fall back to
    assert pool.serving("xgboost", "Production") is None
    assert pool.serving("xgboost", "B") == "v2"
    assert "sha256" in pool.rejected["xgboost/Production"]


def test_manifest_without_a_family_is_not_ready_and_ignores_unknown_aliases(store: LocalStore) -> None:
    manifest = {"mlp": {**FIRST_MANIFEST["mlp"], "canary": "v1"}, "xgboost": FIRST_MANIFEST["xgboost"]}
    write_manifest(store, manifest)
    pool = ModelPool(store)
    assert pool.reload()
    assert not pool.ready  # logistic has no Production
    assert pool.serving("mlp", "canary") is None
    assert set(pool.routes["mlp"]) == set(ALIASES)


def test_model_loads_an_older_version_on_demand(root: Path, store: LocalStore) -> None:
    write_manifest(store, {family: {"Production": "v2", "B": "v3"} for family in FAMILIES})
    pool = ModelPool(store)
    assert pool.reload()
    older = pool.model("mlp", "v1")  # not named by the manifest: a game that started before a swap
    assert older is not None
    assert (older.family, older.version) == ("mlp", "v1")
    assert pool.model("mlp", "v1") is older  # loaded once, kept
    assert pool.model("mlp", "v2") is pool.routes["mlp"]["Production"]
    _bad_version(root, "mlp", "feature version 2", "v5")
    assert pool.model("mlp", "v5") is None
    assert pool.model("mlp", "v99") is None
    assert pool.preload("logistic", "v1") and pool.model("logistic", "v1") is not None
    assert not pool.preload("mlp", "v5") and not pool.preload("mlp", "v99")


def test_a_loaded_version_survives_its_files_being_replaced(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload()
    kept = pool.model("xgboost", "v1")
    assert kept is not None
    _corrupt(root, "xgboost", "v1")
    assert pool.model("xgboost", "v1") is kept


def test_predict_all_answers_for_every_alias(store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload()
    x = _vector()[None]
    assert x.shape == (1, N_FEATURES)
    for family in FAMILIES:
        # a game that started on Production when it was v4 keeps v4
        out = pool.predict_all(family, "Production", "v4", x)
        assert set(out) == set(ALIASES)
        assert out["Production"][0] == "v4"
        own = load_model(store, family, "v4").predict(x)
        assert np.allclose(out["Production"][1], own, atol=1e-6)
        for alias in ("B", "shadow1", "shadow2"):
            version, probs = out[alias]
            assert version == FIRST_MANIFEST[family][alias]
            served = pool.routes[family][alias]
            assert np.allclose(probs, served.predict(x), atol=1e-6)
        for _, probs in out.values():
            assert probs.shape == (1, 3)
            assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)
        # distinct versions give distinct answers (the table is not one model four times)
        assert len({tuple(np.round(p[0], 6)) for _, p in out.values()}) > 1


def test_predict_all_without_the_games_version_still_answers_for_the_others(store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload()
    out = pool.predict_all("mlp", "B", "v99", _vector()[None])
    assert set(out) == {"Production", "shadow1", "shadow2"}


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_answers_each_row_as_it_would_alone(family: str, store: LocalStore) -> None:
    """The server predicts the rounds of many games in one call: each row must get its own answer."""
    model = load_model(store, family, "v1")
    rows = np.random.default_rng(3).random((20, 50), dtype=np.float32)
    alone = np.concatenate([model.predict(rows[i : i + 1]) for i in range(len(rows))])
    together = model.predict(rows)
    assert together.shape == (20, 3) and np.allclose(together, alone, atol=1e-6)
    assert len({tuple(np.round(p, 5)) for p in together}) > 1  # the rows differ, so do the answers


# -- LocalStore and the manifest -------------------------------------------------------------------


def test_local_store_reads_what_it_wrote(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert store.read("models/mlp/v1/card.json") is None
    assert store.keys("") == []
    store.write("models/mlp/v1/card.json", b"a long first content")
    assert store.read("models/mlp/v1/card.json") == b"a long first content"
    store.write("models/mlp/v1/card.json", b"short")
    assert store.read("models/mlp/v1/card.json") == b"short"  # replaced whole
    files = sorted(p.relative_to(tmp_path / "s").as_posix() for p in (tmp_path / "s").rglob("*") if p.is_file())
    assert files == ["models/mlp/v1/card.json"]  # no temporary file left behind


def test_local_store_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "s")
    store.write("models/mlp/v1/model.onnx", b"old model")

    def interrupted(src: str, dst: str) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", interrupted)  # LocalStore.write moves its temporary file in place
    with pytest.raises(OSError, match="disk went away"):
        store.write("models/mlp/v1/model.onnx", b"new model that never lands")
    monkeypatch.undo()
    assert store.read("models/mlp/v1/model.onnx") == b"old model"  # readers never see a partial file
    assert store.keys("models/") == ["models/mlp/v1/model.onnx"]


def test_interrupted_manifest_write_leaves_no_stray_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path / "s")
    write_manifest(store, FIRST_MANIFEST)

    def interrupted(src: str, dst: str) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", interrupted)  # LocalStore.write moves its temporary file in place
    with pytest.raises(OSError):
        write_manifest(store, FIRST_MANIFEST)
    monkeypatch.undo()
    assert store.keys("") == ["aliases.json"]


def test_local_store_lists_keys_by_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    for key in ("models/mlp/v1/card.json", "models/mlp/v1/model.onnx", "models/mlp/v2/card.json",
                "models/mlpx/v1/card.json", "models/xgboost/v1/card.json", "aliases.json"):  # fmt: skip
        store.write(key, key.encode())
    assert store.keys("models/mlp/") == [
        "models/mlp/v1/card.json",
        "models/mlp/v1/model.onnx",
        "models/mlp/v2/card.json",
    ]
    assert store.keys("models/mlp/v1/") == ["models/mlp/v1/card.json", "models/mlp/v1/model.onnx"]
    assert store.keys("models/") == sorted(store.keys("models/"))
    assert len(store.keys("")) == 6
    assert store.keys("nothing/") == []
    assert LocalStore(tmp_path / "missing").keys("") == []


@pytest.mark.parametrize("key", ["../outside", "models/../../outside", "/tmp/outside", "../s-sibling/x", ""])
def test_local_store_refuses_keys_that_leave_its_root(key: str, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.write("inside", b"x")
    with pytest.raises(ValueError, match="leaves the store"):
        store.write(key, b"escaped")
    with pytest.raises(ValueError, match="leaves the store"):
        store.read(key)
    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "s-sibling").exists()


def test_manifest_generation_increases(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert read_manifest(store) is None
    assert write_manifest(store, FIRST_MANIFEST) == 1
    assert write_manifest(store, {"mlp": {"Production": "v2"}}) == 2
    manifest = read_manifest(store)
    assert manifest == {"generation": 2, "families": {"mlp": {"Production": "v2"}}}
    raw = store.read("aliases.json")
    assert raw is not None and json.loads(raw)["generation"] == 2


def test_versions_are_listed_in_numeric_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    for version in ("v10", "v2", "v1"):
        store.write(model_key("mlp", version, "card.json"), b"{}")
    store.write(model_key("mlp", "v3", "model.onnx"), b"")  # no card: not a version
    store.write(model_key("xgboost", "v4", "card.json"), b"{}")
    assert versions(store, "mlp") == ["v1", "v2", "v10"]
    assert versions(store, "logistic") == []


def test_trained_store_has_four_versions_per_family(store: LocalStore) -> None:
    manifest = read_manifest(store)
    assert manifest is not None
    assert manifest["families"] == FIRST_MANIFEST
    for family in FAMILIES:
        assert versions(store, family) == ["v1", "v2", "v3", "v4"]

"""inference.pool and inference.store against protocol.md (Model store) and mlops.md: verified loading, routing,
hot swap that refuses bad versions, and the local store. Uses the real ONNX files of the session's `trained_store`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.features import N_FEATURES, features
from engine.opponents import ALIASES, FAMILIES
from engine.rules import Round
from inference.pool import ManifestReport, ModelPool, ModelRejected, load_model
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
    report = pool.reload()
    assert report.changed is True
    assert report.manifest == ManifestReport("ok", 1)
    assert {f: (r.status, r.serving, r.refused) for f, r in report.families.items()} == {
        f: ("applied", FIRST_MANIFEST[f], {}) for f in FAMILIES
    }
    assert pool.ready
    assert pool.generation == report.generation == 1
    assert pool.rejected == report.rejected == {}
    assert _routes(pool) == FIRST_MANIFEST
    for family in FAMILIES:
        for alias in ALIASES:
            assert pool.serving(family, alias) == FIRST_MANIFEST[family][alias]
    assert pool.serving("mlp", "nobody") is None
    assert pool.serving("forest", "Production") is None
    again = pool.reload()  # same generation: nothing to do
    assert again.changed is False and {r.status for r in again.families.values()} == {"unchanged"}


def test_pool_without_manifest_is_not_ready(tmp_path: Path) -> None:
    pool = ModelPool(LocalStore(tmp_path / "empty"))
    report = pool.reload()
    assert report.changed is False and report.families == {}
    assert report.manifest.status == "missing" and "no aliases.json" in (report.manifest.error or "")
    assert not pool.ready


def test_pool_refuses_bad_versions_and_keeps_serving_the_previous_one(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    for i, kind in enumerate(BAD):
        bad = _bad_version(root, "mlp", kind, f"v{10 + i}")
        manifest = {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": bad}}
        generation = write_manifest(store, manifest)
        report = pool.reload()
        assert report.changed is False, kind  # nothing serves anything else
        assert report.families["mlp"].status == "refused", kind
        assert report.families["xgboost"].status == "unchanged", kind
        assert report.families["mlp"].refused == {"Production": pool.rejected["mlp/Production"]}, kind
        assert pool.generation == generation
        assert pool.serving("mlp", "Production") == "v1", kind
        assert pool.ready
        assert list(pool.rejected) == ["mlp/Production"], kind
        assert f"mlp {bad}: " in pool.rejected["mlp/Production"] and BAD[kind][1] in pool.rejected["mlp/Production"]
        assert _routes(pool) == FIRST_MANIFEST, kind
    # a later good manifest swaps in, and clears the refusal
    good = {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": "v2", "B": "v1"}}
    write_manifest(store, good)
    assert pool.reload().changed is True
    assert pool.serving("mlp", "Production") == "v2"
    assert pool.serving("mlp", "B") == "v1"
    assert pool.rejected == {}
    assert _routes(pool) == good


def test_bad_version_of_another_alias_keeps_that_alias(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    bad = _bad_version(root, "logistic", "golden mismatch", "v5")
    manifest = {**FIRST_MANIFEST, "logistic": {**FIRST_MANIFEST["logistic"], "shadow2": bad, "B": "v1"}}
    write_manifest(store, manifest)
    assert pool.reload().changed
    assert pool.serving("logistic", "shadow2") == "v4"  # kept
    assert pool.serving("logistic", "B") == "v1"  # the good change in the same manifest is applied
    assert list(pool.rejected) == ["logistic/shadow2"]


def test_first_manifest_with_a_bad_production_is_not_ready(root: Path, store: LocalStore) -> None:
    bad = _bad_version(root, "xgboost", "wrong sha256", "v5")
    write_manifest(store, {**FIRST_MANIFEST, "xgboost": {**FIRST_MANIFEST["xgboost"], "Production": bad}})
    pool = ModelPool(store)
    report = pool.reload()
    assert report.changed is True
    assert report.families["xgboost"].status == "partly applied"
    assert not pool.ready  # nothing to fall back to
    assert pool.serving("xgboost", "Production") is None
    assert pool.serving("xgboost", "B") == "v2"
    assert "sha256" in pool.rejected["xgboost/Production"]


def test_manifest_without_a_family_is_not_ready_and_ignores_unknown_aliases(store: LocalStore) -> None:
    manifest = {"mlp": {**FIRST_MANIFEST["mlp"], "canary": "v1"}, "xgboost": FIRST_MANIFEST["xgboost"]}
    write_manifest(store, manifest)
    pool = ModelPool(store)
    assert pool.reload().changed
    assert not pool.ready  # logistic has no Production
    assert pool.serving("mlp", "canary") is None
    assert set(pool.routes["mlp"]) == set(ALIASES)


def test_model_loads_an_older_version_on_demand(root: Path, store: LocalStore) -> None:
    write_manifest(store, {family: {"Production": "v2", "B": "v3"} for family in FAMILIES})
    pool = ModelPool(store)
    assert pool.reload().changed
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
    assert pool.reload().changed
    kept = pool.model("xgboost", "v1")
    assert kept is not None
    _corrupt(root, "xgboost", "v1")
    assert pool.model("xgboost", "v1") is kept


def test_predict_all_answers_for_every_alias(store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
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
    assert pool.reload().changed
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


# -- reload reports: the manifest and each family's entry -------------------------------------------


def _raw_manifest(root: Path, text: str | bytes) -> None:
    (root / "aliases.json").write_bytes(text.encode() if isinstance(text, str) else text)


@pytest.mark.parametrize(
    ("text", "status", "says"),
    [
        ('{"generation": 2, "families": {"mlp": {"Production": "v2"', "unreadable", "not valid JSON"),  # truncated
        ("", "unreadable", "not valid JSON"),
        (b"\xff\xfe{}", "unreadable", "not valid JSON"),
        ("[1, 2]", "wrong shape", "must be an object"),
        ('{"families": {}}', "wrong shape", "generation"),
        ('{"generation": "7", "families": {}}', "wrong shape", "generation"),
        ('{"generation": -1, "families": {}}', "wrong shape", "generation"),
        ('{"generation": 2, "families": ["mlp"]}', "wrong shape", "families must be an object"),
    ],
)
def test_a_manifest_that_cannot_be_used_keeps_everything_serving(
    text: str | bytes, status: str, says: str, root: Path, store: LocalStore
) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    _raw_manifest(root, text)
    for _ in range(2):  # the same answer on every attempt, with nothing stale in it
        report = pool.reload(force=True)
        assert report.changed is False
        assert report.manifest.status == status and says in (report.manifest.error or "")
        assert report.generation == pool.generation == 1
        assert {f: r.status for f, r in report.families.items()} == dict.fromkeys(FAMILIES, "unchanged")
    assert pool.manifest == report.manifest
    assert _routes(pool) == FIRST_MANIFEST and pool.ready
    # repaired: write_manifest cannot read the old generation and starts again at 1, the generation served
    assert write_manifest(store, {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": "v2"}}) == 1
    report = pool.reload()  # the entries differ from those applied: read in full
    assert report.manifest == ManifestReport("ok", 1) and report.families["mlp"].status == "applied"


def test_a_missing_manifest_after_a_good_one_keeps_everything_serving(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    (root / "aliases.json").unlink()
    report = pool.reload()
    assert report.manifest.status == "missing" and report.changed is False
    assert _routes(pool) == FIRST_MANIFEST


class BrokenStore:
    """The ModelStore protocol over a LocalStore whose reads fail while `down` (a store that is unreachable)."""

    def __init__(self, inner: LocalStore) -> None:
        self.inner = inner
        self.down = False

    def read(self, key: str) -> bytes | None:
        if self.down:
            raise ConnectionRefusedError(111, "Connection refused")
        return self.inner.read(key)

    def write(self, key: str, data: bytes) -> None:
        self.inner.write(key, data)

    def keys(self, prefix: str) -> list[str]:
        return self.inner.keys(prefix)


def test_a_store_that_is_down_is_reported_and_keeps_everything_serving(store: LocalStore) -> None:
    broken = BrokenStore(store)
    pool = ModelPool(broken)
    assert pool.reload().changed
    broken.down = True
    report = pool.reload()
    assert report.manifest.status == "store error"
    assert "ConnectionRefusedError" in (report.manifest.error or "") and report.changed is False
    assert _routes(pool) == FIRST_MANIFEST
    assert pool.model("mlp", "v1") is not None  # loaded versions need no store
    assert pool.model("logistic", "v9") is None  # and one that is not loaded is refused, not raised


BAD_ENTRIES: dict[str, tuple[object, str, str]] = {
    # kind -> (the logistic entry, where the refusal is, what it says)
    "not an object": (["v2"], "*", "must be an object of alias -> version"),
    "left out": (None, "*", "names no versions"),
    "missing version": ({**FIRST_MANIFEST["logistic"], "Production": "v9"}, "Production", "logistic v9: missing"),
    "version leaves the store": ({**FIRST_MANIFEST["logistic"], "B": "../../x"}, "B", "is not a version name"),
    "version not text": ({"Production": "v1", "B": "v2", "shadow1": 3, "shadow2": "v4"}, "shadow1", "not a version"),
    "unknown alias": ({**FIRST_MANIFEST["logistic"], "canary": "v1"}, "canary", "unknown alias 'canary'"),
    "no Production": ({"B": "v1"}, "Production", "names no Production"),
}


@pytest.mark.parametrize("kind", list(BAD_ENTRIES))
def test_one_familys_bad_entry_does_not_hold_back_the_others(kind: str, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    entry, where, says = BAD_ENTRIES[kind]
    families: dict[str, Any] = {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "Production": "v2", "B": "v1"}}
    families["logistic"] = entry
    if entry is None:
        del families["logistic"]
    write_manifest(store, families)
    report = pool.reload()
    assert report.changed is True and report.manifest.status == "ok"
    assert report.families["mlp"].status == "applied"
    assert report.families["mlp"].serving == families["mlp"] == _routes(pool)["mlp"]
    assert report.families["xgboost"].status == "unchanged"
    logistic = report.families["logistic"]
    assert list(logistic.refused) == [where] and says in logistic.refused[where], logistic
    assert report.rejected == {f"logistic/{where}": logistic.refused[where]}
    served = _routes(pool)["logistic"]
    assert logistic.serving == served
    if kind == "no Production":
        assert logistic.status == "partly applied" and served == {"Production": "v1", "B": "v1"}
    else:  # what was refused keeps its version; anything else the entry asks for is applied
        assert logistic.status == "refused" and served == FIRST_MANIFEST["logistic"]
    assert pool.ready


def test_an_unknown_family_is_refused_and_the_others_apply(store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    write_manifest(store, {**FIRST_MANIFEST, "xgboost": {**FIRST_MANIFEST["xgboost"], "B": "v3"}, "svm": {"P": "v1"}})
    report = pool.reload()
    assert report.families["xgboost"].status == "applied" and pool.serving("xgboost", "B") == "v3"
    assert report.families["svm"].status == "refused" and "unknown family" in report.rejected["svm/*"]
    assert "svm" not in pool.routes


def test_a_forced_reload_tries_a_refused_version_again(root: Path, store: LocalStore) -> None:
    pool = ModelPool(store)
    assert pool.reload().changed
    write_manifest(store, {**FIRST_MANIFEST, "mlp": {**FIRST_MANIFEST["mlp"], "shadow2": "v7"}})
    assert pool.reload().families["mlp"].status == "refused"
    shutil.copytree(root / "models" / "mlp" / "v1", root / "models" / "mlp" / "v7")  # the upload completes
    assert pool.reload().families["mlp"].status == "refused"  # the same generation: not read again
    report = pool.reload(force=True)
    assert report.changed and report.families["mlp"].status == "applied" and pool.serving("mlp", "shadow2") == "v7"
    assert report.rejected == {} == pool.rejected


@pytest.mark.parametrize(
    "card", [["not", "an", "object"], {"feature_version": 1, "golden": {"inputs": [[1.0], [1.0, 2.0]]}}]
)
def test_load_model_refuses_odd_cards(card: object, root: Path, store: LocalStore) -> None:
    shutil.copytree(root / "models" / "mlp" / "v1", root / "models" / "mlp" / "v8")
    if isinstance(card, dict):
        card = {**_card(root, "mlp", "v8"), **card}
    (root / model_key("mlp", "v8", "card.json")).write_text(json.dumps(card))
    with pytest.raises(ModelRejected, match=r"mlp v8: (unreadable card|the card has no usable golden)"):
        load_model(store, "mlp", "v8")


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


# -- releasing versions, failures, generations ---------------------------------------------------


def test_a_version_stays_loaded_while_held_and_goes_when_nothing_uses_it(store: LocalStore) -> None:
    write_manifest(store, FIRST_MANIFEST)
    pool = ModelPool(store)
    pool.reload()
    held = pool.pin("mlp", "v1")  # a live game's version
    assert held is not None and pool.pin("mlp", "v9") is None  # pin never loads
    write_manifest(store, {**FIRST_MANIFEST, "mlp": {"Production": "v2", "B": "v3", "shadow1": "v4", "shadow2": "v2"}})
    assert pool.reload().loaded["mlp"] == ["v1", "v2", "v3", "v4"]
    assert pool.predict("mlp", "v1", _vector()[None]) is not None  # the held version still predicts
    del held  # the game is over
    assert pool.loaded()["mlp"] == ["v2", "v3", "v4"]
    assert pool.predict("mlp", "v1", _vector()[None]) is None  # predicting never loads it again


def test_a_version_that_fails_is_tried_once_per_reload_and_counted_by_reason(root: Path, store: LocalStore) -> None:
    write_manifest(store, FIRST_MANIFEST)
    refused: list[tuple[str, str]] = []
    pool = ModelPool(store, lambda family, reason: refused.append((family, reason)))
    pool.reload()
    _bad_version(root, "xgboost", "wrong sha256", "v8")
    counting = CountingStore(store)
    pool.store = counting
    assert [pool.preload("xgboost", "v8"), pool.preload("xgboost", "v8"), pool.preload("logistic", "v99")] == [None] * 3
    assert refused == [("xgboost", "checksum"), ("logistic", "missing")]
    tried = len(counting.reads)
    assert pool.preload("xgboost", "v8") is None and len(counting.reads) == tried  # not tried before a reload
    pool.reload()
    assert pool.preload("xgboost", "v8") is None and refused[-1] == ("xgboost", "checksum") and len(refused) == 3


class CountingStore(BrokenStore):
    """A store that records every key read."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.reads: list[str] = []

    def read(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super().read(key)


class LaggingStore(BrokenStore):
    """A store whose manifest reads sometimes come from a replica that lags one write behind."""

    def __init__(self, inner: LocalStore) -> None:
        super().__init__(inner)
        self.previous: bytes | None = None
        self.reads = 0
        self.lock = threading.Lock()

    def write(self, key: str, data: bytes) -> None:
        with self.lock:
            self.previous = self.inner.read(key)
            self.inner.write(key, data)

    def read(self, key: str) -> bytes | None:
        with self.lock:
            self.reads += 1
            if key == "aliases.json" and self.previous is not None and self.reads % 2:
                return self.previous
            return self.inner.read(key)


def test_concurrent_reloads_never_go_back_a_generation(store: LocalStore) -> None:
    write_manifest(store, FIRST_MANIFEST)
    lagging = LaggingStore(store)
    pool = ModelPool(lagging)
    pool.reload()
    seen: list[int] = []
    stop = threading.Event()

    def reloader() -> None:
        while not stop.is_set():
            pool.reload(force=True)

    def watcher() -> None:
        while not stop.is_set():
            seen.append(pool.generation)
            time.sleep(0.0005)

    threads = [threading.Thread(target=reloader) for _ in range(3)] + [threading.Thread(target=watcher)]
    for thread in threads:
        thread.start()
    for i in range(30):  # each write swaps mlp's B and shadow1
        aliases = FIRST_MANIFEST["mlp"]
        flipped = {**aliases, "B": aliases["shadow1"], "shadow1": aliases["B"]} if i % 2 == 0 else aliases
        write_manifest(lagging, {**FIRST_MANIFEST, "mlp": flipped})
        time.sleep(0.01)
    stop.set()
    for thread in threads:
        thread.join()
    assert seen == sorted(seen) and len(set(seen)) > 1
    assert pool.reload(force=True).generation == read_manifest(store)["generation"]  # type: ignore[index]

"""One training cycle: gather data, train every configuration of every family, export, register."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.opponents import ALIASES, FAMILIES
from inference.store import ModelStore, stored_manifest, versions, write_manifest
from storage.database import Database, exists
from storage.lifecycle import Families, Lifecycle
from trainer.budget import UNLIMITED, MemoryBudget
from trainer.config import load_config
from trainer.datasets import (
    Dataset,
    History,
    chronological_split,
    examples,
    histories_from_csv,
    histories_from_db,
    split_groups,
)
from trainer.families import fit
from trainer.publish import metrics, publish
from trainer.tracking import Tracker

DATASETS = Path(__file__).resolve().parent.parent / "datasets"
RECORDED = DATASETS / "wxz2014.csv"
RECORDED_HOLDOUT = DATASETS / "wxz2014-holdout.csv"
VALID_SHARE = 0.15
RECENT_SHARE = 0.1  # the latest database games, held out of training to see how a version does on new play
MIN_RECENT_GAMES = 20

Progress = Callable[[str], None]


@dataclass
class CycleReport:
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    cards: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rows: int = 0
    recent_games: list[str] = field(default_factory=list)
    seconds: float = 0.0


def recent_holdout(data: Dataset) -> np.ndarray:
    """Mask of the latest RECENT_SHARE of the database games (by start), when there are enough of them.

    Only database rows carry times; recorded and simulated play never lands in this hold-out.
    """
    timed = np.where(data.time > 0)[0]
    recent = np.zeros(len(data), dtype=bool)
    if len(set(data.group[timed])) >= MIN_RECENT_GAMES:
        _, late = chronological_split(data.take(timed), RECENT_SHARE)
        recent[timed[late]] = True
    return recent


def recorded_histories() -> list[History]:
    """The recorded human play the trainer may use: every player not in the hold-out file."""
    held = {h.player for h in histories_from_csv(RECORDED_HOLDOUT)}
    return [h for h in histories_from_csv(RECORDED) if h.player not in held]


def gather(db: Database | None, extra: Sequence[History] = (), since: float = 0.0) -> list[History]:
    """Histories from the database (if any; the games that moved on after `since`), the recorded human play and
    `extra` (e.g. simulated games)."""
    histories = list(extra) + recorded_histories()
    if db is not None and exists(db):
        histories += list(histories_from_db(db, since))
    return histories


def window(histories: Sequence[History], data: Dataset) -> dict[str, Any]:
    times = [t for h in histories for t in h.times]
    return {
        "from": min(times) if times else None,
        "to": max(times) if times else None,
        "games": len(histories),
        "rows": len(data),
        "sources": dict(Counter(h.source for h in histories)),
    }


def _holdout_metrics(model: Any, holdout: Dataset) -> dict[str, Any]:
    probs = model.predict(holdout.x)
    early = np.where(holdout.round <= 30)[0]
    return {
        "recorded_holdout": metrics(probs, holdout),
        "recorded_holdout_rounds_4_30": metrics(probs[early], holdout.take(early)),
    }


def train_cycle(
    store: ModelStore,
    histories: Sequence[History],
    *,
    families: Sequence[str] = FAMILIES,
    seed: int = 0,
    lifecycle: Lifecycle,
    progress: Progress = print,
    tracker: Tracker | None = None,
    budget: MemoryBudget = UNLIMITED,
) -> CycleReport:
    """Train, check, export and register one new version per family and configuration.

    Building the examples and fitting every model run within `budget` (MemoryBudgetExceeded stops the run).
    """
    started = time.perf_counter()
    config_version, config = load_config()
    progress(f"features of {len(histories)} games")
    with budget.step(f"building the examples of {len(histories)} games"):
        data = examples(histories)
    if len(data) < 200:
        raise ValueError(f"only {len(data)} labelled rounds: not enough to train")
    recent_mask = recent_holdout(data)
    recent = data.take(np.where(recent_mask)[0])
    rest = data.take(np.where(~recent_mask)[0])
    train_mask, valid_mask = split_groups(rest.group, VALID_SHARE, seed)
    train, valid = rest.take(np.where(train_mask)[0]), rest.take(np.where(valid_mask)[0])
    holdout = examples(histories_from_csv(RECORDED_HOLDOUT))
    span = window(histories, data)
    report = CycleReport(rows=len(data), recent_games=sorted(set(recent.group.tolist())))
    total = len(families) * len(ALIASES)
    done = 0
    for family in families:
        report.versions[family] = {}
        report.cards[family] = {}
        for alias in ALIASES:
            done += 1
            params = config[family][alias]
            progress(f"training {family} {alias} ({done}/{total}) on {len(train)} rounds")
            with budget.step(f"training {family} {alias}"):
                model = fit(family, params, train, valid, seed)
            extra = _holdout_metrics(model, holdout)
            if len(recent):
                extra["recent_holdout"] = metrics(model.predict(recent.x), recent)
            run_id = tracker.start(family, alias, params, config_version) if tracker else None
            progress(f"exporting {family} {alias} to ONNX and checking it")
            version, card, onnx_bytes = publish(
                store, model, version=lifecycle.allocate_version(family, versions(store, family)), config=alias,
                config_version=config_version, params=params, valid=valid, window=span, extra_metrics=extra,
                mlflow_run_id=run_id,
            )  # fmt: skip
            if tracker:
                progress(f"registering {family} {alias} {version} in MLflow")
                tracker.finish(card, onnx_bytes)
            report.versions[family][alias] = version
            report.cards[family][alias] = card
    report.seconds = time.perf_counter() - started
    return report


def enter_new_versions(
    store: ModelStore, lifecycle: Lifecycle, report: CycleReport, tracker: Tracker | None = None
) -> int:
    """Put a cycle's new versions in the manifest (written last, whole); returns its generation.

    On a cold start (a family without Production) each configuration's version takes its alias.
    Afterwards the two new versions with the lowest validation log loss enter as shadow1 and
    shadow2, the challengers: Production and B change only by the promotion rules.
    """

    def change(families: Families) -> Families:
        for family, by_alias in report.versions.items():
            current = families.setdefault(family, {})
            if "Production" not in current:
                current.update(by_alias)
                continue
            cards = report.cards[family]
            best = sorted(by_alias, key=lambda alias: float(cards[alias]["metrics"]["valid"]["log_loss"]))
            for shadow, alias in zip(("shadow1", "shadow2"), best, strict=False):
                current[shadow] = by_alias[alias]
        return families

    published = lifecycle.publish(
        lambda: stored_manifest(store), change, lambda generation, f: write_manifest(store, f, generation), "trained"
    )
    if tracker:
        tracker.set_aliases(published.families)
    return published.generation

"""The trainer's command line: `python -m trainer {bootstrap,train,evaluate,loop}` (run by `rpsquest`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.opponents import FAMILIES
from inference import promotion
from inference.settings import Settings, SettingsError
from inference.store import ModelStore, open_store, read_manifest, stored_manifest
from storage.history import last_trained, rounds_since
from storage.lifecycle import Lifecycle
from trainer.budget import MemoryBudget, MemoryBudgetExceeded
from trainer.coldstart import cached_simulation
from trainer.cycle import enter_new_versions, gather, train_cycle
from trainer.datasets import DataError, History
from trainer.tracking import Tracker

COLD_START_GAMES = 3000
NICENESS = 10  # a training cycle yields the CPU to the game server


def _say(message: str) -> None:
    print(f"[trainer {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Steps:
    """Progress lines of one run, each with the seconds since the run started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def say(self, message: str) -> None:
        _say(f"{time.perf_counter() - self.started:5.0f} s  {message}")


def _tracker(settings: Settings) -> Tracker | None:
    try:
        return Tracker(settings.mlflow_uri_or_default(), settings.data_dir / "mlflow-artifacts")
    except ImportError:
        _say("MLflow is not installed: versions are not logged to MLflow")
        return None


@dataclass
class RunRecord:
    """What a training run reports when it ends well: trained (success) or found nothing to do (skipped)."""

    outcome: str = "success"
    rows: int | None = None
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    detail: str = ""


@contextmanager
def recorded(settings: Settings, command: str) -> Iterator[RunRecord]:
    """Record a training run in the database: its start now, its outcome when the block ends (failure when it
    raises; the exception goes on)."""
    with Lifecycle(settings.database()) as lifecycle:
        run_id = lifecycle.start_training_run(command)
        run = RunRecord()
        try:
            yield run
        except BaseException as exc:
            lifecycle.finish_training_run(run_id, "failure", detail=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        lifecycle.finish_training_run(run_id, run.outcome, run.rows, run.versions, run.detail)


def _histories(settings: Settings, games: int, seed: int, steps: Steps) -> list[History]:
    """The simulated games (played once, then read from the data dir), the recorded human play and the
    database's games of the training window."""
    sims = cached_simulation(settings.data_dir / "cache", games, seed, lambda n: steps.say(f"simulated {n}/{games}"))
    days = settings.training_window_days
    since = time.time() - days * 86400 if days else 0.0
    return gather(settings.database(), sims, since)


def bootstrap(settings: Settings, store: ModelStore, games: int, seed: int) -> int:
    """Cold start: when the store has no models yet, train a first version of every family."""
    with recorded(settings, "bootstrap") as run:
        if read_manifest(store) is not None:
            _say("models already exist: nothing to do")
            run.outcome, run.detail = "skipped", "models already exist"
            return 0
        steps = Steps()
        steps.say(f"cold start: {games} games of simulated human-like players, the recorded play, the database")
        histories = _histories(settings, games, seed, steps)
        steps.say("opening MLflow")
        tracker = _tracker(settings)
        budget = MemoryBudget(settings.trainer_memory_mb)
        with Lifecycle(settings.database()) as lifecycle:
            report = train_cycle(
                store, histories, lifecycle=lifecycle, seed=seed, progress=steps.say, tracker=tracker, budget=budget
            )
            steps.say("promoting the first versions: writing the alias manifest")
            enter_new_versions(store, lifecycle, report, tracker)
        run.rows, run.versions = report.rows, report.versions
    steps.say(f"cold start done: {report.versions}")
    return 0


def train(settings: Settings, store: ModelStore, families: Sequence[str], seed: int, command: str = "train") -> int:
    """One training cycle (recorded as a training run), then the promotion rules."""
    with recorded(settings, command) as run:
        steps = Steps()
        steps.say(f"{COLD_START_GAMES} games of simulated human-like players, the recorded play, the database")
        histories = _histories(settings, COLD_START_GAMES, seed, steps)
        tracker = _tracker(settings)
        budget = MemoryBudget(settings.trainer_memory_mb)
        with Lifecycle(settings.database()) as lifecycle:
            report = train_cycle(
                store, histories, families=families, lifecycle=lifecycle, seed=seed, progress=steps.say,
                tracker=tracker, budget=budget,
            )  # fmt: skip
            generation = enter_new_versions(store, lifecycle, report, tracker)
        run.rows, run.versions = report.rows, report.versions
    made = {
        family: sorted(by_config.values(), key=lambda v: int(v[1:])) for family, by_config in report.versions.items()
    }
    steps.say(f"trained on {report.rows} rounds: new versions {made}; challengers in manifest generation {generation}")
    return promote(settings, store, families, dry_run=False, tracker=tracker)


def promote(
    settings: Settings, store: ModelStore, families: Sequence[str], dry_run: bool, tracker: Tracker | None
) -> int:
    """Run the promotion rules once (docs/promotion.md) and mirror the aliases in MLflow."""
    for step in promotion.run(settings, store, families, dry_run):
        change = "" if step.after == step.before else f" -> {step.after}"
        _say(f"promotion {step.family}: {step.outcome}{' (dry run)' if dry_run else ''}: {step.reason}{change}")
    manifest = stored_manifest(store)
    if tracker and manifest and not dry_run:
        tracker.set_aliases(manifest[1])
    return 0


def enough_data(settings: Settings, store: ModelStore, min_rounds: int) -> bool:
    """The data gate of `train --min-rounds` (a CronJob's run): train when the store has no models yet or when
    `min_rounds` rounds of counted games arrived since the last training started."""
    if min_rounds <= 0 or read_manifest(store) is None:
        return True
    arrived = rounds_since(settings.database(), last_trained(settings.database()), settings.stats_tags)
    if arrived < min_rounds:
        _say(f"{arrived} new rounds, fewer than {min_rounds}: no training this time")
    return arrived >= min_rounds


def gated_train(settings: Settings, store: ModelStore, families: Sequence[str], seed: int, min_rounds: int) -> int:
    """`train --min-rounds N`: train past the data gate, else only run the promotion rules."""
    if not enough_data(settings, store, min_rounds):
        return promote(settings, store, families, dry_run=False, tracker=_tracker(settings))
    return train(settings, store, families, seed)


def loop(settings: Settings, store: ModelStore, interval: float, min_rounds: int, seed: int) -> int:
    """The schedule under `rpsquest up`: train whenever `min_rounds` new rounds have arrived."""
    tags = "/".join(settings.stats_tags)
    _say(f"training loop: every {interval:.0f} s, when {min_rounds} new rounds of {tags} games have arrived")
    tracker = _tracker(settings)
    mirrored = -1
    while True:
        manifest = stored_manifest(store)
        if tracker and manifest and manifest[0] != mirrored:  # a promotion by the server or by hand, a repair
            tracker.set_aliases(manifest[1])
            mirrored = manifest[0]
        time.sleep(interval)
        arrived = rounds_since(settings.database(), last_trained(settings.database()), settings.stats_tags)
        if arrived < min_rounds:
            with recorded(settings, "loop") as run:
                run.outcome, run.detail = "skipped", f"{arrived} new rounds, fewer than {min_rounds}"
            continue
        _say(f"{arrived} new rounds: training")
        try:
            train(settings, store, FAMILIES, seed, command="loop")
        except Exception as exc:  # recorded as a failed run; the next wake tries again
            _say(f"training failed: {type(exc).__name__}: {exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rpsquest", description="RPS Quest trainer")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("bootstrap", "train", "evaluate", "loop", "promote"):
        sub = commands.add_parser(name)
        sub.add_argument("--data-dir")
        sub.add_argument("--seed", type=int, default=0)
    commands.choices["bootstrap"].add_argument("--games", type=int, default=COLD_START_GAMES)
    commands.choices["train"].add_argument("--family", choices=FAMILIES)
    commands.choices["train"].add_argument("--min-rounds", type=int, default=0, help="the data gate (0: always)")
    commands.choices["promote"].add_argument("--family", choices=FAMILIES)
    commands.choices["promote"].add_argument("--dry-run", action="store_true")
    commands.choices["evaluate"].add_argument("--data", type=Path, required=True)
    commands.choices["evaluate"].add_argument("--json", action="store_true")
    commands.choices["loop"].add_argument("--interval", type=float, default=600.0)
    commands.choices["loop"].add_argument("--min-rounds", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(args.data_dir)
        store = open_store(settings)
        if args.command == "bootstrap":
            return bootstrap(settings, store, args.games, args.seed)
        if args.command in ("train", "loop"):
            os.nice(NICENESS)
        if args.command == "train":
            families = [args.family] if args.family else FAMILIES
            return gated_train(settings, store, families, args.seed, args.min_rounds)
        if args.command == "promote":
            families = [args.family] if args.family else FAMILIES
            return promote(settings, store, families, args.dry_run, None if args.dry_run else _tracker(settings))
        if args.command == "loop":
            return loop(settings, store, args.interval, args.min_rounds, args.seed)
        from trainer.evaluate import evaluate, format_report

        report = evaluate(store, args.data, args.seed)
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0
    except (SettingsError, DataError, MemoryBudgetExceeded) as exc:
        print(f"rpsquest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

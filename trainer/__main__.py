"""The trainer's command line: `python -m trainer {bootstrap,train,evaluate,loop}` (run by `rpsquest`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.opponents import FAMILIES
from inference import promotion
from inference.settings import Settings, SettingsError
from inference.store import ModelStore, open_store, read_manifest, stored_manifest
from storage.history import rounds_since
from storage.lifecycle import Lifecycle
from trainer.coldstart import simulated_histories
from trainer.cycle import enter_new_versions, gather, train_cycle
from trainer.datasets import DataError
from trainer.tracking import Tracker

COLD_START_GAMES = 3000
STATE = "trainer-state.json"  # {"last": the time the last training started}


def _say(message: str) -> None:
    print(f"[trainer {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _tracker(settings: Settings) -> Tracker | None:
    try:
        return Tracker(settings.mlflow_uri_or_default(), settings.data_dir / "mlflow-artifacts")
    except ImportError:
        _say("MLflow is not installed: versions are not logged to MLflow")
        return None


def bootstrap(settings: Settings, store: ModelStore, games: int, seed: int) -> int:
    """Cold start: when the store has no models yet, train a first version of every family."""
    if read_manifest(store) is not None:
        _say("models already exist: nothing to do")
        return 0
    started = time.perf_counter()
    _say(f"cold start: simulating {games} games of human-like players")
    sims = simulated_histories(games, seed, lambda n: _say(f"  {n}/{games} games"))
    histories = gather(settings.database_path(), sims)
    tracker = _tracker(settings)
    with Lifecycle(settings.database_path()) as lifecycle:
        report = train_cycle(store, histories, lifecycle=lifecycle, seed=seed, progress=_say, tracker=tracker)
        enter_new_versions(store, lifecycle, report, tracker)
    _say(f"cold start done in {time.perf_counter() - started:.0f} s: {report.versions}")
    return 0


def train(settings: Settings, store: ModelStore, families: Sequence[str], seed: int) -> int:
    histories = gather(settings.database_path(), simulated_histories(COLD_START_GAMES, seed))
    tracker = _tracker(settings)
    with Lifecycle(settings.database_path()) as lifecycle:
        report = train_cycle(
            store, histories, families=families, lifecycle=lifecycle, seed=seed, progress=_say, tracker=tracker
        )
        generation = enter_new_versions(store, lifecycle, report, tracker)
    _say(f"trained {report.rows} rounds in {report.seconds:.0f} s; manifest generation {generation}: {report.versions}")
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
    state_path = settings.data_dir / STATE
    since = float(json.loads(state_path.read_text())["last"]) if state_path.exists() else 0.0
    arrived = rounds_since(settings.database_path(), since, settings.stats_tags)
    if arrived < min_rounds:
        _say(f"{arrived} new rounds, fewer than {min_rounds}: no training this time")
    return arrived >= min_rounds


def gated_train(settings: Settings, store: ModelStore, families: Sequence[str], seed: int, min_rounds: int) -> int:
    """`train --min-rounds N`: train past the data gate, else only run the promotion rules."""
    started = time.time()
    if not enough_data(settings, store, min_rounds):
        return promote(settings, store, families, dry_run=False, tracker=_tracker(settings))
    code = train(settings, store, families, seed)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / STATE).write_text(json.dumps({"last": started}))
    return code


def loop(settings: Settings, store: ModelStore, interval: float, min_rounds: int, seed: int) -> int:
    """The schedule under `rpsquest up`: train whenever `min_rounds` new rounds have arrived."""
    state_path = settings.data_dir / STATE
    state = json.loads(state_path.read_text()) if state_path.exists() else {"last": time.time()}
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
        started = time.time()
        arrived = rounds_since(settings.database_path(), state["last"], settings.stats_tags)
        if arrived < min_rounds:
            continue
        _say(f"{arrived} new rounds: training")
        train(settings, store, FAMILIES, seed)
        state["last"] = started
        state_path.write_text(json.dumps(state))


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
    except (SettingsError, DataError) as exc:
        print(f"rpsquest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

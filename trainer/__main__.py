"""The trainer's command line: `python -m trainer {bootstrap,train,evaluate,loop}` (run by `rpsquest`)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from engine.opponents import FAMILIES
from inference.settings import Settings, SettingsError
from inference.store import ModelStore, open_store, read_manifest
from trainer.coldstart import simulated_histories
from trainer.cycle import gather, promote_new_versions, train_cycle
from trainer.datasets import DataError
from trainer.tracking import Tracker

COLD_START_GAMES = 3000


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


def bootstrap(settings: Settings, store: ModelStore, games: int, seed: int) -> int:
    """Cold start: when the store has no models yet, train a first version of every family."""
    if read_manifest(store) is not None:
        _say("models already exist: nothing to do")
        return 0
    steps = Steps()
    steps.say(f"cold start: simulating {games} games of human-like players")
    sims = simulated_histories(games, seed, lambda n: steps.say(f"simulated {n}/{games} games"))
    steps.say("reading the recorded play and opening MLflow")
    histories = gather(settings.database_path(), sims)
    report = train_cycle(store, histories, seed=seed, progress=steps.say, tracker=_tracker(settings))
    steps.say("promoting the first versions: writing the alias manifest")
    promote_new_versions(store, report.versions)
    steps.say(f"cold start done: {report.versions}")
    return 0


def train(settings: Settings, store: ModelStore, families: Sequence[str], seed: int) -> int:
    steps = Steps()
    steps.say(f"simulating {COLD_START_GAMES} games of human-like players")
    histories = gather(settings.database_path(), simulated_histories(COLD_START_GAMES, seed))
    tracker = _tracker(settings)
    report = train_cycle(store, histories, families=families, seed=seed, progress=steps.say, tracker=tracker)
    generation = promote_new_versions(store, report.versions, tracker)
    steps.say(f"trained on {report.rows} rounds; manifest generation {generation}: {report.versions}")
    return 0


def new_rounds(db_path: Path, since: float) -> int:
    """Rounds stored after `since` (0 when there is no database yet)."""
    if not db_path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT COUNT(*) FROM rounds WHERE created > ?", (since,)).fetchone()[0])


def loop(settings: Settings, store: ModelStore, interval: float, min_rounds: int, seed: int) -> int:
    """The schedule under `rpsquest up`: train whenever `min_rounds` new rounds have arrived."""
    state_path = settings.data_dir / "trainer-state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"last": time.time()}
    _say(f"training loop: every {interval:.0f} s, when {min_rounds} new rounds have arrived")
    while True:
        time.sleep(interval)
        started = time.time()
        arrived = new_rounds(settings.database_path(), state["last"])
        if arrived < min_rounds:
            continue
        _say(f"{arrived} new rounds: training")
        train(settings, store, FAMILIES, seed)
        state["last"] = started
        state_path.write_text(json.dumps(state))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rpsquest", description="RPS Quest trainer")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("bootstrap", "train", "evaluate", "loop"):
        sub = commands.add_parser(name)
        sub.add_argument("--data-dir")
        sub.add_argument("--seed", type=int, default=0)
    commands.choices["bootstrap"].add_argument("--games", type=int, default=COLD_START_GAMES)
    commands.choices["train"].add_argument("--family", choices=FAMILIES)
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
            return train(settings, store, [args.family] if args.family else FAMILIES, args.seed)
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

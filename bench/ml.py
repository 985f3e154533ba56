"""Benchmarks of the models: inference per round, training on 100,000 rounds, play strength, accuracy on people."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Server, percentiles
from engine.features import FeatureTracker
from engine.opponents import FAMILIES, OPPONENTS
from engine.rules import Game
from inference.pool import ModelPool
from inference.store import LocalStore


def cold_start(data_dir: Path) -> dict[str, Any]:
    """`python -m trainer bootstrap` on an empty data dir: wall time and peak memory."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "trainer", "bootstrap", "--data-dir", str(data_dir)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": round(peak)}


def inference(store: Path, rounds: int = 20000) -> dict[str, Any]:
    """All four aliases of a family predicting one round (what the server does each round), and features."""
    pool = ModelPool(LocalStore(store))
    pool.reload()
    rng = np.random.default_rng(0)
    game = Game("bench")
    while not game.over:
        game.play(int(rng.integers(3)), int(rng.integers(3)))
    tracker = FeatureTracker(game.rounds[:6])
    values = game.rounds[6].values if len(game.rounds) > 6 else game.rounds[-1].values
    feature_times = []
    for _ in range(rounds):
        t = time.perf_counter()
        x = tracker.vector(values)
        feature_times.append(time.perf_counter() - t)
    out: dict[str, Any] = {"features_us": percentiles(feature_times)}
    for family in FAMILIES:
        version = pool.serving(family, "Production")
        assert version is not None
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            pool.predict_all(family, "Production", version, x)
            times.append(time.perf_counter() - t)
        out[f"{family}_all_aliases_us"] = percentiles(times)
    return out


def training(rows: int = 100_000) -> dict[str, Any]:
    """Train every configuration of every family on about `rows` rounds, in a child process: time and peak RSS."""
    script = (
        "import time, sys\n"
        "from trainer.coldstart import simulated_histories\n"
        "from trainer.cycle import gather, train_cycle\n"
        "from inference.store import LocalStore\n"
        f"h = gather(None, simulated_histories({rows // 14}, 1))\n"
        "t = time.perf_counter()\n"
        f"r = train_cycle(LocalStore(__import__('pathlib').Path(sys.argv[1])), h, progress=lambda m: None)\n"
        "print(r.rows, time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", script, tmp], cwd=ROOT, check=True, capture_output=True, text=True)
        total = time.perf_counter() - started
    trained_rows, seconds = done.stdout.split()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "rows": int(trained_rows),
        "train_seconds": round(float(seconds), 1),
        "with_data_seconds": round(total, 1),
        "peak_rss_mib": round(peak),
        "models": 12,
    }


def play_strength(data_dir: Path, store: Path, games: int = 600) -> dict[str, Any]:
    """Simulated human-like players (a population the models did not train on: seed 99) through the protocol."""
    from server.simulate import simulate

    server = Server(data_dir, store, {"RPSQUEST_RATE_LIMIT": "0"})
    try:
        report = asyncio.run(simulate(server.ws_url, games, concurrency=32, seed=99, rate=0))
    finally:
        server.stop()
    import sqlite3

    with sqlite3.connect(data_dir / "rpsquest.db") as db:
        rows = db.execute("SELECT opponent, winner, COUNT(*) FROM games WHERE state = 'over' GROUP BY 1, 2").fetchall()
    by: dict[str, Counter[str]] = {o.id: Counter() for o in OPPONENTS}
    for opponent, winner, n in rows:
        by[opponent][winner] += n
    return {
        "games": report.games,
        "violations": len(report.violations),
        "bot_win_rate": {o: round(c["bot"] / max(1, sum(c.values())), 3) for o, c in by.items()},
        "games_by_opponent": {o: sum(c.values()) for o, c in by.items()},
    }


def people(data_dir: Path) -> dict[str, Any]:
    """`rpsquest evaluate` on the 36 wxz2014 players never used in training."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "evaluate",
            "--data-dir",
            str(data_dir),
            "--json",
            "--data",
            str(ROOT / "datasets" / "wxz2014-holdout.csv"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(done.stdout)
    rows = {"online": report["online"]}
    for family, aliases in report["families"].items():
        for alias, entry in aliases.items():
            rows[f"{family} {alias} {entry['version']}"] = entry["model"]
            rows[f"{family} {alias} {entry['version']} + online"] = entry["blend"]
    return rows

"""Benchmarks of the models: inference per round, training on 100,000 rounds, play strength, accuracy on people."""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, Server, percentiles
from clients.simulate import simulate
from engine.features import FeatureTracker
from engine.opponents import FAMILIES, OPPONENTS
from engine.predictor import Priors
from engine.rules import Game, outcome
from inference.pool import ModelPool
from inference.store import LocalStore
from storage.history import winners_by_opponent
from trainer.config import load_config
from trainer.cycle import RECORDED, VALID_SHARE
from trainer.datasets import FIRST_LABEL_ROUND, History, examples, fit_priors, histories_from_csv, split_groups
from trainer.evaluate import EARLY_LAST_ROUND, model_scores, play
from trainer.families import fit

SHIFT_STRENGTHS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
BLOCKS = 5  # interleaved blocks of the inference section
BATCH = 16  # rounds predicted together in the inference section, as in one busy event-loop turn


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
    """All four aliases of a family predicting one round (what the server does each round), and features.

    The families take turns in BLOCKS interleaved blocks, so a noisy stretch of the machine (this VM's
    single-thread speed swings by up to 2x for seconds at a time) falls on all of them alike; each figure
    gives every block's median beside the percentiles over all blocks.
    """
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
    blocks: dict[str, list[list[float]]] = defaultdict(list)
    for _ in range(BLOCKS):
        for family in FAMILIES:
            version = pool.serving(family, "Production")
            assert version is not None
            for batch in (1, BATCH):  # one round alone; a turn of the event loop deciding BATCH games' rounds
                rows = np.tile(x, (batch, 1))
                times = []
                for _ in range(rounds // BLOCKS // batch):
                    t = time.perf_counter()
                    pool.predict_all(family, "Production", version, rows)
                    times.append((time.perf_counter() - t) / batch)
                name = f"{family}_all_aliases_us" if batch == 1 else f"{family}_all_aliases_per_round_in_{batch}_us"
                blocks[name].append(times)
    for name, measured in blocks.items():
        every = [t for block in measured for t in block]
        out[name] = {**percentiles(every), "p50_by_block": [round(float(np.median(b)) * 1e6, 1) for b in measured]}
    return out


def training(rows: int = 100_000) -> dict[str, Any]:
    """Train every configuration of every family on about `rows` rounds, in a child process: time and peak RSS."""
    script = (
        "import time, sys\n"
        "from trainer.coldstart import simulated_histories\n"
        "from trainer.cycle import gather, train_cycle\n"
        "from inference.store import LocalStore\n"
        "from storage.lifecycle import Lifecycle\n"
        f"h = gather(None, simulated_histories({rows // 14}, 1))\n"
        "t = time.perf_counter()\n"
        "root = __import__('pathlib').Path(sys.argv[1])\n"
        "r = train_cycle(LocalStore(root), h, lifecycle=Lifecycle(root / 'rpsquest.db'), progress=lambda m: None)\n"
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


def play_strength(data_dir: Path, store: Path, games: int = 3000) -> dict[str, Any]:
    """Simulated human-like players (a population the models did not train on: seed 99) through the protocol, with
    each opponent's win rate and its standard error."""
    server = Server(data_dir, store, {"RPSQUEST_RATE_LIMIT": "0"})
    try:
        report = asyncio.run(simulate(server.ws_url, games, concurrency=32, seed=99, rate=0))
    finally:
        server.stop()
    rows = winners_by_opponent(data_dir / "rpsquest.db")
    by: dict[str, Counter[str]] = {o.id: Counter() for o in OPPONENTS}
    for opponent, winner, n in rows:
        by[opponent][winner] += n
    return {
        "games": report.games,
        "violations": len(report.violations),
        "bot_win_rate": {o: round(c["bot"] / max(1, sum(c.values())), 3) for o, c in by.items()},
        "standard_error": {o: round(_binomial_se(c["bot"], sum(c.values())), 3) for o, c in by.items()},
        "games_by_opponent": {o: sum(c.values()) for o, c in by.items()},
    }


def _binomial_se(successes: int, n: int) -> float:
    p = successes / max(1, n)
    return float(np.sqrt(p * (1 - p) / max(1, n)))


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


def _constant(histories: list[History], move: int) -> float:
    """Top-1 on rounds 4-30 of always predicting `move`."""
    hits = [r.player == move for h in histories for r in h.rounds[FIRST_LABEL_ROUND - 1 : EARLY_LAST_ROUND]]
    return sum(hits) / len(hits)


def _shift_baseline(histories: list[History], priors: Priors, strength: float) -> tuple[float, float]:
    """Top-1 and log loss on rounds 4-30 of datasets/README.md's best baseline: per player, Dirichlet counts of
    stay / up / down given the last outcome, starting from `strength` times the population's shares."""
    hits, losses = [], []
    for h in histories:
        counts = strength * np.array(priors.shift)
        for before, played in itertools.pairwise(h.rounds[:EARLY_LAST_ROUND]):
            last, change = outcome(before.player, before.bot), (played.player - before.player) % 3
            if played.number >= FIRST_LABEL_ROUND:
                p = counts[last] / counts[last].sum()
                hits.append(float(np.argmax(p) == change))
                losses.append(float(-np.log(p[change])))
            counts[last, change] += 1
    return float(np.mean(hits)), float(np.mean(losses))


def _shift_strength(train: list[History]) -> float:
    """The baseline's prior strength with the least log loss on the training players, each scored with priors fitted
    on the others (top-1 on their 972 rounds is too noisy to choose by)."""
    others = [([h], fit_priors([o for o in train if o is not h])) for h in train]
    return min(SHIFT_STRENGTHS, key=lambda s: sum(_shift_baseline(h, priors, s)[1] for h, priors in others))


def _split(train: list[History], test: list[History], seed: int) -> tuple[dict[str, float], float]:
    """Top-1 on the test players' rounds 4-30 of every predictor fitted on `train` only, and the baseline's strength."""
    priors = fit_priors(train)
    strength = _shift_strength(train)
    scores = {
        "most frequent move": _constant(test, int(np.argmax(priors.move))),
        "stay/up/down given outcome": _shift_baseline(test, priors, strength)[0],
        "online": play(test, None, seed, priors)[0].summary()["accuracy_4_30"],
    }
    data = examples(train)
    fit_mask, valid_mask = split_groups(data.group, VALID_SHARE, seed)
    fit_set, valid_set = data.take(np.where(fit_mask)[0]), data.take(np.where(valid_mask)[0])
    x = examples(test).x
    config = load_config()[1]
    for family in FAMILIES:
        probs = fit(family, config[family]["Production"], fit_set, valid_set, seed).predict(x)
        blend = play(test, probs, seed, priors)[1]
        assert blend is not None
        scores[family] = model_scores(test, probs, seed).summary()["accuracy_4_30"]
        scores[f"{family} + online"] = blend.summary()["accuracy_4_30"]
    return scores, strength


def people_splits(splits: int = 10, seed: int = 0) -> dict[str, Any]:
    """datasets/README.md's protocol: fit on a random half of the 72 wxz2014 players, score the other half's rounds
    4-30; top-1 of each split, with the mean and standard error over splits. The population priors, the baselines
    and the models are fitted on the training half only."""
    histories = histories_from_csv(RECORDED)
    players = sorted({h.player for h in histories})
    rng = np.random.default_rng(seed)
    by_name: dict[str, list[float]] = defaultdict(list)
    strengths = []
    for k in range(splits):
        held = set(rng.permutation(players)[: len(players) // 2].tolist())
        train = [h for h in histories if h.player not in held]
        test = [replace(h, rounds=h.rounds[:EARLY_LAST_ROUND]) for h in histories if h.player in held]
        scores, strength = _split(train, test, seed + k)
        strengths.append(strength)
        for name, accuracy in scores.items():
            by_name[name].append(accuracy)

    def stats(name: str) -> dict[str, Any]:
        a = np.array(by_name[name])
        return {"mean": round(float(a.mean()), 4), "se": round(float(a.std(ddof=1) / np.sqrt(len(a))), 4),
                "per_split": [round(float(v), 4) for v in a]}  # fmt: skip

    return {
        "splits": splits,
        "players_per_half": len(players) // 2,
        "models": "Production configurations, trained on the training half's recorded play only (no simulated"
        " players: their personas centre on the shipped priors, fitted on groups 01-06)",
        "baseline_strength": strengths,
        "baselines": {n: stats(n) for n in ("most frequent move", "stay/up/down given outcome")},
        "online": stats("online"),
        "families": {n: stats(n) for f in FAMILIES for n in (f, f"{f} + online")},
    }

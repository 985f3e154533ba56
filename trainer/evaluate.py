"""Offline evaluation on recorded human play: every alias of every family, the online predictor
and the blend of both, as the server plays them.

For each predictor: top-1 accuracy and log loss on every labelled round (4 on) and on
rounds 4-30 (the length of a game to 10 points), and the EV bot's net score (wins minus
losses per round) and share of rounds won against the recorded moves, which do not react
to it: an estimate of how it would fare against these people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.policy import decide
from engine.predictor import SHIPPED_PRIORS, OnlinePredictor, Priors
from engine.rules import LOSE, WIN, outcome
from inference.pool import ModelRejected, load_model
from inference.store import ModelStore, read_manifest
from trainer.datasets import FIRST_LABEL_ROUND, DataError, History, examples, histories_from_csv

EARLY_LAST_ROUND = 30


@dataclass
class Scores:
    hits: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    net: list[float] = field(default_factory=list)
    early: list[bool] = field(default_factory=list)

    def add(self, p: np.ndarray, truth: int, net: int, round_number: int) -> None:
        self.hits.append(float(np.argmax(p) == truth))
        self.losses.append(float(-np.log(max(float(p[truth]), 1e-12))))
        self.net.append(float(net))
        self.early.append(round_number <= EARLY_LAST_ROUND)

    def summary(self) -> dict[str, float]:
        hits, losses, net, early = (np.array(a) for a in (self.hits, self.losses, self.net, self.early))
        return {
            "accuracy": round(float(hits.mean()), 4),
            "accuracy_4_30": round(float(hits[early].mean()), 4),
            "log_loss": round(float(losses.mean()), 4),
            "log_loss_4_30": round(float(losses[early].mean()), 4),
            "net_score": round(float(net.mean()), 4),
            "net_score_4_30": round(float(net[early].mean()), 4),
            "bot_round_win_rate": round(float((net > 0).mean()), 4),
            "bot_round_win_rate_4_30": round(float((net[early] > 0).mean()), 4),
            "rounds": len(hits),
            "rounds_4_30": int(early.sum()),
        }


def _net(p: np.ndarray, history: History, index: int, rng: random.Random) -> int:
    """+1 when the EV bot playing on `p` beats the recorded move, -1 when it loses, 0 on a draw."""
    played = history.rounds[index]
    before = history.rounds[index - 1]
    bot = decide(p, played.values, before.score_player, before.score_bot, rng, guard=False).move
    result = outcome(played.player, bot)  # from the player's view
    return -1 if result == WIN else (1 if result == LOSE else 0)


def play(
    histories: list[History], model_probs: np.ndarray | None, seed: int, priors: Priors = SHIPPED_PRIORS
) -> tuple[Scores, Scores | None]:
    """Scores of the online predictor alone, and of its blend with `model_probs` (one row per labelled round)."""
    rng = random.Random(seed)
    online, blend = Scores(), (Scores() if model_probs is not None else None)
    row = 0
    for h in histories:
        alone, mixed = OnlinePredictor(priors=priors), OnlinePredictor(priors=priors)  # as in a new Bot
        for i, played in enumerate(h.rounds):
            model = None
            if i >= FIRST_LABEL_ROUND - 1:
                p = alone.predict(played.values)
                online.add(p, played.player, _net(p, h, i, rng), played.number)
                if blend is not None and model_probs is not None:
                    model = model_probs[row]
                    q = mixed.predict(played.values, model)
                    blend.add(q, played.player, _net(q, h, i, rng), played.number)
                row += 1
            alone.observe(played)
            mixed.observe(played, model)
    return online, blend


def model_scores(histories: list[History], probs: np.ndarray, seed: int) -> Scores:
    rng = random.Random(seed)
    scores = Scores()
    row = 0
    for h in histories:
        for i in range(FIRST_LABEL_ROUND - 1, len(h.rounds)):
            p = probs[row]
            scores.add(p, h.rounds[i].player, _net(p, h, i, rng), h.rounds[i].number)
            row += 1
    return scores


def evaluate(store: ModelStore, path: Path, seed: int = 0) -> dict[str, Any]:
    """Every predictor's scores on the recorded play in `path` (CSV of protocol.md)."""
    histories = histories_from_csv(path)
    data = examples(histories)
    if len(data) == 0:
        raise DataError(f"{path}: no round 4 or later to predict (every game needs at least 4 rounds)")
    online, _ = play(histories, None, seed)
    report: dict[str, Any] = {"data": str(path), "players": len({h.player for h in histories}),
                              "online": online.summary(), "families": {}}  # fmt: skip
    manifest = read_manifest(store) or {"families": {}}
    for family, aliases in manifest["families"].items():
        report["families"][family] = {}
        for alias, version in aliases.items():
            try:
                model = load_model(store, family, version)
            except ModelRejected as exc:
                report["families"][family][alias] = {"version": version, "error": str(exc)}
                continue
            probs = model.predict(data.x)
            _, blend = play(histories, probs, seed)
            assert blend is not None
            report["families"][family][alias] = {
                "version": version,
                "model": model_scores(histories, probs, seed).summary(),
                "blend": blend.summary(),
            }
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of the report."""
    head = f"{'predictor':34} {'acc':>6} {'acc4-30':>8} {'logloss':>8} {'net':>7} {'net4-30':>8} {'bot wins':>9}"
    lines = [f"{report['data']}: {report['players']} players, {report['online']['rounds']} rounds from round 4", head]

    def row(name: str, s: dict[str, float]) -> str:
        return (f"{name:34} {s['accuracy']:6.3f} {s['accuracy_4_30']:8.3f} {s['log_loss']:8.3f}"
                f" {s['net_score']:7.3f} {s['net_score_4_30']:8.3f} {s['bot_round_win_rate']:9.3f}")  # fmt: skip

    lines.append(row("online predictor", report["online"]))
    for family, aliases in report["families"].items():
        for alias, entry in aliases.items():
            if "error" in entry:
                lines.append(f"{family} {alias} {entry['version']}: refused ({entry['error']})")
                continue
            lines.append(row(f"{family} {alias} {entry['version']}", entry["model"]))
            lines.append(row(f"{family} {alias} {entry['version']} + online", entry["blend"]))
    return "\n".join(lines)

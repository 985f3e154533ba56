"""Training and evaluation data: game histories from the database or from recorded-play CSV files.

Every example is built by the engine's feature function (contract v1), the same one the
server calls: rounds 1-3 of a game are history only, every round from 4 on is a
labelled example (the player's move).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.features import FIRST_MODEL_ROUND, N_FEATURES, FeatureTracker
from engine.predictor import Priors
from engine.rules import MOVE_INDEX, Round, Values, outcome, points
from storage.database import Database
from storage.history import played_games

FIRST_LABEL_ROUND = FIRST_MODEL_ROUND
SOURCE_WEIGHTS: dict[str, float] = {"human": 1.0, "recorded": 1.0, "sim": 0.3, "loadtest": 0.0}
_VALUE_COLUMNS = ("rock_value", "paper_value", "scissors_value")


class DataError(ValueError):
    """A data file that cannot be read as recorded play."""


@dataclass
class History:
    """One player's rounds against one opponent, in order."""

    key: str
    source: str
    rounds: list[Round]
    times: list[float] = field(default_factory=list)
    player: str = ""


@dataclass
class Dataset:
    """Examples as arrays; `group` keeps every game on one side of any split."""

    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    group: np.ndarray
    time: np.ndarray
    round: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: np.ndarray) -> Dataset:
        return Dataset(self.x[index], self.y[index], self.weight[index], self.group[index], self.time[index],
                       self.round[index])  # fmt: skip

    @staticmethod
    def concat(parts: Sequence[Dataset]) -> Dataset:
        return Dataset(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("x", "y", "weight", "group", "time", "round")))  # fmt: skip


def examples(histories: Iterable[History], first_round: int = FIRST_LABEL_ROUND) -> Dataset:
    """Labelled examples of every round from `first_round` on, weighted by source."""
    xs: list[np.ndarray] = []
    ys: list[int] = []
    weights: list[float] = []
    groups: list[str] = []
    times: list[float] = []
    rounds: list[int] = []
    for h in histories:
        w = SOURCE_WEIGHTS.get(h.source, 1.0)
        if w <= 0:
            continue
        tracker = FeatureTracker()
        for i, r in enumerate(h.rounds):
            if i >= first_round - 1:
                xs.append(tracker.vector(r.values))
                ys.append(r.player)
                weights.append(w)
                groups.append(h.key)
                times.append(h.times[i] if h.times else 0.0)  # recorded and simulated play has no time
                rounds.append(r.number)
            tracker.add(r)
    return Dataset(
        x=np.stack(xs) if xs else np.zeros((0, N_FEATURES), np.float32),
        y=np.array(ys, dtype=np.int64),
        weight=np.array(weights, dtype=np.float32),
        group=np.array(groups, dtype=object),
        time=np.array(times, dtype=np.float64),
        round=np.array(rounds, dtype=np.int32),
    )


def fit_priors(histories: Iterable[History]) -> Priors:
    """The online predictor's population priors from these players' rounds: shift given the last outcome, moves, and
    shift given the outcome before, the last shift and the last outcome (a context never seen: its outcome's row)."""
    shift = np.zeros((3, 3))
    context = np.zeros((3, 3, 3, 3))
    moves = np.zeros(3)
    for h in histories:
        for before, played in itertools.pairwise(h.rounds):
            shift[outcome(before.player, before.bot), (played.player - before.player) % 3] += 1
        for first, before, played in zip(h.rounds, h.rounds[1:], h.rounds[2:], strict=False):
            last_shift, change = (before.player - first.player) % 3, (played.player - before.player) % 3
            context[outcome(first.player, first.bot), last_shift, outcome(before.player, before.bot), change] += 1
        for r in h.rounds:
            moves[r.player] += 1
    if (shift.sum(axis=1) == 0).any():
        raise DataError("too few rounds to fit priors: some outcome is never followed by a move")
    shift /= shift.sum(axis=1, keepdims=True)
    seen = context.sum(axis=3, keepdims=True)
    context = np.where(seen > 0, context / np.maximum(seen, 1), shift[None, None])
    moves /= moves.sum()
    return Priors(shift=_triples(shift), move=_triples(moves[None])[0], context=_triples(context.reshape(27, 3)))


def _triples(rows: np.ndarray) -> tuple[tuple[float, float, float], ...]:
    """Rows of three probabilities as plain floats (the Priors' format)."""
    return tuple((float(a), float(b), float(c)) for a, b, c in rows)


def _scored(moves: Sequence[tuple[int, int, Values]]) -> list[Round]:
    """Rounds with scores by the rules, from (player, bot, values) in order."""
    out: list[Round] = []
    score_player = score_bot = 0
    for number, (player, bot, values) in enumerate(moves, start=1):
        gained_player, gained_bot = points(values, player, bot)
        score_player += gained_player
        score_bot += gained_bot
        out.append(Round(number, values, player, bot, score_player, score_bot))
    return out


def histories_from_db(db: Database, since: float = 0.0) -> Iterator[History]:
    """Every game with rounds in the database `db` that may train (load tests never do), oldest first."""
    for game in played_games(db, since):
        yield History(key=game.id, source=game.tag, rounds=game.rounds, times=game.times, player=game.player)


def histories_from_csv(path: Path) -> list[History]:
    """Recorded play: header player_id,game_id,round,move,opp_move[,rock_value,paper_value,scissors_value].

    Each (player_id, game_id) is one history ordered by round; values default to 1.0.
    Scores follow the rules and keep adding up if the recording runs past 10 points.
    """
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = {"player_id", "game_id", "round", "move", "opp_move"} - set(reader.fieldnames or [])
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            has_values = all(c in (reader.fieldnames or []) for c in _VALUE_COLUMNS)
            grouped: dict[tuple[str, str], list[tuple[int, int, int, Values]]] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    values = tuple(round(float(row[c]) * 10) for c in _VALUE_COLUMNS) if has_values else (10, 10, 10)
                    grouped.setdefault((row["player_id"], row["game_id"]), []).append(
                        (int(row["round"]), MOVE_INDEX[row["move"]], MOVE_INDEX[row["opp_move"]], values)  # type: ignore[arg-type]
                    )
                except (KeyError, ValueError, TypeError, OverflowError) as exc:
                    raise DataError(f"{path}:{line}: cannot read this row ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    histories = []
    for (player, game), rows in grouped.items():
        rows.sort()
        rounds = _scored([(m, o, v) for _, m, o, v in rows])
        histories.append(History(key=f"{player}/{game}", source="recorded", rounds=rounds, player=player))
    return histories


def split_groups(groups: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, held out) with every group wholly on one side."""
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(unique, size=max(1, round(len(unique) * holdout)), replace=False).tolist())
    mask = np.array([g in held for g in groups])
    return ~mask, mask


def chronological_split(dataset: Dataset, holdout: float) -> tuple[np.ndarray, np.ndarray]:
    """Masks (earlier, latest) where the latest games by start time make up about `holdout` of the rows."""
    first_seen: dict[object, float] = {}
    for g, t in zip(dataset.group, dataset.time, strict=True):
        first_seen[g] = min(t, first_seen.get(g, t))
    order = sorted(first_seen, key=lambda g: first_seen[g])
    cut = set(order[int(len(order) * (1.0 - holdout)) :])
    late = np.array([g in cut for g in dataset.group])
    return ~late, late

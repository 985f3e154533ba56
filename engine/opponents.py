"""The three opponents of game.md and their model families."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Opponent:
    id: str
    name: str
    family: str


OPPONENTS: tuple[Opponent, ...] = (
    Opponent("brian", "Brian", "mlp"),
    Opponent("forrest", "Forrest", "xgboost"),
    Opponent("logan", "Logan", "logistic"),
)
OPPONENT_BY_ID: dict[str, Opponent] = {o.id: o for o in OPPONENTS}
FAMILIES: tuple[str, ...] = tuple(o.family for o in OPPONENTS)
ALIASES: tuple[str, ...] = ("Production", "B", "shadow1", "shadow2")
SERVING_ALIASES: tuple[str, ...] = ("Production", "B")

"""The ten scripted openings of rounds 1-3 named by game.md, drawn by weight.

The bot does not play them: measured against people-like players and simulated personas, the bot's
own policy does better in rounds 1-3 (docs/bot.md, `python -m bench openings`, which plays them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from engine.rules import Values, ranked

OPENING_ROUNDS = 3
_RANK = {"H": 0, "M": 1, "L": 2}


@dataclass(frozen=True, slots=True)
class Opening:
    name: str
    weight: int
    ranks: str

    def move(self, round_number: int, values: Values) -> int:
        """The bot's move in `round_number` (1-3): the move of the named value rank."""
        return ranked(values)[_RANK[self.ranks[round_number - 1]]]


OPENINGS: tuple[Opening, ...] = (
    Opening("crescendo", 14, "LMH"),
    Opening("denouement", 12, "HML"),
    Opening("paper-dolls", 12, "LMM"),
    Opening("fistful-of-dollars", 10, "HLL"),
    Opening("scissor-sandwich", 8, "LML"),
    Opening("bureaucrat", 6, "LLL"),
    Opening("avalanche", 8, "HHH"),
    Opening("toolbox", 6, "MMM"),
    Opening("razor", 12, "MLH"),
    Opening("switchblade", 12, "MHL"),
)
OPENING_BY_NAME: dict[str, Opening] = {o.name: o for o in OPENINGS}


def draw_opening(rng: random.Random) -> Opening:
    """One opening, chosen with probability proportional to its weight."""
    return rng.choices(OPENINGS, weights=[o.weight for o in OPENINGS])[0]

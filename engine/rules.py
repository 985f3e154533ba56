"""The rules of game.md: moves, round values, scoring and the end of a game.

Moves are ints (0 rock, 1 paper, 2 scissors); outcomes are from the player's view
(0 win, 1 lose, 2 draw); values and scores are integer tenths of a point.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

MOVES: tuple[str, str, str] = ("rock", "paper", "scissors")
MOVE_INDEX: dict[str, int] = {name: i for i, name in enumerate(MOVES)}
OUTCOMES: tuple[str, str, str] = ("win", "lose", "draw")
WIN, LOSE, DRAW = 0, 1, 2
TARGET = 100
DRAW_POINTS = 5
MAX_ROUNDS = 20
_BASES = (11, 12, 13, 14, 15)
VALUE_KINDS = 3 * len(_BASES)  # distinct round values: the low move's place times the middle move's base

Values = tuple[int, int, int]


def prey(move: int) -> int:
    """The move that `move` beats."""
    return (move + 2) % 3


def hunter(move: int) -> int:
    """The move that beats `move`."""
    return (move + 1) % 3


def outcome(player: int, bot: int) -> int:
    """WIN, LOSE or DRAW for the player."""
    if player == bot:
        return DRAW
    return WIN if prey(player) == bot else LOSE


def _digest_index(text: str, modulus: int) -> int:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[0:2], "big") % modulus


@lru_cache(maxsize=65536)
def round_values(game_id: str, round_number: int) -> Values:
    """Each move's value in tenths for round `round_number` (1-based) of game `game_id`."""
    low = _digest_index(f"{game_id}:{round_number}:low", 3)
    base = _BASES[_digest_index(f"{game_id}:{round_number}:base", len(_BASES))]
    values = [0, 0, 0]
    values[low] = 10
    values[prey(low)] = base + 5
    values[hunter(low)] = base
    return (values[0], values[1], values[2])


def possible_values(values: Values) -> bool:
    """Whether some round can have `values`: low 1.0, the move it beats base + 0.5, the other base."""
    if values.count(10) != 1:
        return False
    low = values.index(10)
    return values[hunter(low)] in _BASES and values[prey(low)] == values[hunter(low)] + 5


def ranked(values: Values) -> tuple[int, int, int]:
    """The moves ordered (high, middle, low) by value."""
    low = values.index(10)
    return (prey(low), hunter(low), low)


def points(values: Values, player: int, bot: int) -> tuple[int, int]:
    """What (player, bot) gain in a round, in tenths."""
    result = outcome(player, bot)
    if result == WIN:
        return values[player], 0
    if result == LOSE:
        return 0, values[bot]
    return DRAW_POINTS, DRAW_POINTS


def winner(score_player: int, score_bot: int) -> str | None:
    """ "player", "bot" or "tie" once a side has reached the target, else None."""
    if max(score_player, score_bot) < TARGET:
        return None
    if score_player == score_bot:
        return "tie"
    return "player" if score_player > score_bot else "bot"


@dataclass(frozen=True, slots=True)
class Round:
    """One played round."""

    number: int
    values: Values
    player: int
    bot: int
    score_player: int
    score_bot: int

    @property
    def outcome(self) -> int:
        return outcome(self.player, self.bot)

    @property
    def points(self) -> tuple[int, int]:
        return points(self.values, self.player, self.bot)


class Game:
    """The state of one game: its rounds, the score and whether it is over."""

    def __init__(self, game_id: str, rounds: tuple[Round, ...] | list[Round] = ()) -> None:
        self.game_id = game_id
        self.rounds: list[Round] = []
        for r in rounds:
            self.play(r.player, r.bot)

    @property
    def score(self) -> tuple[int, int]:
        if not self.rounds:
            return 0, 0
        last = self.rounds[-1]
        return last.score_player, last.score_bot

    @property
    def winner(self) -> str | None:
        return winner(*self.score)

    @property
    def over(self) -> bool:
        return self.winner is not None

    @property
    def next_round(self) -> int | None:
        """The number of the open round, or None when the game is over."""
        return None if self.over else len(self.rounds) + 1

    def values(self, round_number: int) -> Values:
        return round_values(self.game_id, round_number)

    def play(self, player: int, bot: int) -> Round:
        """Play the open round; raises ValueError when the game is over."""
        number = self.next_round
        if number is None:
            raise ValueError("the game is over")
        values = self.values(number)
        gained_player, gained_bot = points(values, player, bot)
        score_player, score_bot = self.score
        played = Round(number, values, player, bot, score_player + gained_player, score_bot + gained_bot)
        self.rounds.append(played)
        return played

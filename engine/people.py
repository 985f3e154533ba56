"""People-like players built from real people's response tables, and the table bots that play them.

A response table is a player's P(next move | own last move, last outcome) (nine rows, row
3 * last move + last outcome, outcomes from the player's view) with P(first move). A person's
table is their own counts smoothed to the population's table (a Dirichlet prior of SMOOTHING
pseudo-rounds per row), so a row they rarely reached stays near what people do there.

`TablePlayer` plays a table as a player (it ignores the round values, as the recorded people
never saw any). `TableBot` is the bot that knows a table: each round it plays the move with the
highest expected value under it (policy.payoff_matrix, ties to the first move): with the
population's table it is the plain bot, with the person's own table the oracle.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.policy import payoff_matrix
from engine.rules import Game, Round, Values, outcome

Triple = tuple[float, float, float]
SMOOTHING = 10.0  # pseudo-rounds of the population's row added to each row of a person's counts


@dataclass(frozen=True, slots=True)
class Counts:
    """A player's (or a population's) rounds: first moves, and next moves by (own last move, last outcome)."""

    first: tuple[int, int, int]
    rows: tuple[tuple[int, int, int], ...]  # 9 rows, 3 * last move + last outcome


@dataclass(frozen=True, slots=True)
class ResponseTable:
    """P(first move) and P(next move | own last move, last outcome)."""

    first: Triple
    rows: tuple[Triple, ...]  # 9 rows, 3 * last move + last outcome

    def distribution(self, history: Sequence[Round]) -> Triple:
        """P(rock, paper, scissors) for the player's next move after `history` (the player's view)."""
        if not history:
            return self.first
        last = history[-1]
        return self.rows[3 * last.player + outcome(last.player, last.bot)]


def count(games: Iterable[Sequence[Round]]) -> Counts:
    """The counts of the player's moves in `games` (each a sequence of rounds, the player's view)."""
    first = np.zeros(3, dtype=int)
    rows = np.zeros((9, 3), dtype=int)
    for rounds in games:
        if rounds:
            first[rounds[0].player] += 1
        for before, played in itertools.pairwise(rounds):
            rows[3 * before.player + outcome(before.player, before.bot), played.player] += 1
    return Counts(_ints(first), tuple(_ints(r) for r in rows))


def _ints(a: np.ndarray) -> tuple[int, int, int]:
    return (int(a[0]), int(a[1]), int(a[2]))


def _share(counts: Sequence[float]) -> Triple:
    total = float(sum(counts))
    return (counts[0] / total, counts[1] / total, counts[2] / total)


def population_table(counts: Counts) -> ResponseTable:
    """The population's table from everyone's counts added up; P(first move) is the share of all moves
    (a handful of first rounds say little)."""
    moves = np.sum(counts.rows, axis=0)
    if min(sum(row) for row in counts.rows) == 0:
        raise ValueError("some (last move, outcome) was never followed by a move: too few rounds")
    return ResponseTable(_share(moves), tuple(_share(row) for row in counts.rows))


def smoothed(counts: Counts, population: ResponseTable, strength: float = SMOOTHING) -> ResponseTable:
    """A person's table: each row's counts plus `strength` pseudo-rounds of the population's row.

    P(first move) is the person's share of all moves, smoothed the same way to the population's first row.
    """
    moves = np.sum(counts.rows, axis=0)

    def blend(seen: Sequence[int], prior: Triple) -> Triple:
        return _share([seen[k] + strength * prior[k] for k in range(3)])

    return ResponseTable(
        blend(_ints(moves), population.first),
        tuple(blend(row, prior) for row, prior in zip(counts.rows, population.rows, strict=True)),
    )


class TablePlayer:
    """A people-like player: draws each move from its table with its own random source."""

    def __init__(self, table: ResponseTable, rng: random.Random) -> None:
        self.table = table
        self.rng = rng

    def move(self, history: Sequence[Round], values: Values) -> int:
        """The next move (the values do not matter to it: the recorded people never saw any)."""
        return self.rng.choices(range(3), weights=self.table.distribution(history))[0]


def best_move(p: Triple, values: Values, score_player: int, score_bot: int) -> int:
    """The bot's move with the highest expected value against P(player's move) `p`; ties go to the first."""
    return int(np.argmax(payoff_matrix(values, score_player, score_bot) @ np.asarray(p)))


class TableBot:
    """A bot that predicts the player by a fixed response table and plays the best expected value."""

    def __init__(self, table: ResponseTable) -> None:
        self.table = table

    def choose(self, game: Game) -> int:
        number = game.next_round
        if number is None:
            raise ValueError("the game is over")
        return best_move(self.table.distribution(game.rounds), game.values(number), *game.score)

    def observe(self, played: Round) -> None:
        """A fixed table learns nothing."""


class Player(Protocol):
    def move(self, history: list[Round], values: Values) -> int: ...


class OfflineBot(Protocol):
    def choose(self, game: Game) -> int: ...

    def observe(self, played: Round) -> None: ...


def play(game_id: str, player: Player, bot: OfflineBot) -> Game:
    """One whole game by the rules, offline: the bot chooses first, then the player moves."""
    game = Game(game_id)
    while (number := game.next_round) is not None:
        bot_move = bot.choose(game)
        played = game.play(player.move(game.rounds, game.values(number)), bot_move)
        bot.observe(played)
    return game

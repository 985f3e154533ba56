"""What storage keeps for a game: plain structs shared by the game service and every storage backend."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from engine.features import FIRST_MODEL_ROUND
from engine.rules import MOVES, Round


class ModelPrediction(msgspec.Struct, frozen=True, gc=False):
    """One alias's prediction of the player's move in a round, by the version that made it."""

    version: str
    probs: tuple[float, float, float]


class Decision(msgspec.Struct, frozen=True, gc=False):
    """The bot's committed choice for a round, fixed when the round opens."""

    round: int
    bot_move: int
    nonce: str
    source: str
    probs: tuple[float, float, float]
    ev: tuple[float, float, float]
    features: bytes
    models: dict[str, ModelPrediction] = {}  # every alias that predicted this round (from round 4)


class RoundRecord(msgspec.Struct, frozen=True, gc=False):
    """A played round: the decision that opened it and the player's answer."""

    decision: Decision
    values: tuple[int, int, int]
    player_move: int
    score_player: int
    score_bot: int
    created: float

    def as_round(self) -> Round:
        """The engine's view of this round."""
        return Round(self.decision.round, self.values, self.player_move, self.decision.bot_move, self.score_player,
                     self.score_bot)  # fmt: skip


class GameRecord(msgspec.Struct):
    """A game with its rounds and its open round's decision (None once over)."""

    id: str
    opponent: str
    family: str
    alias: str
    version: str
    opening: str
    tag: str
    player: str | None
    token_hash: str
    created: float
    updated: float
    rounds: list[RoundRecord] = []
    pending: Decision | None = None
    abandoned: bool = False
    key_hash: str | None = None  # the SHA-256 of a returning player's key (never the key itself)


class OpponentStats(msgspec.Struct, frozen=True):
    opponent: str
    games: int
    bot_wins: int


class VersionStats(msgspec.Struct, frozen=True):
    """Live figures of one version as one alias: its rounds' predictions by kind (`blend`: the probabilities
    the bot used in the games the version served as this alias; `model`: the version's own probabilities),
    how many of them put the player's move on top, and the finished games it served as this alias."""

    family: str
    alias: str
    version: str
    predictions: dict[str, int] = {}  # kind -> rounds predicted (from round 4)
    correct: dict[str, int] = {}  # kind -> of those, the ones whose most likely move was the player's
    games: int = 0
    bot_wins: int = 0


# A returning player's last finished games (before a moment), oldest first, with their rounds: one query on the
# games_key index. Parameters: key hash, before, how many games. Rows as `memory_games` reads them.
MEMORY_SQL = (
    "SELECT r.game_id, r.round, r.rock_value, r.paper_value, r.scissors_value, r.player_move, r.bot_move,"
    " r.score_player, r.score_bot FROM (SELECT id, finished FROM games WHERE key_hash = ? AND state = 'over'"
    " AND finished < ? ORDER BY finished DESC LIMIT ?) g JOIN rounds r ON r.game_id = g.id"
    " ORDER BY g.finished, g.id, r.round"
)


def memory_games(rows: Iterable[tuple[Any, ...]]) -> list[list[Round]]:
    """MEMORY_SQL's rows as the engine's rounds, one list per game."""
    games: dict[str, list[Round]] = {}
    for game_id, number, rock, paper, scissors, player, bot, score_player, score_bot in rows:
        games.setdefault(game_id, []).append(
            Round(number, (rock, paper, scissors), MOVES.index(player), MOVES.index(bot), score_player, score_bot)
        )
    return list(games.values())


def top_move(probs: tuple[float, float, float]) -> int:
    """The most likely move of a prediction (the first of equals): a prediction is correct when it is the player's."""
    a, b, c = probs
    return 0 if a >= b and a >= c else 1 if b >= c else 2


def prediction_counts(game: GameRecord, played: RoundRecord) -> list[tuple[str, str, str, str, str, bool]]:
    """What a played round adds to the live totals: (family, alias, version, kind, tag, correct) per prediction;
    none before the models' first round (4)."""
    d, move = played.decision, played.player_move
    if d.round < FIRST_MODEL_ROUND:
        return []
    counted = [(game.family, game.alias, game.version, "blend", game.tag, top_move(d.probs) == move)]
    for alias, m in d.models.items():
        counted.append((game.family, alias, m.version, "model", game.tag, top_move(m.probs) == move))
    return counted


class LedgerEntry(msgspec.Struct, frozen=True):
    """One promotion decision, "no change" included, with its numbers."""

    id: int
    created: float
    family: str
    decision: str
    alias: str | None
    from_version: str | None
    to_version: str | None
    details: dict[str, object]


class LeaderboardRow(msgspec.Struct, frozen=True):
    opponent: str
    player: str
    wins: int
    games: int


class LifecycleFigures(msgspec.Struct, frozen=True):
    """What the operators' metrics read from the lifecycle tables (the same for every server process)."""

    decisions: list[tuple[str, str, int]] = []  # (family, outcome, ledger rows)
    latest: dict[str, dict[str, object]] = {}  # family -> its last ledger row's details
    training_runs: dict[str, int] = {}  # outcome -> finished runs
    last_success: float | None = None  # when the last successful training run finished
    last_duration: float | None = None  # seconds the last run that trained took (success or failure)

"""The bot's brain for one game: prediction and policy from the first round.

The named scripted openings of game.md are not played: measured against people-like players and
simulated personas, nine of the ten lost to the bot's own policy in rounds 1-3, and the mix drawn
by weight cost 4-5 points of game-win rate (docs/bot.md).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from engine.policy import decide, surprise
from engine.predictor import OnlinePredictor, Probs
from engine.rules import Game, Round


@dataclass(frozen=True, slots=True)
class Choice:
    """The bot's move for a round with what it expected: P(player's move) and each move's value."""

    move: int
    probs: tuple[float, float, float]
    expected: tuple[float, float, float]
    source: str


GUARD_Z = 2.0


class Bot:
    """Chooses moves for one game; its state follows from the game's history."""

    def __init__(
        self,
        history: Sequence[Round] = (),
        models: Sequence[Probs | None] | None = None,
        memory: Sequence[Sequence[Round]] = (),
    ) -> None:
        """A bot that has seen `history`; `models[i]` is the model's prediction for round i+1, if any.

        `memory` holds the player's own past games (oldest first): the predictor starts from their habits.
        """
        self.predictor = OnlinePredictor()
        self.shortfall = 0.0  # this game's net points of the bot minus what its predictions expected
        self.variance = 0.0  # the variance of the shortfall were the predictions right
        self.predictor.remember(memory)
        for i, played in enumerate(history):
            self.observe(played, models[i] if models else None)

    def choose(self, game: Game, rng: random.Random, model: Probs | None = None) -> Choice:
        """The move for the open round of `game`, decided before the player moves.

        `model` is the trained model's prediction for this round (from engine.features.FIRST_MODEL_ROUND), blended
        with the online predictor; without it the online predictor decides alone.
        """
        number = game.next_round
        if number is None:
            raise ValueError("the game is over")
        values = game.values(number)
        score_player, score_bot = game.score
        probs = self.predictor.probs(values, model)
        decision = decide(probs, values, score_player, score_bot, rng, guard=self.guarded)
        return Choice(decision.move, probs, decision.expected, "online" if model is None else "model")

    @property
    def guarded(self) -> bool:
        """Whether the player is beating the bot's predictions: the shortfall is GUARD_Z standard deviations
        below zero. Then the bot blends its best response with the equilibrium (engine/policy.py)."""
        return self.shortfall < -GUARD_Z * math.sqrt(self.variance)

    def observe(self, played: Round, model: Probs | None = None) -> None:
        """Learn from a finished round; `model` is what the trained model had predicted for it."""
        shortfall, variance = surprise(
            self.predictor.probs(played.values, model), played.values, played.bot, played.player
        )
        self.shortfall += shortfall
        self.variance += variance
        self.predictor.observe(played, model)

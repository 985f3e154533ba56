"""The bot's brain for one game: the scripted opening, then prediction and policy."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.openings import OPENING_ROUNDS, Opening
from engine.policy import decide, payoff_matrix
from engine.predictor import OnlinePredictor, Probs
from engine.rules import Game, Round


@dataclass(frozen=True, slots=True)
class Choice:
    """The bot's move for a round with what it expected: P(player's move) and each move's value."""

    move: int
    probs: tuple[float, float, float]
    expected: tuple[float, float, float]
    source: str


class Bot:
    """Chooses moves for one game; its state follows from the game's history."""

    def __init__(
        self,
        opening: Opening,
        history: Sequence[Round] = (),
        models: Sequence[Probs | None] | None = None,
    ) -> None:
        """A bot that has seen `history`; `models[i]` is the model's prediction for round i+1, if any."""
        self.opening = opening
        self.predictor = OnlinePredictor()
        for i, played in enumerate(history):
            self.observe(played, models[i] if models else None)

    def choose(self, game: Game, rng: random.Random, model: Probs | None = None) -> Choice:
        """The move for the open round of `game`, decided before the player moves.

        `model` is the trained model's prediction for this round (from round 4), blended
        with the online predictor; without it the online predictor decides alone.
        """
        number = game.next_round
        if number is None:
            raise ValueError("the game is over")
        values = game.values(number)
        score_player, score_bot = game.score
        p = self.predictor.predict(values, model)
        probs = (float(p[0]), float(p[1]), float(p[2]))
        if number <= OPENING_ROUNDS:
            ev = payoff_matrix(values, score_player, score_bot) @ np.asarray(p)
            move = self.opening.move(number, values)
            return Choice(move, probs, (float(ev[0]), float(ev[1]), float(ev[2])), "opening")
        decision = decide(p, values, score_player, score_bot, rng)
        return Choice(decision.move, probs, decision.expected, "online" if model is None else "model")

    def observe(self, played: Round, model: Probs | None = None) -> None:
        """Learn from a finished round; `model` is what the trained model had predicted for it."""
        self.predictor.observe(played, model)

"""Simulated players: a population of human-like behaviours, reproducible from a seed.

Each persona mixes the habits measured on people (datasets/README.md): staying or
shifting after a win, loss or draw, a taste for high-value moves, cycling, a
favourite move, copying or countering the bot's last move, and noise. A persona's
move is drawn from the product of those tendencies, so mixtures come naturally.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from engine.policy import draw_move
from engine.predictor import SHIFT_PRIOR
from engine.rules import Round, Values, outcome


@dataclass(frozen=True, slots=True)
class Persona:
    """The parameters of one simulated player."""

    name: str
    shift: tuple[tuple[float, float, float], ...]  # P(stay, up, down | win, lose, draw)
    shift_strength: float  # how much the shift habit counts (0 = ignored)
    value_bias: float  # log-odds per point of value: > 0 likes high moves
    cycle: int  # 0 none, 1 up, 2 down each round
    cycle_strength: float
    favourite: int  # 0-2
    favourite_strength: float
    counter_strength: float  # plays what beats the bot's last move
    noise: float  # probability of a uniformly random move


def _jitter(rng: random.Random, base: tuple[float, float, float], spread: float) -> tuple[float, float, float]:
    raw = [max(0.02, b + rng.uniform(-spread, spread)) for b in base]
    total = sum(raw)
    return (raw[0] / total, raw[1] / total, raw[2] / total)


def sample_persona(rng: random.Random) -> Persona:
    """A persona drawn from the population."""
    kind = rng.choices(["habit", "greedy", "cycler", "favourite", "counter", "mixed"], [30, 15, 15, 10, 10, 20])[0]
    strong = rng.uniform(1.0, 2.5)
    weak = rng.uniform(0.0, 0.6)
    return Persona(
        name=kind,
        shift=tuple(_jitter(rng, base, 0.12) for base in SHIFT_PRIOR),
        shift_strength=strong if kind in ("habit", "mixed") else weak,
        value_bias=rng.uniform(1.0, 3.0) if kind in ("greedy", "mixed") else rng.uniform(-0.2, 1.0),
        cycle=rng.choice((1, 2)),
        cycle_strength=strong if kind == "cycler" else (weak if kind == "mixed" else 0.0),
        favourite=rng.randrange(3),
        favourite_strength=strong * 0.6 if kind == "favourite" else weak * 0.5,
        counter_strength=strong if kind == "counter" else (weak if kind == "mixed" else 0.0),
        noise=rng.uniform(0.05, 0.3),
    )


class SimulatedPlayer:
    """Plays one persona; all randomness comes from its own seeded source."""

    def __init__(self, persona: Persona, rng: random.Random) -> None:
        self.persona = persona
        self.rng = rng
        # The shift habit's logits after each outcome, computed once (a load test asks for a move every round).
        self._shift_logits = tuple(
            tuple(persona.shift_strength * math.log(3.0 * s) for s in row) for row in persona.shift
        )

    def distribution(self, history: list[Round] | tuple[Round, ...], values: Values) -> list[float]:
        """P(rock, paper, scissors) for the next move."""
        p = self.persona
        logits = [p.value_bias * values[0] / 10.0, p.value_bias * values[1] / 10.0, p.value_bias * values[2] / 10.0]
        logits[p.favourite] += p.favourite_strength
        if history:
            last = history[-1]
            shift = self._shift_logits[outcome(last.player, last.bot)]
            logits[last.player] += shift[0]
            logits[(last.player + 1) % 3] += shift[1]
            logits[(last.player + 2) % 3] += shift[2]
            logits[(last.player + p.cycle) % 3] += p.cycle_strength
            logits[(last.bot + 1) % 3] += p.counter_strength
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        total = sum(weights)
        return [(1.0 - p.noise) * w / total + p.noise / 3.0 for w in weights]

    def move(self, history: list[Round] | tuple[Round, ...], values: Values) -> int:
        return draw_move(self.distribution(history, values), self.rng)


def population(seed: int, size: int) -> list[SimulatedPlayer]:
    """`size` simulated players, each with its own persona and random source, from one seed."""
    rng = random.Random(seed)
    return [SimulatedPlayer(sample_persona(rng), random.Random(rng.getrandbits(64))) for _ in range(size)]

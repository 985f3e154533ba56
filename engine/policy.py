"""The bot's move policy: expected value of each move, blended with the round's equilibrium.

`payoff_matrix` is game.md's expected change in the bot's winning chances, per pair
of moves: the points the bot gains when it wins the round, minus those the player
gains when the bot loses, plus BONUS whenever a side reaches the target (by a win or
by the 0.5 of a draw). With a prediction `p` of the player's move, the expected
value of bot move b is (A @ p)[b].

Always playing the best of those would be exploitable: a uniform prediction makes
the high move best, and the low move beats it. So the bot plays a mixed strategy:
the best response to `p` with probability c, the round's Nash equilibrium (the mix
that no reply beats on average: maximin of A) with probability 1 - c, where
c = min(1, TV(p, uniform) / FULL_TRUST_TV). A uniform prediction gets the
equilibrium; a prediction at least FULL_TRUST_TV from uniform in total variation
(for instance 43.3 % on one move and 28.3 % on each other) gets the pure best response. Moves tied for the best
expected value share the best response's weight equally. The move is drawn from the
mix with the caller's random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from engine.rules import DRAW_POINTS, TARGET, Values, hunter, prey

BONUS = 10.0
_MAX_GAIN = 20  # the most a side can gain in one round, in tenths
FULL_TRUST_TV = 0.1


def payoff_matrix(values: Values, score_player: int, score_bot: int) -> np.ndarray:
    """A[b, m]: the bot's expected gain when it plays b and the player plays m (points)."""
    a = np.zeros((3, 3))
    for b in range(3):
        won = values[b] / 10.0 + (BONUS if score_bot + values[b] >= TARGET else 0.0)
        a[b, prey(b)] = won
        h = hunter(b)
        lost = values[h] / 10.0 + (BONUS if score_player + values[h] >= TARGET else 0.0)
        a[b, h] = -lost
        draw_player, draw_bot = score_player + DRAW_POINTS, score_bot + DRAW_POINTS
        if max(draw_player, draw_bot) >= TARGET and draw_player != draw_bot:
            a[b, b] = BONUS if draw_bot > draw_player else -BONUS
    return a


def _candidates(a: np.ndarray) -> list[np.ndarray]:
    """The vertices where the maximum of a concave piecewise-linear objective on the simplex can lie."""
    points = [np.eye(3)[i] for i in range(3)]
    cols = [a[:, m] for m in range(3)]
    for i, j in combinations(range(3), 2):
        for m1, m2 in combinations(range(3), 2):
            # On the edge t*e_i + (1-t)*e_j, where the replies m1 and m2 pay the same.
            d = cols[m1] - cols[m2]
            denom = d[i] - d[j]
            if abs(denom) > 1e-12:
                t = -d[j] / denom
                if 0.0 <= t <= 1.0:
                    x = np.zeros(3)
                    x[i], x[j] = t, 1.0 - t
                    points.append(x)
    # Inside the simplex, where all three replies pay the same.
    system = np.vstack([cols[0] - cols[1], cols[1] - cols[2], np.ones(3)])
    if abs(np.linalg.det(system)) > 1e-12:
        x = np.linalg.solve(system, np.array([0.0, 0.0, 1.0]))
        if (x >= -1e-12).all():
            points.append(np.clip(x, 0.0, None) / np.clip(x, 0.0, None).sum())
    return points


@dataclass(frozen=True, slots=True)
class Decision:
    """The bot's choice for one round and why."""

    move: int
    expected: tuple[float, float, float]
    strategy: tuple[float, float, float]


def equilibrium(a: np.ndarray) -> np.ndarray:
    """The bot's maximin mixed strategy for payoff matrix `a`."""
    best: np.ndarray = max(_candidates(a), key=lambda x: float((x @ a).min()))
    return best


def _blend(ev: np.ndarray, nash: np.ndarray, p: np.ndarray) -> np.ndarray:
    best = (ev >= ev.max() - 1e-9).astype(float)
    best /= best.sum()
    trust = min(1.0, 0.5 * float(np.abs(p - 1.0 / 3.0).sum()) / FULL_TRUST_TV)
    mix: np.ndarray = trust * best + (1.0 - trust) * nash
    return mix


def mixed_strategy(a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The bot's mix: best response to `p`, blended with the equilibrium by the trust in `p`."""
    return _blend(a @ p, equilibrium(a), p)


def _near(score: int) -> int:
    """The score as far as one round can matter: any score that cannot reach the target counts as 0."""
    return score if score + _MAX_GAIN >= TARGET else 0


@lru_cache(maxsize=4096)
def _round_game(values: Values, score_player: int, score_bot: int) -> tuple[np.ndarray, np.ndarray]:
    a = payoff_matrix(values, score_player, score_bot)
    return a, equilibrium(a)


def decide(p: np.ndarray, values: Values, score_player: int, score_bot: int, rng: random.Random) -> Decision:
    """Choose the bot's move for a round given the predicted player distribution `p`."""
    a, nash = _round_game(values, _near(score_player), _near(score_bot))
    ev = a @ p
    strategy = _blend(ev, nash, p)
    move = rng.choices(range(3), weights=strategy.tolist())[0]
    return Decision(
        move,
        (float(ev[0]), float(ev[1]), float(ev[2])),
        (float(strategy[0]), float(strategy[1]), float(strategy[2])),
    )

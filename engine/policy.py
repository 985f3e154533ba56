"""The bot's move policy: the best expected value against the prediction, or the round's equilibrium when guarded.

`payoff_matrix` is game.md's expected change in the bot's winning chances, per pair
of moves: the points the bot gains when it wins the round, minus those the player
gains when the bot loses, plus BONUS whenever a side reaches the target (by a win or
by the 0.5 of a draw). With a prediction `p` of the player's move, the expected
value of bot move b is (A @ p)[b].

The bot plays the best response to `p` (moves tied for the best expected value share
it equally) while its predictions hold, and the round's Nash equilibrium (the mix that
no reply beats on average: maximin of A) once the player is beating them: the caller
says which (`guard`, engine/bot.py: the bot's net points this game fall GUARD_Z
standard deviations short of what its predictions expected). Against people who do not
learn the bot, blending with the equilibrium by the trust in `p` (an earlier policy)
cost about 2 points of game-win rate and did not stop a player who reads the bot
(docs/bot.md, `python -m bench adaptive`). A prediction within NEAR_UNIFORM (total
variation) of uniform says nothing about the player: the bot plays the equilibrium
then too, so that no uninformed prediction makes it play one value rank (against a
uniform prediction the best response is always the high move). The move is drawn
from the mix with the caller's random source.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from engine.rules import DRAW_POINTS, TARGET, VALUE_KINDS, Values, hunter, prey

BONUS = 10.0
NEAR_UNIFORM = 0.02  # a prediction closer than this (total variation) to uniform is no prediction
_MAX_GAIN = 20  # the most a side can gain in one round, in tenths
_MOVES = (0, 1, 2)
THIRD = 1.0 / 3.0


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


Triple = tuple[float, float, float]
Matrix = tuple[Triple, Triple, Triple]  # A[b][m] as plain floats


def _candidates(a: Matrix) -> list[Triple]:
    """The vertices where the maximum of a concave piecewise-linear objective on the simplex can lie.

    Plain floats: numpy's per-call overhead on 3-vectors made this most of a round's cost whenever
    the equilibrium was not cached yet.
    """
    points: list[Triple] = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    for i, j in combinations(_MOVES, 2):
        for m1, m2 in combinations(_MOVES, 2):
            # On the edge t*e_i + (1-t)*e_j, where the replies m1 and m2 pay the same.
            d_i, d_j = a[i][m1] - a[i][m2], a[j][m1] - a[j][m2]
            denom = d_i - d_j
            if abs(denom) > 1e-12:
                t = -d_j / denom
                if 0.0 <= t <= 1.0:
                    x = [0.0, 0.0, 0.0]
                    x[i], x[j] = t, 1.0 - t
                    points.append((x[0], x[1], x[2]))
    # Inside the simplex, where all three replies pay the same: x is orthogonal to both differences of
    # columns, so it is their cross product, scaled to sum to 1 (the scale is the determinant of the system).
    u = (a[0][0] - a[0][1], a[1][0] - a[1][1], a[2][0] - a[2][1])
    v = (a[0][1] - a[0][2], a[1][1] - a[1][2], a[2][1] - a[2][2])
    c = (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])
    det = c[0] + c[1] + c[2]
    if abs(det) > 1e-12:
        x = [c[0] / det, c[1] / det, c[2] / det]
        if min(x) >= -1e-12:
            kept = [max(e, 0.0) for e in x]
            total = sum(kept)
            points.append((kept[0] / total, kept[1] / total, kept[2] / total))
    return points


def _guaranteed(x: Triple, a: Matrix) -> float:
    """What the bot's mix `x` earns against the player's best reply."""
    return min(x[0] * a[0][m] + x[1] * a[1][m] + x[2] * a[2][m] for m in _MOVES)


def _maximin(a: Matrix) -> Triple:
    return max(_candidates(a), key=lambda x: _guaranteed(x, a))


@dataclass(frozen=True, slots=True)
class Decision:
    """The bot's choice for one round and why."""

    move: int
    expected: tuple[float, float, float]
    strategy: tuple[float, float, float]


def equilibrium(a: np.ndarray) -> np.ndarray:
    """The bot's maximin mixed strategy for payoff matrix `a`."""
    return np.array(_maximin(_matrix(a)))


def _strategy(ev: Triple, nash: Triple, guard: bool) -> Triple:
    """The equilibrium when `guard`, else the best response to the prediction (moves tied on `ev` share).

    Plain floats: on three numbers, numpy's per-call overhead would dominate the hot path.
    """
    if guard:
        return nash
    top = max(ev)
    best = [1.0 if e >= top - 1e-9 else 0.0 for e in ev]
    share = 1.0 / sum(best)
    return (best[0] * share, best[1] * share, best[2] * share)


def _expected(a: Matrix, p: Triple) -> Triple:
    return (
        a[0][0] * p[0] + a[0][1] * p[1] + a[0][2] * p[2],
        a[1][0] * p[0] + a[1][1] * p[1] + a[1][2] * p[2],
        a[2][0] * p[0] + a[2][1] * p[1] + a[2][2] * p[2],
    )


def _triple(x: np.ndarray | Triple) -> Triple:
    return (float(x[0]), float(x[1]), float(x[2]))


def _matrix(a: np.ndarray) -> Matrix:
    return _triple(a[0]), _triple(a[1]), _triple(a[2])


def mixed_strategy(a: np.ndarray, p: np.ndarray, guard: bool) -> np.ndarray:
    """The bot's mix: the equilibrium when `guard` or when `p` is near uniform, else the best response to `p`."""
    return np.array(_strategy(_triple(a @ p), _maximin(_matrix(a)), guard or _uninformed(_triple(p))))


def _uninformed(p: Triple) -> bool:
    """Whether prediction `p` is within NEAR_UNIFORM (total variation) of uniform."""
    return abs(p[0] - THIRD) + abs(p[1] - THIRD) + abs(p[2] - THIRD) < 2 * NEAR_UNIFORM


def _near(score: int) -> int:
    """The score as far as one round can matter: any score that cannot reach the target counts as 0."""
    return score if score + _MAX_GAIN >= TARGET else 0


# Every key _round_game can see: the kinds of round values and, for each side, a score of 0 or one from
# TARGET - _MAX_GAIN to TARGET - 1. A cache that holds them all computes each equilibrium once per process,
# also in the last rounds of games, where the scores spread the keys.
_ROUND_GAMES = VALUE_KINDS * (_MAX_GAIN + 1) ** 2


@lru_cache(maxsize=_ROUND_GAMES)
def _round_game(values: Values, score_player: int, score_bot: int) -> tuple[Matrix, Triple]:
    a = _matrix(payoff_matrix(values, score_player, score_bot))
    return a, _maximin(a)


def surprise(p: np.ndarray | Triple, values: Values, bot: int, player: int) -> tuple[float, float]:
    """The bot's net points in a played round minus what prediction `p` expected for its move, and their
    variance were `p` right (round points only, no end-of-game bonus)."""
    row = _round_game(values, 0, 0)[0][bot]
    probs = _triple(p)
    mean = row[0] * probs[0] + row[1] * probs[1] + row[2] * probs[2]
    square = row[0] ** 2 * probs[0] + row[1] ** 2 * probs[1] + row[2] ** 2 * probs[2]
    return row[player] - mean, square - mean**2


def decide(
    p: np.ndarray | Triple, values: Values, score_player: int, score_bot: int, rng: random.Random, guard: bool
) -> Decision:
    """Choose the bot's move for a round given the predicted player distribution `p`: the best response, or
    the equilibrium when `guard` (the player is beating the bot's predictions)."""
    a, nash = _round_game(values, _near(score_player), _near(score_bot))
    probs = _triple(p)
    ev = _expected(a, probs)
    strategy = _strategy(ev, nash, guard or _uninformed(probs))
    return Decision(draw_move(strategy, rng), ev, strategy)


def draw_move(weights: Triple | list[float], rng: random.Random) -> int:
    """A move drawn with these weights: what rng.choices(range(3), weights=weights) draws, for the same
    random() (a third of its cost)."""
    x = rng.random() * (weights[0] + weights[1] + weights[2])
    return 0 if x < weights[0] else 1 if x < weights[0] + weights[1] else 2

"""Feature contract v1 of mlops.md: one function from a game history to 50 floats.

Training and serving both use `FeatureTracker` (directly, or through `features`); it
follows a game round by round, so a vector costs the same in round 20 as in round 4.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from engine.rules import TARGET, Round, Values, outcome, ranked

FEATURE_VERSION = 1
N_FEATURES = 50
FIRST_MODEL_ROUND = 4  # rounds 1-3 are history only: models predict, and train on, rounds from 4 on (mlops.md)
_LAGS = 3
_FLOAT32S = struct.Struct(f"={N_FEATURES}f")  # a vector's bytes: float32 in the machine's order, as numpy's


class FeatureTracker:
    """The running state of one game that the feature vector is computed from.

    Layout of `vector` (moves rock, paper, scissors; outcomes win, lose, draw;
    k = 1, 2, 3 rounds ago): [0:9] player's move k ago, [9:18] bot's move k ago,
    [18:27] outcome k ago, [27:30] current values, [30:39] values k ago (the current
    ones if that round is missing), [39:42] player's move shares, [42:45] shares of
    choosing the round's high move, the move that beats it and the move that beats
    that one, [45:49] score difference, points the player needs, points the bot needs
    (never below 0: recorded play can run past the end of a game), round number,
    [49] reserved 0. Missing rounds give all-zero one-hots; values are in points.
    """

    __slots__ = ("last", "move_counts", "n", "rank_counts", "score_bot", "score_player")

    def __init__(self, history: Sequence[Round] = ()) -> None:
        self.last: list[Round] = []
        self.move_counts = [0, 0, 0]
        self.rank_counts = [0, 0, 0]
        self.n = 0
        self.score_player = 0
        self.score_bot = 0
        for r in history:
            self.add(r)

    def add(self, played: Round) -> None:
        """Follow the game by one round."""
        self.last = [played, *self.last[: _LAGS - 1]]
        self.move_counts[played.player] += 1
        self.rank_counts[(played.player - ranked(played.values)[0]) % 3] += 1
        self.n += 1
        self.score_player = played.score_player
        self.score_bot = played.score_bot

    def vector(self, values: Values) -> np.ndarray:
        """The float32 input for predicting the player's move in the next round, whose values are `values`."""
        return np.array(self._floats(values), dtype=np.float32)

    def raw(self, values: Values) -> bytes:
        """`vector`'s bytes (`vector(values).tobytes()`), without building the array: what the server batches
        and stores."""
        return _FLOAT32S.pack(*self._floats(values))

    def _floats(self, values: Values) -> list[float]:
        x = [0.0] * N_FEATURES
        for k in range(_LAGS):
            if k < len(self.last):
                past = self.last[k]
                x[3 * k + past.player] = 1.0
                x[9 + 3 * k + past.bot] = 1.0
                x[18 + 3 * k + outcome(past.player, past.bot)] = 1.0
                lag_values = past.values
            else:
                lag_values = values
            for m in range(3):
                x[30 + 3 * k + m] = lag_values[m] / 10.0
        for m in range(3):
            x[27 + m] = values[m] / 10.0
        if self.n:
            for m in range(3):
                x[39 + m] = self.move_counts[m] / self.n
                x[42 + m] = self.rank_counts[m] / self.n
        x[45] = (self.score_player - self.score_bot) / 10.0
        x[46] = max(0, TARGET - self.score_player) / 10.0
        x[47] = max(0, TARGET - self.score_bot) / 10.0
        x[48] = float(self.n + 1)
        return x


def features(history: Sequence[Round], values: Values) -> np.ndarray:
    """The input vector for round len(history)+1 of a game, whose values are `values`."""
    return FeatureTracker(history).vector(values)

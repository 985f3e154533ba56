"""Feature contract v1 of mlops.md: one function from a game history to 50 floats.

Training and serving both call `features`; nothing else builds model inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.rules import TARGET, Round, Values, outcome, ranked

FEATURE_VERSION = 1
N_FEATURES = 50
_LAGS = (1, 2, 3)


def features(history: Sequence[Round], values: Values) -> np.ndarray:
    """The float32 input vector for predicting the player's move in round len(history)+1.

    `history` holds the earlier rounds of the game in order; `values` are the open
    round's values in tenths. Layout (moves rock, paper, scissors; outcomes win,
    lose, draw; k = 1, 2, 3 rounds ago):
    [0:9] player's move k ago, [9:18] bot's move k ago, [18:27] outcome k ago,
    [27:30] current values, [30:39] values k ago (current ones if missing),
    [39:42] player's move shares, [42:45] shares of choosing the round's high move,
    the move that beats it and the move that beats that one, [45:49] score
    difference, points the player needs, points the bot needs, round number,
    [49] reserved 0.
    """
    x = np.zeros(N_FEATURES, dtype=np.float64)
    n = len(history)
    for slot, k in enumerate(_LAGS):
        if k <= n:
            past = history[n - k]
            x[3 * slot + past.player] = 1.0
            x[9 + 3 * slot + past.bot] = 1.0
            x[18 + 3 * slot + outcome(past.player, past.bot)] = 1.0
            lag_values = past.values
        else:
            lag_values = values
        x[30 + 3 * slot : 33 + 3 * slot] = lag_values
    x[27:30] = values
    x[30:39] /= 10.0
    x[27:30] /= 10.0
    if n:
        for past in history:
            x[39 + past.player] += 1.0
            high = ranked(past.values)[0]
            x[42 + (past.player - high) % 3] += 1.0
        x[39:45] /= n
        score_player, score_bot = history[-1].score_player, history[-1].score_bot
    else:
        score_player = score_bot = 0
    x[45] = (score_player - score_bot) / 10.0
    x[46] = (TARGET - score_player) / 10.0
    x[47] = (TARGET - score_bot) / 10.0
    x[48] = float(n + 1)
    return x.astype(np.float32)

"""engine.features against mlops.md, feature contract v1 (50 floats)."""

from __future__ import annotations

import random

import numpy as np

from engine.features import FEATURE_VERSION, N_FEATURES, FeatureTracker, features
from engine.rules import Game, Round, round_values

ROCK, PAPER, SCISSORS = 0, 1, 2

# Block offsets of contract v1.
PLAYER_LAG = 0  # 9: player's move k = 1, 2, 3 ago
BOT_LAG = 9  # 9: bot's move k ago
OUTCOME_LAG = 18  # 9: outcome k ago (win, lose, draw)
CURRENT_VALUES = 27  # 3
LAG_VALUES = 30  # 9
SHARES = 39  # 3
HIGH_SHARES = 42  # 3: high, beats high, beats that
SCORE_DIFF, PLAYER_NEEDS, BOT_NEEDS, ROUND_NUMBER, RESERVED = 45, 46, 47, 48, 49

# demo, hand-played:
#   round 1 values (1.6, 1.0, 1.1): player rock, bot scissors -> player wins 1.6 -> 1.6 : 0.0
#   round 2 values (1.5, 2.0, 1.0): player paper, bot paper   -> draw           -> 2.1 : 0.5
#   round 3 values (1.0, 1.5, 2.0): player rock, bot paper    -> bot wins 1.5   -> 2.1 : 2.0
DEMO_HISTORY = (
    Round(1, (16, 10, 11), ROCK, SCISSORS, 16, 0),
    Round(2, (15, 20, 10), PAPER, PAPER, 21, 5),
    Round(3, (10, 15, 20), ROCK, PAPER, 21, 20),
)
DEMO_ROUND4 = (10, 13, 18)


def _one_hot(index: int) -> list[float]:
    out = [0.0, 0.0, 0.0]
    out[index] = 1.0
    return out


def _beats(a: int, b: int) -> bool:
    return (a, b) in {(ROCK, SCISSORS), (SCISSORS, PAPER), (PAPER, ROCK)}


def _reference(history: tuple[Round, ...], values: tuple[int, int, int]) -> list[float]:
    """Contract v1 written from mlops.md, independently of the engine."""
    player_lag: list[float] = []
    bot_lag: list[float] = []
    outcome_lag: list[float] = []
    lag_values: list[float] = []
    for k in (1, 2, 3):
        if k <= len(history):
            r = history[-k]
            player_lag += _one_hot(r.player)
            bot_lag += _one_hot(r.bot)
            result = 2 if r.player == r.bot else (0 if _beats(r.player, r.bot) else 1)
            outcome_lag += _one_hot(result)
            lag_values += [v / 10 for v in r.values]
        else:
            player_lag += [0.0] * 3
            bot_lag += [0.0] * 3
            outcome_lag += [0.0] * 3
            lag_values += [v / 10 for v in values]
    shares = [0.0, 0.0, 0.0]
    high_shares = [0.0, 0.0, 0.0]
    for r in history:
        shares[r.player] += 1 / len(history)
        high = max(range(3), key=lambda m: r.values[m])
        beats_high = next(m for m in range(3) if _beats(m, high))
        beats_that = next(m for m in range(3) if _beats(m, beats_high))
        high_shares[[high, beats_high, beats_that].index(r.player)] += 1 / len(history)
    sp, sb = (history[-1].score_player, history[-1].score_bot) if history else (0, 0)
    tail = [(sp - sb) / 10, (100 - sp) / 10, (100 - sb) / 10, float(len(history) + 1), 0.0]
    return player_lag + bot_lag + outcome_lag + [v / 10 for v in values] + lag_values + shares + high_shares + tail


def test_contract_version_and_shape() -> None:
    assert FEATURE_VERSION == 1
    assert N_FEATURES == 50
    x = features(DEMO_HISTORY, DEMO_ROUND4)
    assert x.shape == (50,)
    assert x.dtype == np.float32
    assert features((), (10, 13, 18)).shape == (50,)


def test_demo_history_is_consistent_with_rules() -> None:
    game = Game("demo")
    for r in DEMO_HISTORY:
        game.play(r.player, r.bot)
    assert tuple(game.rounds) == DEMO_HISTORY
    assert round_values("demo", 4) == DEMO_ROUND4


def test_hand_built_history_every_block() -> None:
    x = features(DEMO_HISTORY, DEMO_ROUND4)

    def block(start: int, size: int) -> list[float]:
        return [float(v) for v in x[start : start + size]]

    # Player's move k ago: k=1 rock (round 3), k=2 paper (round 2), k=3 rock (round 1).
    assert block(PLAYER_LAG, 9) == [1, 0, 0, 0, 1, 0, 1, 0, 0]
    # Bot's move k ago: paper, paper, scissors.
    assert block(BOT_LAG, 9) == [0, 1, 0, 0, 1, 0, 0, 0, 1]
    # Outcome k ago (player's view): lose, draw, win.
    assert block(OUTCOME_LAG, 9) == [0, 1, 0, 0, 0, 1, 1, 0, 0]
    np.testing.assert_allclose(block(CURRENT_VALUES, 3), [1.0, 1.3, 1.8], rtol=1e-6)
    np.testing.assert_allclose(block(LAG_VALUES, 9), [1.0, 1.5, 2.0, 1.5, 2.0, 1.0, 1.6, 1.0, 1.1], rtol=1e-6)
    # Shares: rock 2 of 3, paper 1 of 3.
    np.testing.assert_allclose(block(SHARES, 3), [2 / 3, 1 / 3, 0.0], rtol=1e-6)
    # Round 1 high = rock (played), round 2 high = paper (played), round 3 high = scissors and
    # the player's rock beats it: high 2/3, beats-high 1/3, beats-that 0.
    np.testing.assert_allclose(block(HIGH_SHARES, 3), [2 / 3, 1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(x[SCORE_DIFF], 0.1, rtol=1e-6)
    np.testing.assert_allclose(x[PLAYER_NEEDS], 7.9, rtol=1e-6)
    np.testing.assert_allclose(x[BOT_NEEDS], 8.0, rtol=1e-6)
    assert x[ROUND_NUMBER] == 4.0
    assert x[RESERVED] == 0.0


def test_high_shares_second_and_third_slots() -> None:
    # Round values (1.6, 1.0, 1.1): high rock, paper beats it, scissors beats paper.
    values = (16, 10, 11)
    for player, slot in ((ROCK, 0), (PAPER, 1), (SCISSORS, 2)):
        history = (Round(1, values, player, player, 5, 5),)
        x = features(history, values)
        expected = [0.0, 0.0, 0.0]
        expected[slot] = 1.0
        assert [float(v) for v in x[HIGH_SHARES : HIGH_SHARES + 3]] == expected


def test_empty_history() -> None:
    values = (12, 17, 10)
    x = features((), values)
    assert not x[0:27].any()
    np.testing.assert_allclose(x[CURRENT_VALUES : CURRENT_VALUES + 3], [1.2, 1.7, 1.0], rtol=1e-6)
    # Missing rounds' values default to the current round's.
    np.testing.assert_allclose(x[LAG_VALUES : LAG_VALUES + 9], [1.2, 1.7, 1.0] * 3, rtol=1e-6)
    assert not x[SHARES : SHARES + 6].any()
    assert x[SCORE_DIFF] == 0.0
    assert x[PLAYER_NEEDS] == 10.0
    assert x[BOT_NEEDS] == 10.0
    assert x[ROUND_NUMBER] == 1.0
    assert x[RESERVED] == 0.0


def test_missing_rounds_are_zero_one_hots_with_current_values() -> None:
    values = (12, 17, 10)
    history = DEMO_HISTORY[:1]
    x = features(history, values)
    assert [float(v) for v in x[PLAYER_LAG : PLAYER_LAG + 9]] == [1, 0, 0] + [0] * 6
    assert [float(v) for v in x[BOT_LAG : BOT_LAG + 9]] == [0, 0, 1] + [0] * 6
    assert [float(v) for v in x[OUTCOME_LAG : OUTCOME_LAG + 9]] == [1, 0, 0] + [0] * 6
    np.testing.assert_allclose(x[LAG_VALUES : LAG_VALUES + 9], [1.6, 1.0, 1.1] + [1.2, 1.7, 1.0] * 2, rtol=1e-6)
    assert x[ROUND_NUMBER] == 2.0
    np.testing.assert_allclose(x[SCORE_DIFF], 1.6, rtol=1e-6)

    x2 = features(DEMO_HISTORY[:2], values)
    assert [float(v) for v in x2[PLAYER_LAG : PLAYER_LAG + 9]] == [0, 1, 0, 1, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(
        x2[LAG_VALUES : LAG_VALUES + 9], [1.5, 2.0, 1.0, 1.6, 1.0, 1.1, 1.2, 1.7, 1.0], rtol=1e-6
    )


def test_only_three_lags_but_shares_over_whole_game() -> None:
    history = (
        Round(1, (16, 10, 11), SCISSORS, SCISSORS, 5, 5),
        *(Round(r.number + 1, r.values, r.player, r.bot, r.score_player + 5, r.score_bot + 5) for r in DEMO_HISTORY),
    )
    x = features(history, DEMO_ROUND4)
    y = features(DEMO_HISTORY, DEMO_ROUND4)
    np.testing.assert_array_equal(x[0:39], y[0:39])  # round 1 is 4 rounds ago: no lag block sees it
    np.testing.assert_allclose(x[SHARES : SHARES + 3], [0.5, 0.25, 0.25], rtol=1e-6)
    assert x[ROUND_NUMBER] == 5.0


def test_matches_reference_on_random_games() -> None:
    rng = random.Random(3)
    checked = 0
    for g in range(200):
        game = Game(f"feat-{g}")
        while not game.over:
            n = len(game.rounds) + 1
            x = features(tuple(game.rounds), game.values(n))
            expected = np.array(_reference(tuple(game.rounds), game.values(n)), dtype=np.float32)
            np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
            checked += 1
            game.play(rng.randrange(3), rng.randrange(3))
    assert checked > 2000


def test_deterministic_and_pure() -> None:
    history = list(DEMO_HISTORY)
    a = features(history, DEMO_ROUND4)
    b = features(tuple(DEMO_HISTORY), DEMO_ROUND4)
    assert a.tobytes() == b.tobytes()
    assert history == list(DEMO_HISTORY)
    assert features(history, DEMO_ROUND4).tobytes() == a.tobytes()


def test_tracker_round_by_round_equals_features_of_the_history() -> None:
    rng = random.Random(4)
    for g in range(50):
        game = Game(f"track-{g}")
        tracker = FeatureTracker()
        while not game.over:
            values = game.values(len(game.rounds) + 1)
            assert tracker.vector(values).tobytes() == features(tuple(game.rounds), values).tobytes()
            assert tracker.raw(values) == tracker.vector(values).tobytes()  # the bytes the server uses, bit for bit
            tracker.add(game.play(rng.randrange(3), rng.randrange(3)))


def test_points_needed_never_below_zero() -> None:
    # Recorded play may run past the end of a game: 10.5 : 2.0 after round 8.
    history = (Round(8, (16, 10, 11), ROCK, SCISSORS, 105, 20),)
    x = features(history, DEMO_ROUND4)
    assert x[PLAYER_NEEDS] == 0.0
    np.testing.assert_allclose(x[BOT_NEEDS], 8.0, rtol=1e-6)
    np.testing.assert_allclose(x[SCORE_DIFF], 8.5, rtol=1e-6)

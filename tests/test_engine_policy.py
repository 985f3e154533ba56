"""engine.policy against game.md, How the bot picks its move."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np

from engine.policy import BONUS, _round_game, decide, draw_move, equilibrium, mixed_strategy, payoff_matrix, surprise
from engine.rules import TARGET, ranked, round_values

ROCK, PAPER, SCISSORS = 0, 1, 2
UNIFORM = np.full(3, 1.0 / 3.0)
DEMO1 = (16, 10, 11)  # rock 1.6, paper 1.0, scissors 1.1: high rock, middle scissors, low paper


def _simplex_grid(steps: int) -> np.ndarray:
    return np.array(
        [(i / steps, j / steps, (steps - i - j) / steps) for i in range(steps + 1) for j in range(steps + 1 - i)]
    )


def _random_rounds(count: int, seed: int) -> list[tuple[int, int, int]]:
    rng = random.Random(seed)
    return [round_values(f"g-{rng.getrandbits(40):010x}", rng.randint(1, 20)) for _ in range(count)]


def _score_pairs() -> list[tuple[int, int]]:
    return [(0, 0), (40, 70), (85, 90), (90, 85), (95, 95), (96, 98), (98, 96), (99, 80)]


# ---------------------------------------------------------------- payoff matrix


def test_payoff_matrix_far_from_target() -> None:
    a = payoff_matrix(DEMO1, 0, 0)
    # Rows: bot move; columns: player move; entries in points.
    expected = np.array(
        [
            [0.0, -1.0, 1.6],  # bot rock: loses 1.0 to paper, wins its 1.6 against scissors
            [1.0, 0.0, -1.1],  # bot paper: wins 1.0 against rock, loses 1.1 to scissors
            [-1.6, 1.1, 0.0],  # bot scissors: loses 1.6 to rock, wins 1.1 against paper
        ]
    )
    np.testing.assert_allclose(a, expected, atol=1e-12)
    np.testing.assert_allclose(a, -a.T, atol=1e-12)


def test_payoff_matrix_bonus_when_a_side_reaches_target() -> None:
    assert BONUS == 10.0
    # Player 9.0, bot 8.5: the bot reaches 10 only by winning with rock (8.5 + 1.6);
    # the player reaches 10 by any win (9.0 + 1.0 at least). A draw (9.5 : 9.0) ends nothing.
    a = payoff_matrix(DEMO1, 90, 85)
    expected = np.array(
        [
            [0.0, -11.0, 11.6],
            [1.0, 0.0, -11.1],
            [-11.6, 1.1, 0.0],
        ]
    )
    np.testing.assert_allclose(a, expected, atol=1e-12)


def test_payoff_matrix_draw_term_when_a_draw_ends_the_game() -> None:
    # Player 9.6, bot 9.8: a draw gives 10.1 : 10.3, the game ends and the bot wins.
    a = payoff_matrix(DEMO1, 96, 98)
    expected = np.array(
        [
            [10.0, -11.0, 11.6],
            [11.0, 10.0, -11.1],
            [-11.6, 11.1, 10.0],
        ]
    )
    np.testing.assert_allclose(a, expected, atol=1e-12)
    # Mirrored: the player ends ahead on a draw.
    np.testing.assert_allclose(np.diag(payoff_matrix(DEMO1, 98, 96)), [-10.0, -10.0, -10.0], atol=1e-12)
    # Equal scores reaching the target on a draw give a tie: no bonus either way.
    np.testing.assert_allclose(np.diag(payoff_matrix(DEMO1, 95, 95)), [0.0, 0.0, 0.0], atol=1e-12)
    # A draw that takes only one side to the target: that side wins.
    np.testing.assert_allclose(np.diag(payoff_matrix(DEMO1, 80, 95)), [10.0, 10.0, 10.0], atol=1e-12)
    # A draw that takes nobody to the target: no draw term.
    np.testing.assert_allclose(np.diag(payoff_matrix(DEMO1, 94, 94)), [0.0, 0.0, 0.0], atol=1e-12)


# ---------------------------------------------------------------- guarded: the equilibrium


def test_guarded_strategy_is_the_equilibrium_whatever_the_prediction() -> None:
    rng = np.random.default_rng(0)
    for values in _random_rounds(100, seed=1):
        for score_player, score_bot in _score_pairs():
            a = payoff_matrix(values, score_player, score_bot)
            p = rng.dirichlet([1.0, 1.0, 1.0])
            np.testing.assert_allclose(mixed_strategy(a, p, True), equilibrium(a), atol=1e-12)


def test_guarded_strategy_gives_low_move_positive_probability() -> None:
    for values in _random_rounds(200, seed=1):
        strategy = mixed_strategy(payoff_matrix(values, 0, 0), UNIFORM, True)
        high, _middle, low = ranked(values)
        assert strategy[low] > 0.05, (values, strategy)
        assert strategy[high] < 0.99, (values, strategy)


def test_guarded_decide_plays_several_moves() -> None:
    rng = random.Random(2)
    confident = np.array([0.8, 0.1, 0.1])
    moves = Counter(decide(confident, DEMO1, 0, 0, rng, True).move for _ in range(600))
    assert set(moves) == {ROCK, PAPER, SCISSORS}
    high_share = 0
    total = 0
    for values in _random_rounds(300, seed=3):
        move = decide(UNIFORM, values, 0, 0, rng, True).move
        high_share += move == ranked(values)[0]
        total += 1
    assert high_share / total < 0.8


def test_guarded_strategy_is_unexploitable() -> None:
    rng = np.random.default_rng(4)
    for values in _random_rounds(300, seed=4):
        a = payoff_matrix(values, 0, 0)
        strategy = mixed_strategy(a, rng.dirichlet([1.0, 1.0, 1.0]), True)
        # The player's expected gain for each reply is the negated bot payoff.
        player_gain = -(strategy @ a)
        assert player_gain.max() <= 1e-9, (values, strategy, player_gain)


def test_decision_reports_expected_values_and_strategy() -> None:
    rng = random.Random(5)
    p = np.array([0.5, 0.3, 0.2])
    a = payoff_matrix(DEMO1, 30, 40)
    for guard in (False, True):
        d = decide(p, DEMO1, 30, 40, rng, guard)
        np.testing.assert_allclose(d.expected, a @ p, atol=1e-12)
        np.testing.assert_allclose(np.array(d.strategy), mixed_strategy(a, p, guard), atol=1e-12)
        assert d.move in (ROCK, PAPER, SCISSORS)


# ---------------------------------------------------------------- unguarded: the best response


def test_unguarded_strategy_is_the_pure_best_response() -> None:
    p = np.array([0.8, 0.1, 0.1])
    rng = random.Random(6)
    for values in _random_rounds(200, seed=7):
        for score_player, score_bot in [(0, 0), (30, 50), (60, 20)]:
            a = payoff_matrix(values, score_player, score_bot)
            np.testing.assert_allclose(mixed_strategy(a, p, False), np.array([0.0, 1.0, 0.0]), atol=1e-12)
            assert decide(p, values, score_player, score_bot, rng, False).move == PAPER
    # Confident on scissors: rock.
    q = np.array([0.05, 0.15, 0.8])
    np.testing.assert_allclose(mixed_strategy(payoff_matrix(DEMO1, 0, 0), q, False), np.array([1.0, 0.0, 0.0]))


def test_a_uniform_prediction_plays_the_equilibrium_never_one_rank() -> None:
    """game.md: a uniform prediction must not make the bot exploitable (its best response is always the high move)."""
    rng = random.Random(7)
    for values in _random_rounds(200, seed=8):
        a = payoff_matrix(values, 0, 0)
        decision = decide(UNIFORM, values, 0, 0, rng, False)
        np.testing.assert_allclose(np.array(decision.strategy), equilibrium(a), atol=1e-12)
        near = UNIFORM + np.array([0.01, -0.005, -0.005])  # within NEAR_UNIFORM: still no prediction
        np.testing.assert_allclose(mixed_strategy(a, near, False), equilibrium(a), atol=1e-12)


def test_a_prediction_just_past_near_uniform_is_trusted() -> None:
    """Beyond NEAR_UNIFORM the bot plays the best expected value, no mixing."""
    rng = random.Random(7)
    for values in _random_rounds(200, seed=8):
        p = np.full(3, 1.0 / 3.0)
        p[ranked(values)[2]] += 0.03  # the low move is likelier: the high move still has the best value
        p[ranked(values)[1]] -= 0.03
        expected = payoff_matrix(values, 0, 0) @ p
        assert decide(p, values, 0, 0, rng, False).move == int(np.argmax(expected))


def test_unguarded_ties_share_the_best_response() -> None:
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(mixed_strategy(a, np.array([0.4, 0.4, 0.2]), False), np.array([0.5, 0.5, 0.0]))


def test_strategy_is_a_distribution() -> None:
    rng = np.random.default_rng(8)
    for values in _random_rounds(100, seed=9):
        for score_player, score_bot in _score_pairs():
            p = rng.dirichlet([2.0, 2.0, 2.0])
            for guard in (False, True):
                s = mixed_strategy(payoff_matrix(values, score_player, score_bot), p, guard)
                assert s.shape == (3,)
                assert (s >= -1e-12).all()
                assert abs(s.sum() - 1.0) < 1e-9


# ---------------------------------------------------------------- equilibrium


def test_equilibrium_is_maximin() -> None:
    grid = _simplex_grid(60)
    for values in _random_rounds(60, seed=10):
        for score_player, score_bot in _score_pairs():
            a = payoff_matrix(values, score_player, score_bot)
            x = equilibrium(a)
            assert x.shape == (3,)
            assert (x >= -1e-12).all()
            assert abs(x.sum() - 1.0) < 1e-9
            value = float((x @ a).min())
            # No bot mix on the grid guarantees more than the equilibrium ...
            assert float((grid @ a).min(axis=1).max()) <= value + 1e-9
            # ... and the player can hold the bot to (about) that value (minimax theorem).
            player_best = float((a @ grid.T).max(axis=0).min())
            assert value <= player_best + 1e-9
            assert player_best - value < 0.05 * float(np.abs(a).max())


def test_equilibrium_on_hand_made_matrices() -> None:
    # Matching pennies on rock/paper with a dominated scissors row: the optimum is on an edge.
    x = equilibrium(np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [-5.0, -5.0, -5.0]]))
    np.testing.assert_allclose(x, [0.5, 0.5, 0.0], atol=1e-9)
    # A dominant row: a pure strategy with value 2.
    a = np.array([[2.0, 3.0, 4.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x = equilibrium(a)
    np.testing.assert_allclose(x, [1.0, 0.0, 0.0], atol=1e-9)
    assert abs(float((x @ a).min()) - 2.0) < 1e-9
    # On the rock/paper edge, where replies paper and scissors pay the same: t = 1.8 / 3.3, value 4 / 11.
    a = np.array([[3.0, -1.0, 0.5], [-2.0, 2.0, 0.2], [-4.0, -4.0, -4.0]])
    x = equilibrium(a)
    np.testing.assert_allclose(x, [6 / 11, 5 / 11, 0.0], atol=1e-9)
    assert abs(float((x @ a).min()) - 4 / 11) < 1e-9


def test_equilibrium_value_is_zero_when_no_side_can_reach_target() -> None:
    # The matrix is then antisymmetric, so the game is fair: its value is 0.
    for values in _random_rounds(200, seed=11):
        a = payoff_matrix(values, 10, 20)
        x = equilibrium(a)
        assert abs(float((x @ a).min())) < 1e-9
        assert (x > 0).all()


def test_every_round_game_is_solved_once_per_process() -> None:
    """The cache of payoff matrices and equilibria holds every key a game can produce."""
    values = sorted({round_values(f"g-{i}", r) for i in range(400) for r in (1, 2)})
    near = [0, *range(TARGET - 20, TARGET)]  # far from the target, every score counts as 0
    assert len(values) == 15
    rng = random.Random(0)

    def play_every_key() -> None:
        for v in values:
            for score_player in near:
                for score_bot in near:
                    decide(UNIFORM, v, score_player, score_bot, rng, True)

    _round_game.cache_clear()
    play_every_key()
    assert _round_game.cache_info().misses == 15 * 21 * 21
    play_every_key()
    assert _round_game.cache_info().misses == 15 * 21 * 21  # the second pass finds every one of them


def test_surprise_is_zero_on_average_when_the_prediction_is_right() -> None:
    rng = np.random.default_rng(10)
    for values in _random_rounds(50, seed=11):
        p = rng.dirichlet([1.0, 1.0, 1.0])
        for bot in (ROCK, PAPER, SCISSORS):
            shortfalls = [surprise(p, values, bot, player) for player in (ROCK, PAPER, SCISSORS)]
            mean = sum(p[m] * shortfalls[m][0] for m in range(3))
            square = sum(p[m] * shortfalls[m][0] ** 2 for m in range(3))
            assert abs(mean) < 1e-12
            assert all(abs(v - square) < 1e-9 for _, v in shortfalls)
    # The bot plays rock (1.6) expecting scissors and meets paper: it loses paper's 1.0 and expected to win 1.6.
    assert surprise((0.0, 0.0, 1.0), DEMO1, ROCK, PAPER) == (-1.0 - 1.6, 0.0)


def test_moves_are_drawn_as_random_choices_draws_them() -> None:
    """A move is drawn from a strategy exactly as rng.choices(weights=strategy) draws it from the same random()."""
    strategies = [tuple(float(w) for w in row) for row in np.random.default_rng(3).dirichlet((0.5, 0.5, 0.5), 5000)]
    strategies += [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.0), (0.0, 0.5, 0.5)]
    ours, reference = random.Random(5), random.Random(5)
    for strategy in strategies * 4:
        assert draw_move(strategy, ours) == reference.choices((0, 1, 2), weights=strategy)[0]  # type: ignore[arg-type]

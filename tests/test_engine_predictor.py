"""engine.predictor: valid, replayable probabilities that learn a player's habits."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from engine.predictor import SHIFT_PRIOR, OnlinePredictor, Priors
from engine.rules import DRAW, LOSE, MOVE_INDEX, WIN, Round, hunter, outcome, points, round_values

ROCK, PAPER, SCISSORS = 0, 1, 2
DATA = Path(__file__).resolve().parents[1] / "datasets" / "wxz2014.csv"

# A player's rule: the move for the open round given the rounds so far and a random source.
Rule = Callable[[Sequence[Round], random.Random], int]


def _round(game_id: str, n: int, player: int, bot: int, before: Sequence[Round]) -> Round:
    """Round n with its values and cumulative scores (no end-of-game check: predictors do not need one)."""
    values = round_values(game_id, n)
    gained_player, gained_bot = points(values, player, bot)
    score_player, score_bot = (before[-1].score_player, before[-1].score_bot) if before else (0, 0)
    return Round(n, values, player, bot, score_player + gained_player, score_bot + gained_bot)


def _history(game_id: str, players: Sequence[int], bots: Sequence[int]) -> list[Round]:
    rounds: list[Round] = []
    for n, (player, bot) in enumerate(zip(players, bots, strict=True), start=1):
        rounds.append(_round(game_id, n, player, bot, rounds))
    return rounds


def _accuracy(rule: Rule, games: int, rounds: int, seed: int) -> float:
    """Top-1 accuracy on rounds 4.. of `games` games of `rule` against a uniformly random bot."""
    rng = random.Random(seed)
    hits = total = 0
    for g in range(games):
        game_id = f"acc-{seed}-{g}"
        predictor = OnlinePredictor()
        history: list[Round] = []
        for n in range(1, rounds + 1):
            move = rule(history, rng)
            if n >= 4:
                hits += int(np.argmax(predictor.predict(round_values(game_id, n)))) == move
                total += 1
            played = _round(game_id, n, move, rng.randrange(3), history)
            predictor.observe(played)
            history.append(played)
    return hits / total


def _random_history(seed: int, length: int) -> list[Round]:
    rng = random.Random(seed)
    return _history(
        f"rand-{seed}", [rng.randrange(3) for _ in range(length)], [rng.randrange(3) for _ in range(length)]
    )


def test_probabilities_are_positive_and_sum_to_one() -> None:
    for seed in range(40):
        history = _random_history(seed, 25)
        predictor = OnlinePredictor()
        for r in history:
            p = predictor.predict(r.values)
            assert p.shape == (3,)
            assert (p > 0).all()
            assert abs(float(p.sum()) - 1.0) < 1e-9
            predictor.observe(r)
    # Degenerate histories too: one move forever.
    predictor = OnlinePredictor(_history("same", [ROCK] * 30, [PAPER] * 30))
    p = predictor.predict(round_values("same", 31))
    assert (p > 0).all()
    assert abs(float(p.sum()) - 1.0) < 1e-9


def test_replay_from_history_equals_round_by_round() -> None:
    for seed in range(20):
        history = _random_history(100 + seed, 20)
        incremental = OnlinePredictor()
        for i, r in enumerate(history):
            rebuilt = OnlinePredictor(history[:i])
            assert np.array_equal(rebuilt.predict(r.values), incremental.predict(r.values))
            incremental.observe(r)
        values = round_values(f"rand-{100 + seed}", 21)
        assert np.array_equal(OnlinePredictor(tuple(history)).predict(values), incremental.predict(values))


def test_predict_does_not_change_state() -> None:
    history = _random_history(7, 12)
    predictor = OnlinePredictor(history)
    values = round_values("rand-7", 13)
    first = predictor.predict(values)
    for other in range(1, 6):
        predictor.predict(round_values("other", other))
    assert np.array_equal(predictor.predict(values), first)


def test_explicit_priors_decide_until_the_player_shows_habits() -> None:
    """A population that favours scissors and moves down after a win: so predicted in round 1 and after a win."""
    after_a_win_down = Priors(shift=((0.1, 0.1, 0.8), SHIFT_PRIOR[1], SHIFT_PRIOR[2]), move=(0.2, 0.2, 0.6))
    for game_id in ("priors-a", "priors-b", "priors-c"):
        first = round_values(game_id, 1)
        assert int(np.argmax(OnlinePredictor().predict(first))) != SCISSORS
        assert int(np.argmax(OnlinePredictor(priors=after_a_win_down).predict(first))) == SCISSORS
        won = _history(game_id, [ROCK], [SCISSORS])
        second = round_values(game_id, 2)
        shipped, explicit = OnlinePredictor(won).predict(second), OnlinePredictor(won, after_a_win_down).predict(second)
        assert int(np.argmax(explicit)) == SCISSORS  # down from rock
        assert explicit[SCISSORS] > shipped[SCISSORS] + 0.15


def test_the_population_response_table_predicts_from_round_two() -> None:
    """A population that plays scissors after winning with rock (row 3 * rock + win of the response table)."""
    rows = [(1 / 3, 1 / 3, 1 / 3)] * 9
    rows[3 * ROCK + WIN] = (0.05, 0.05, 0.9)
    scissors_after_rock_won = Priors(response=tuple(rows))
    for game_id in ("response-a", "response-b", "response-c"):
        second = round_values(game_id, 2)
        won = _history(game_id, [ROCK], [SCISSORS])
        shipped = OnlinePredictor(won).predict(second)
        assert OnlinePredictor(won, scissors_after_rock_won).predict(second)[SCISSORS] > shipped[SCISSORS] + 0.05


def test_replay_with_explicit_priors_equals_round_by_round() -> None:
    priors = Priors(shift=((0.2, 0.5, 0.3), (0.6, 0.2, 0.2), (0.3, 0.3, 0.4)), move=(0.3, 0.3, 0.4))
    history = _random_history(11, 20)
    incremental = OnlinePredictor(priors=priors)
    for i, r in enumerate(history):
        rebuilt = OnlinePredictor(history[:i], priors)
        assert np.array_equal(rebuilt.predict(r.values), incremental.predict(r.values))
        assert not np.array_equal(rebuilt.predict(r.values), OnlinePredictor(history[:i]).predict(r.values))
        incremental.observe(r)


@pytest.mark.parametrize(
    "bots",
    [[PAPER] * 10, [SCISSORS] * 10, [ROCK] * 10, [i % 3 for i in range(10)], [(2 * i) % 3 for i in range(10)]],
    ids=["bot-paper", "bot-scissors", "bot-rock", "bot-cycle-up", "bot-cycle-down"],
)
def test_learns_a_player_who_always_plays_rock(bots: list[int]) -> None:
    for game_id in ("rock-a", "rock-b", "rock-c"):
        history = _history(game_id, [ROCK] * 10, bots)
        p = OnlinePredictor(history).predict(round_values(game_id, 11))
        assert p[ROCK] > 0.6, (game_id, p)


def test_learns_a_player_who_always_plays_rock_against_a_random_bot() -> None:
    probs = []
    for seed in range(100):
        rng = random.Random(seed)
        game_id = f"rock-{seed}"
        history = _history(game_id, [ROCK] * 10, [rng.randrange(3) for _ in range(10)])
        p = OnlinePredictor(history).predict(round_values(game_id, 11))
        assert int(np.argmax(p)) == ROCK, (seed, p)
        probs.append(float(p[ROCK]))
    assert sum(probs) / len(probs) > 0.6


def test_always_rock_survives_a_first_win() -> None:
    """Rock 10 times; the bot plays paper 9 times, then scissors: the player's first win.

    After the unseen outcome "win", the conditional experts have no counts of their own; they
    must back off to this player's habit over every outcome (always stay), not to the population.
    """
    for length in (10, 30):
        history = _history("first-win", [ROCK] * length, [PAPER] * (length - 1) + [SCISSORS])
        p = OnlinePredictor(history).predict(round_values("first-win", length + 1))
        assert p[ROCK] > 0.6, (length, p)


def test_learns_a_cycler() -> None:
    for step in (1, 2):  # rock, paper, scissors, ... and rock, scissors, paper, ...
        for seed in range(15):
            rng = random.Random(seed)
            game_id = f"cycle-{step}-{seed}"
            moves = [(step * i) % 3 for i in range(10)]
            history = _history(game_id, moves, [rng.randrange(3) for _ in range(10)])
            p = OnlinePredictor(history).predict(round_values(game_id, 11))
            assert int(np.argmax(p)) == (step * 10) % 3, (step, seed, p)


def _win_stay_lose_shift(history: Sequence[Round], rng: random.Random) -> int:
    if not history:
        return rng.randrange(3)
    last = history[-1]
    result = outcome(last.player, last.bot)
    if result == WIN:
        return last.player
    if result == LOSE:
        return hunter(last.bot)  # what beats the move that just beat me
    assert result == DRAW
    return hunter(last.player)


def _uniform(history: Sequence[Round], rng: random.Random) -> int:
    return rng.randrange(3)


def test_beats_chance_against_win_stay_lose_shift() -> None:
    # 40 games x 27 predictions: chance is 1/3 with a standard deviation of about 0.014.
    assert _accuracy(_win_stay_lose_shift, games=40, rounds=30, seed=1) > 0.5


def test_no_edge_against_a_uniform_player() -> None:
    # Sanity check of the accuracy harness: nothing to learn, so about 1/3 (sd about 0.01).
    assert abs(_accuracy(_uniform, games=80, rounds=30, seed=2) - 1 / 3) < 0.05


def test_real_human_data_rounds_4_to_30() -> None:
    """wxz2014: every player's rounds 1-30 as one game, predicted online from round 1 with a fresh predictor.

    The data has no per-round values; each player's rounds get the values of a game named after the player.
    """
    by_player: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    with DATA.open(newline="") as f:
        for row in csv.DictReader(f):
            by_player[row["player_id"]].append(
                (int(row["round"]), MOVE_INDEX[row["move"]], MOVE_INDEX[row["opp_move"]])
            )
    assert len(by_player) == 72
    hits = total = 0
    for player_id, rows in by_player.items():
        rows.sort()
        assert [n for n, _, _ in rows[:30]] == list(range(1, 31))
        predictor = OnlinePredictor()
        history: list[Round] = []
        for n, move, opp in rows[:30]:
            if n >= 4:
                hits += int(np.argmax(predictor.predict(round_values(player_id, n)))) == move
                total += 1
            played = _round(player_id, n, move, opp, history)
            predictor.observe(played)
            history.append(played)
    assert total == 72 * 27
    assert hits / total > 0.40


def _wsls_games(seed: int, games: int, rounds: int) -> list[list[Round]]:
    rng = random.Random(seed)
    out: list[list[Round]] = []
    for g in range(games):
        history: list[Round] = []
        for n in range(1, rounds + 1):
            history.append(_round(f"past-{seed}-{g}", n, _win_stay_lose_shift(history, rng), rng.randrange(3), history))
        out.append(history)
    return out


def test_remembering_a_player_predicts_their_habit_from_the_first_rounds() -> None:
    """A win-stay-lose-shift player met before is read at once; a stranger's first rounds are not."""
    past = _wsls_games(seed=3, games=5, rounds=20)
    hits = {False: 0, True: 0}
    rng = random.Random(4)
    for g in range(60):
        game_id = f"now-{g}"
        history: list[Round] = []
        for n in range(1, 4):
            move = _win_stay_lose_shift(history, rng)
            history.append(_round(game_id, n, move, rng.randrange(3), history))
        move = _win_stay_lose_shift(history, rng)
        for remembered in (False, True):
            predictor = OnlinePredictor()
            if remembered:
                predictor.remember(past)
            for played in history:
                predictor.observe(played)
            hits[remembered] += int(np.argmax(predictor.predict(round_values(game_id, 4)))) == move
    assert hits[True] > 0.8 * 60 and hits[True] > hits[False] + 10, hits


def test_remembering_nothing_changes_nothing() -> None:
    history = _random_history(5, 12)
    fresh, empty = OnlinePredictor(), OnlinePredictor()
    empty.remember([])
    for played in history:
        fresh.observe(played)
        empty.observe(played)
    assert np.allclose(fresh.predict(round_values("x", 13)), empty.predict(round_values("x", 13)))


def test_memory_weighs_at_most_its_rounds() -> None:
    """However long the past, it counts as MEMORY_ROUNDS rounds: a longer past is not a stronger prior."""
    always_rock = [_history(f"rock-{g}", [ROCK] * 30, [PAPER] * 30) for g in range(10)]
    short, long = OnlinePredictor(), OnlinePredictor()
    short.remember(always_rock[:2])
    long.remember(always_rock)
    assert sum(short.frequency.table[None]) == pytest.approx(60.0)
    assert sum(long.frequency.table[None]) == pytest.approx(60.0)


def test_remember_after_the_first_round_is_refused() -> None:
    predictor = OnlinePredictor(_random_history(6, 1))
    with pytest.raises(ValueError, match="first round"):
        predictor.remember(_wsls_games(seed=7, games=1, rounds=5))

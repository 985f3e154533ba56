"""engine.rules against game.md: round values, outcomes, scoring and the end of a game."""

from __future__ import annotations

import hashlib
import math
import random

import pytest

from engine.rules import (
    DRAW,
    LOSE,
    MAX_ROUNDS,
    MOVE_INDEX,
    MOVES,
    TARGET,
    WIN,
    Game,
    Round,
    hunter,
    outcome,
    points,
    prey,
    ranked,
    round_values,
    winner,
)

ROCK, PAPER, SCISSORS = 0, 1, 2

# game.md, "Test vectors (rock, paper, scissors)", in tenths.
SPEC_VECTORS: list[tuple[str, int, tuple[int, int, int]]] = [
    ("demo", 1, (16, 10, 11)),
    ("demo", 2, (15, 20, 10)),
    ("demo", 3, (10, 15, 20)),
    ("g-test", 1, (10, 13, 18)),
    ("g-test", 2, (17, 10, 12)),
    ("g-test", 4, (10, 12, 17)),
]


def _beats(a: int, b: int) -> bool:
    """Rock beats scissors, scissors beats paper, paper beats rock (spelled out, not via engine)."""
    return (MOVES[a], MOVES[b]) in {("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")}


def _spec_values(game_id: str, n: int) -> tuple[int, int, int]:
    """game.md's algorithm written out independently of the engine."""
    h_low = hashlib.sha256(f"{game_id}:{n}:low".encode()).digest()
    low = int.from_bytes(h_low[0:2], "big") % 3
    h_base = hashlib.sha256(f"{game_id}:{n}:base".encode()).digest()
    base = [11, 12, 13, 14, 15][int.from_bytes(h_base[0:2], "big") % 5]
    values = [0, 0, 0]
    values[low] = 10
    for m in range(3):
        if m != low:
            values[m] = base + 5 if _beats(low, m) else base
    return (values[0], values[1], values[2])


def _random_ids(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"g-{rng.getrandbits(48):012x}" for _ in range(count)]


def _play_random_game(game_id: str, rng: random.Random) -> Game:
    game = Game(game_id)
    while not game.over:
        assert len(game.rounds) < MAX_ROUNDS, "a game must be over after 20 rounds"
        game.play(rng.randrange(3), rng.randrange(3))
    return game


# ---------------------------------------------------------------- round values


@pytest.mark.parametrize(("game_id", "round_number", "expected"), SPEC_VECTORS)
def test_round_values_match_spec_vectors(game_id: str, round_number: int, expected: tuple[int, int, int]) -> None:
    assert round_values(game_id, round_number) == expected


def test_round_values_follow_the_spec_algorithm() -> None:
    for game_id in _random_ids(200, seed=1):
        for n in range(1, MAX_ROUNDS + 1):
            assert round_values(game_id, n) == _spec_values(game_id, n), (game_id, n)


def test_round_values_structure() -> None:
    bases_seen: set[int] = set()
    lows_seen: set[int] = set()
    for game_id in _random_ids(300, seed=2):
        for n in range(1, MAX_ROUNDS + 1):
            values = round_values(game_id, n)
            assert all(isinstance(v, int) for v in values)
            assert values.count(10) == 1, values
            low = values.index(10)
            high = max(range(3), key=lambda m: values[m])
            middle = 3 - low - high
            base = values[middle]
            assert base in (11, 12, 13, 14, 15)
            assert values[high] == base + 5
            assert _beats(high, middle)
            assert _beats(middle, low)
            assert _beats(low, high)
            assert ranked(values) == (high, middle, low)
            bases_seen.add(base)
            lows_seen.add(low)
    assert bases_seen == {11, 12, 13, 14, 15}
    assert lows_seen == {ROCK, PAPER, SCISSORS}


def test_round_values_depend_on_game_and_round() -> None:
    assert round_values("demo", 1) == round_values("demo", 1)
    table = {(g, n): round_values(g, n) for g in _random_ids(30, seed=3) for n in range(1, 6)}
    assert len(set(table.values())) > 5


# ---------------------------------------------------------------- outcomes and points


def test_moves_order() -> None:
    assert MOVES == ("rock", "paper", "scissors")
    assert MOVE_INDEX == {"rock": 0, "paper": 1, "scissors": 2}


def test_outcome_table_from_players_view() -> None:
    expected = {
        (ROCK, ROCK): DRAW,
        (ROCK, PAPER): LOSE,
        (ROCK, SCISSORS): WIN,
        (PAPER, ROCK): WIN,
        (PAPER, PAPER): DRAW,
        (PAPER, SCISSORS): LOSE,
        (SCISSORS, ROCK): LOSE,
        (SCISSORS, PAPER): WIN,
        (SCISSORS, SCISSORS): DRAW,
    }
    for (player, bot), result in expected.items():
        assert outcome(player, bot) == result, (MOVES[player], MOVES[bot])


def test_prey_and_hunter() -> None:
    assert [prey(m) for m in range(3)] == [SCISSORS, ROCK, PAPER]
    assert [hunter(m) for m in range(3)] == [PAPER, SCISSORS, ROCK]
    for m in range(3):
        assert _beats(m, prey(m))
        assert _beats(hunter(m), m)


def test_points_hand_worked() -> None:
    values = (16, 10, 11)  # demo round 1
    assert points(values, ROCK, SCISSORS) == (16, 0)  # player wins with rock, worth 1.6
    assert points(values, SCISSORS, PAPER) == (11, 0)
    assert points(values, PAPER, ROCK) == (10, 0)
    assert points(values, SCISSORS, ROCK) == (0, 16)  # bot wins with its rock
    assert points(values, ROCK, PAPER) == (0, 10)
    assert points(values, PAPER, SCISSORS) == (0, 11)
    for m in range(3):
        assert points(values, m, m) == (5, 5)


def test_points_winner_gains_own_move_value() -> None:
    for game_id in _random_ids(50, seed=4):
        for n in range(1, 8):
            values = round_values(game_id, n)
            for player in range(3):
                for bot in range(3):
                    gained = points(values, player, bot)
                    if player == bot:
                        assert gained == (5, 5)
                    elif _beats(player, bot):
                        assert gained == (values[player], 0)
                    else:
                        assert gained == (0, values[bot])


def test_round_properties() -> None:
    r = Round(1, (16, 10, 11), ROCK, SCISSORS, 16, 0)
    assert r.outcome == WIN
    assert r.points == (16, 0)


# ---------------------------------------------------------------- end of game


def test_winner_function() -> None:
    assert TARGET == 100
    assert winner(0, 0) is None
    assert winner(99, 99) is None
    assert winner(100, 0) == "player"
    assert winner(0, 100) == "bot"
    assert winner(101, 103) == "bot"
    assert winner(104, 100) == "player"
    assert winner(100, 100) == "tie"


def test_game_ends_in_the_round_a_side_reaches_target() -> None:
    game = Game("end-test")
    # The player always wins with the round's high move; the bot plays the middle move.
    while not game.over:
        values = game.values(len(game.rounds) + 1)
        high, middle, _ = ranked(values)
        before = game.score
        played = game.play(high, middle)
        assert played.score_player == before[0] + values[high]
        assert played.score_bot == 0
    assert game.winner == "player"
    assert game.score[0] >= TARGET
    assert game.score[0] - game.rounds[-1].values[game.rounds[-1].player] < TARGET
    assert game.next_round is None


def test_all_draws_give_a_tie_after_exactly_20_rounds() -> None:
    game = Game("draws")
    for n in range(1, MAX_ROUNDS + 1):
        assert not game.over
        assert game.next_round == n
        game.play(n % 3, n % 3)
    assert game.score == (100, 100)
    assert game.over
    assert game.winner == "tie"
    with pytest.raises(ValueError):
        game.play(ROCK, PAPER)


def _draw_finish_game_id(want_bot_ahead: bool) -> tuple[str, int, int]:
    """A game id where player wins round 1 and bot wins round 2 with their high moves, and draws then take both over."""
    for i in range(10_000):
        game_id = f"draw-finish-{i}"
        a = max(round_values(game_id, 1))
        b = max(round_values(game_id, 2))
        if a != b and (b > a) == want_bot_ahead and math.ceil((100 - a) / 5) == math.ceil((100 - b) / 5):
            return game_id, a, b
    raise AssertionError("no suitable game id found")


@pytest.mark.parametrize("bot_ahead", [True, False])
def test_both_reaching_target_on_a_draw_higher_score_wins(bot_ahead: bool) -> None:
    game_id, a, b = _draw_finish_game_id(bot_ahead)
    game = Game(game_id)
    high1, middle1, _ = ranked(game.values(1))
    game.play(high1, middle1)  # player wins a
    high2, middle2, _ = ranked(game.values(2))
    game.play(middle2, high2)  # bot wins b
    assert game.score == (a, b)
    draws = 0
    while not game.over:
        game.play(ROCK, ROCK)
        draws += 1
    assert draws == math.ceil((100 - a) / 5)
    assert game.rounds[-1].outcome == DRAW
    score_player, score_bot = game.score
    assert score_player >= TARGET and score_bot >= TARGET
    assert game.rounds[-2].score_player < TARGET and game.rounds[-2].score_bot < TARGET
    assert game.winner == ("bot" if bot_ahead else "player")


def test_random_games_never_exceed_20_rounds_and_end_exactly_at_target() -> None:
    rng = random.Random(5)
    lengths = []
    for game_id in _random_ids(2000, seed=6):
        game = _play_random_game(game_id, rng)
        rounds = game.rounds
        lengths.append(len(rounds))
        assert 1 <= len(rounds) <= MAX_ROUNDS
        score_player = score_bot = 0
        for i, r in enumerate(rounds):
            assert r.number == i + 1
            assert r.values == round_values(game_id, r.number)
            gp, gb = points(r.values, r.player, r.bot)
            score_player, score_bot = score_player + gp, score_bot + gb
            assert (r.score_player, r.score_bot) == (score_player, score_bot)
            assert score_player + score_bot >= 10 * r.number
            if i < len(rounds) - 1:
                assert max(score_player, score_bot) < TARGET
        assert max(score_player, score_bot) >= TARGET
        assert game.winner == winner(score_player, score_bot)
        assert game.winner in ("player", "bot", "tie")
    mean = sum(lengths) / len(lengths)
    assert 12.0 < mean < 16.0  # game.md: about 14 on average between random players


def test_playing_after_game_over_raises() -> None:
    rng = random.Random(7)
    for game_id in _random_ids(20, seed=8):
        game = _play_random_game(game_id, rng)
        count = len(game.rounds)
        with pytest.raises(ValueError):
            game.play(ROCK, PAPER)
        assert len(game.rounds) == count


def test_game_rebuilt_from_rounds_is_identical() -> None:
    rng = random.Random(9)
    for game_id in _random_ids(50, seed=10):
        game = _play_random_game(game_id, rng)
        rebuilt = Game(game_id, tuple(game.rounds))
        assert rebuilt.rounds == game.rounds
        assert rebuilt.score == game.score
        assert rebuilt.winner == game.winner

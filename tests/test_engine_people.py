"""engine.people: response tables, smoothing to the population, the table players and the table bots."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from engine.people import (
    Counts,
    ResponseTable,
    TableBot,
    TablePlayer,
    best_move,
    count,
    play,
    population_table,
    smoothed,
)
from engine.policy import payoff_matrix
from engine.rules import DRAW, LOSE, WIN, Game, Round

ROCK, PAPER, SCISSORS = 0, 1, 2
UNIFORM = (1 / 3, 1 / 3, 1 / 3)


def _rounds(pairs: list[tuple[int, int]]) -> list[Round]:
    """Rounds of (player, other) moves; scores do not matter to the tables."""
    return [Round(n, (10, 10, 10), p, o, 0, 0) for n, (p, o) in enumerate(pairs, start=1)]


def _uniform_table() -> ResponseTable:
    return ResponseTable(UNIFORM, (UNIFORM,) * 9)


def test_count_rows_are_own_last_move_and_last_outcome() -> None:
    # rock v scissors (win) -> paper; paper v paper (draw) -> paper; paper v scissors (lose) -> scissors.
    counts = count([_rounds([(ROCK, SCISSORS), (PAPER, PAPER), (PAPER, SCISSORS), (SCISSORS, ROCK)])])
    assert counts.first == (1, 0, 0)
    expected = [[0, 0, 0] for _ in range(9)]
    expected[3 * ROCK + WIN][PAPER] += 1
    expected[3 * PAPER + DRAW][PAPER] += 1
    expected[3 * PAPER + LOSE][SCISSORS] += 1
    assert [list(r) for r in counts.rows] == expected


def test_count_adds_up_games_without_joining_them() -> None:
    one = _rounds([(ROCK, ROCK), (PAPER, ROCK)])
    two = _rounds([(SCISSORS, ROCK), (SCISSORS, ROCK)])
    counts = count([one, two])
    assert counts.first == (1, 0, 1)
    assert sum(map(sum, counts.rows)) == 2  # the last round of `one` is not followed by the first of `two`


def test_population_table_is_the_row_shares_and_first_is_all_moves() -> None:
    rows = tuple((3 * k + 1, 1, 0) for k in range(9))
    table = population_table(Counts((5, 0, 0), rows))
    assert table.rows[2] == pytest.approx((7 / 8, 1 / 8, 0.0))
    moves = np.sum(rows, axis=0)
    assert table.first == pytest.approx(tuple(moves / moves.sum()))  # not the five first moves


def test_population_table_refuses_an_empty_row() -> None:
    rows = ((1, 1, 1),) * 8 + ((0, 0, 0),)
    with pytest.raises(ValueError):
        population_table(Counts((1, 1, 1), rows))


def test_smoothing_adds_pseudo_rounds_of_the_population_row() -> None:
    population = ResponseTable((0.5, 0.25, 0.25), tuple((0.2, 0.3, 0.5) for _ in range(9)))
    rows = ((10, 0, 0),) + ((0, 0, 0),) * 8
    table = smoothed(Counts((1, 0, 0), rows), population, strength=10.0)
    assert table.rows[0] == pytest.approx(((10 + 2) / 20, 3 / 20, 5 / 20))
    assert table.rows[5] == pytest.approx((0.2, 0.3, 0.5))  # never seen: the population's row
    assert table.first == pytest.approx(((10 + 5) / 20, 2.5 / 20, 2.5 / 20))  # own moves: 10 rocks


def test_smoothing_moves_to_the_person_as_counts_grow() -> None:
    population = _uniform_table()
    few = smoothed(Counts((0, 0, 0), ((3, 0, 0),) * 9), population)
    many = smoothed(Counts((0, 0, 0), ((300, 0, 0),) * 9), population)
    assert 1 / 3 < few.rows[4][ROCK] < many.rows[4][ROCK] < 1.0


def test_distribution_uses_the_row_of_the_last_round() -> None:
    rows = tuple((k / 36, 1 - k / 36 - 0.25, 0.25) for k in range(9))
    table = ResponseTable((0.6, 0.2, 0.2), rows)
    assert table.distribution([]) == (0.6, 0.2, 0.2)
    last = _rounds([(ROCK, ROCK), (SCISSORS, ROCK)])  # scissors lost to rock
    assert table.distribution(last) == rows[3 * SCISSORS + LOSE]


def test_table_player_draws_from_its_row_and_ignores_values() -> None:
    rows = tuple(((1.0, 0.0, 0.0) if k == 3 * PAPER + WIN else UNIFORM) for k in range(9))
    player = TablePlayer(ResponseTable(UNIFORM, rows), random.Random(1))
    after_win = _rounds([(PAPER, ROCK)])
    assert {player.move(after_win, v) for v in ((10, 15, 20), (20, 10, 15)) for _ in range(50)} == {ROCK}
    drawn = Counter(player.move(_rounds([(ROCK, ROCK)]), (10, 11, 16)) for _ in range(3000))
    assert all(900 < drawn[m] < 1100 for m in range(3))


def test_best_move_is_the_argmax_of_expected_value() -> None:
    values = (10, 12, 17)
    for p in ((0.6, 0.2, 0.2), (0.2, 0.6, 0.2), (0.2, 0.2, 0.6), UNIFORM):
        assert best_move(p, values, 0, 0) == int(np.argmax(payoff_matrix(values, 0, 0) @ np.array(p)))
    assert best_move((0.9, 0.05, 0.05), values, 0, 0) == PAPER  # paper beats the likely rock
    # Near the end the bonus for ending the game decides: the bot at 9.0 wins the game with any winning move.
    assert best_move((0.05, 0.05, 0.9), values, 0, 90) == ROCK


def test_table_bot_plays_the_best_response_to_its_table() -> None:
    always_rock_after_a_win = tuple(((0.9, 0.05, 0.05) if k % 3 == WIN else UNIFORM) for k in range(9))
    bot = TableBot(ResponseTable(UNIFORM, always_rock_after_a_win))
    game = Game("table-bot")
    game.play(SCISSORS, PAPER)  # the player won with scissors
    assert bot.choose(game) == PAPER
    expected = best_move(UNIFORM, game.values(1), 0, 0)
    assert bot.choose(Game("table-bot")) == expected


def test_the_oracle_beats_the_plain_bot_on_a_player_unlike_the_population() -> None:
    population = _uniform_table()
    stubborn = ResponseTable((0.8, 0.1, 0.1), tuple((0.8, 0.1, 0.1) for _ in range(9)))  # a rock lover
    oracle = sum(
        play(f"o-{g}", TablePlayer(stubborn, random.Random(g)), TableBot(stubborn)).winner == "bot" for g in range(200)
    )
    plain = sum(
        play(f"o-{g}", TablePlayer(stubborn, random.Random(g)), TableBot(population)).winner == "bot"
        for g in range(200)
    )
    assert oracle > 190 and oracle > plain + 20


def test_play_follows_the_rules_and_feeds_the_bot_every_round() -> None:
    seen: list[Round] = []

    class Recording(TableBot):
        def observe(self, played: Round) -> None:
            seen.append(played)

    game = play("rules", TablePlayer(_uniform_table(), random.Random(3)), Recording(_uniform_table()))
    assert game.over and seen == game.rounds
    replay = Game("rules", game.rounds)
    assert replay.score == game.score and replay.winner == game.winner


def test_same_seed_same_game() -> None:
    table = smoothed(Counts((3, 1, 1), ((5, 2, 1),) * 9), _uniform_table())
    games = [play("seed", TablePlayer(table, random.Random(7)), TableBot(_uniform_table())) for _ in range(2)]
    assert [(r.player, r.bot) for r in games[0].rounds] == [(r.player, r.bot) for r in games[1].rounds]

"""engine.bot: prediction and policy from the first round; state from history."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from engine.bot import Bot, Choice
from engine.players import population
from engine.policy import payoff_matrix
from engine.rules import Game, hunter

ROCK = 0


def _play_against_random(bot: Bot, game: Game, rng: random.Random, player_rng: random.Random) -> list[Choice]:
    choices = []
    while not game.over:
        choice = bot.choose(game, rng)
        choices.append(choice)
        bot.observe(game.play(player_rng.randrange(3), choice.move))
    return choices


def test_the_policy_decides_from_the_first_round() -> None:
    for g in range(10):
        game = Game(f"bot-{g}")
        choices = _play_against_random(Bot(), game, random.Random(g), random.Random(100 + g))
        assert len(choices) == len(game.rounds) >= 4
        assert [r.bot for r in game.rounds] == [c.move for c in choices]
        assert {c.source for c in choices} == {"online"}  # no trained model here: the online predictor alone


def test_choice_reports_prediction_and_expected_values() -> None:
    rng = random.Random(1)
    player_rng = random.Random(2)
    game = Game("choice-report")
    bot = Bot()
    while not game.over:
        number = len(game.rounds) + 1
        values = game.values(number)
        p = bot.predictor.predict(values)
        choice = bot.choose(game, rng)
        assert choice.probs == (float(p[0]), float(p[1]), float(p[2]))
        assert abs(sum(choice.probs) - 1.0) < 1e-9
        expected = payoff_matrix(values, *game.score) @ p
        np.testing.assert_allclose(choice.expected, expected, atol=1e-12)
        bot.observe(game.play(player_rng.randrange(3), choice.move))


def test_choose_after_game_over_raises() -> None:
    game = Game("over")
    bot = Bot()
    _play_against_random(bot, game, random.Random(3), random.Random(4))
    with pytest.raises(ValueError):
        bot.choose(game, random.Random(5))


def test_rebuilt_bot_matches_the_one_that_observed_the_game() -> None:
    for g in range(15):
        rng = random.Random(g)
        player_rng = random.Random(1000 + g)
        game = Game(f"rebuild-{g}")
        live = Bot()
        while not game.over:
            rebuilt = Bot(tuple(game.rounds))
            number = len(game.rounds) + 1
            values = game.values(number)
            assert np.array_equal(rebuilt.predictor.predict(values), live.predictor.predict(values))
            assert (rebuilt.shortfall, rebuilt.variance, rebuilt.guarded) == (
                live.shortfall,
                live.variance,
                live.guarded,
            )
            seed = rng.getrandbits(32)
            choice = live.choose(game, random.Random(seed))
            assert rebuilt.choose(game, random.Random(seed)) == choice
            live.observe(game.play(player_rng.randrange(3), choice.move))


def test_bot_beats_the_simulated_population() -> None:
    rng = random.Random(2024)
    results: Counter[str | None] = Counter()
    for i, player in enumerate(population(7, 200)):
        game = Game(f"pop-{i}")
        bot = Bot()
        while not game.over:
            choice = bot.choose(game, rng)
            number = len(game.rounds) + 1
            move = player.move(game.rounds, game.values(number))
            bot.observe(game.play(move, choice.move))
        results[game.winner] += 1
    assert sum(results.values()) == 200
    # Against a fair coin, 200 games give 100 +- 7 wins; 0.6 is almost 3 standard deviations above.
    assert results["bot"] >= 120, results
    assert results["bot"] > 2 * results["player"], results


def test_bot_beats_a_player_who_always_plays_rock() -> None:
    rng = random.Random(9)
    wins = 0
    for g in range(50):
        game = Game(f"rock-{g}")
        bot = Bot()
        while not game.over:
            bot.observe(game.play(ROCK, bot.choose(game, rng).move))
        wins += game.winner == "bot"
    assert wins >= 48


def test_bot_guards_against_a_player_who_reads_its_moves() -> None:
    """A player who always plays what beats the bot's move: within four rounds the bot's net points fall far
    below what its predictions expected, and from then on it plays the equilibrium, several moves in a round."""
    for g in range(10):
        game = Game(f"read-{g}")
        bot = Bot()
        rng = random.Random(g)
        while not game.over:
            choice = bot.choose(game, rng)
            bot.observe(game.play(hunter(choice.move), choice.move))
            if len(game.rounds) >= 4:
                assert bot.guarded, (g, len(game.rounds), bot.shortfall, bot.variance)
        assert game.winner == "player"  # no guard saves a game against a player who sees the bot's move
    moves = {Bot(game.rounds).choose(Game(game.game_id, game.rounds[:-1]), random.Random(s)).move for s in range(40)}
    assert len(moves) > 1


def test_bot_trusts_its_predictions_while_they_hold() -> None:
    """Against a player it reads (always rock) the bot is never guarded: from round 4 it expects rock and plays
    its pure best response (paper, or rock where a draw's 0.5 ends the game)."""
    for g in range(10):
        game = Game(f"trust-{g}")
        bot = Bot()
        rng = random.Random(g)
        while not game.over:
            choice = bot.choose(game, rng)
            if len(game.rounds) >= 3:
                assert choice.probs[ROCK] == max(choice.probs)
                assert choice.move == max(range(3), key=lambda m: choice.expected[m])
            bot.observe(game.play(ROCK, choice.move))
            assert not bot.guarded
        assert sum(r.bot == 1 for r in game.rounds[3:]) >= len(game.rounds) - 4

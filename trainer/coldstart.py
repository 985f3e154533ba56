"""Games of simulated players against the online bot, played in memory for a first training set."""

from __future__ import annotations

import random
from collections.abc import Callable

from engine.bot import Bot
from engine.players import population
from engine.rules import Game
from trainer.datasets import History


def simulated_histories(games: int, seed: int, progress: Callable[[int], None] | None = None) -> list[History]:
    """`games` whole games of the simulated population against the bot (engine only, no I/O)."""
    rng = random.Random(seed)
    out = []
    for i, player in enumerate(population(seed, games)):
        game = Game(f"sim-{seed}-{i}")
        bot = Bot()
        while not game.over:
            choice = bot.choose(game, rng)
            number = game.next_round
            assert number is not None
            played = game.play(player.move(game.rounds, game.values(number)), choice.move)
            bot.observe(played)
        out.append(History(key=game.game_id, source="sim", rounds=list(game.rounds)))
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1)
    return out

"""A bot that remembers you: how much sooner the bot adapts to a returning player when it starts from their past games.

Each of the 36 people-like players of the people yardstick (engine/people.py TablePlayer, wxz2014 people never seen
in training) plays a series of games against the server's bot offline (the online predictor, no trained model),
twice on the same game ids and seeds: once with a bot that meets them afresh every game, once with a bot that
remembers their last games (engine/predictor.py OnlinePredictor.remember, as the server does for a player key).
Figures: the bot's net points per round by round band in the first game and in the returning games of both arms,
the paired game-win rate of the returning games, and the per-round curve of the first rounds, with the round at
which each arm reaches the level of a bot that has known the player long (its rounds 11+ with memory).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from bench.people import BANDS, Played, _paired, _rate, bands, tables
from engine.bot import Bot
from engine.people import TablePlayer, play
from engine.rules import Game, Round
from server.games import MEMORY_GAMES

CURVE_ROUNDS = 10


class _Bot:
    """The server's bot offline, remembering `memory` (past games, oldest first); keeps its predictions' top moves."""

    def __init__(self, memory: list[list[Round]], rng: random.Random) -> None:
        self.bot = Bot(memory=memory)
        self.rng = rng
        self.top: list[int] = []

    def choose(self, game: Game) -> int:
        choice = self.bot.choose(game, self.rng)
        self.top.append(max(range(3), key=choice.probs.__getitem__))
        return choice.move

    def observe(self, played: Round) -> None:
        self.bot.observe(played)


Hits = list[bool]  # per round of a game: did the bot's most likely move come true


def _series(person: int, table: Any, seed: int, games: int, remember: bool) -> list[tuple[Played, Hits]]:
    """One player's `games` games in a row; the bot remembers the earlier ones when `remember`."""
    player = TablePlayer(table, random.Random(seed))
    past: list[list[Round]] = []
    out = []
    for g in range(games):
        game_id = f"returning-{seed}-{g}"
        bot = _Bot(past[-MEMORY_GAMES:] if remember else [], random.Random(seed * 100 + g))
        game = play(game_id, player, bot)
        past.append(list(game.rounds))
        hits = [top == r.player for top, r in zip(bot.top, game.rounds, strict=True)]
        out.append((Played(person, seed, "memory" if remember else "fresh", game_id, tuple(game.rounds)), hits))
    return out


def _accuracy(hits: list[Hits], first: int, last: int) -> float:
    """Top-1 accuracy of the bot's predictions in rounds first..last of these games."""
    seen = [h for game in hits for h in game[first - 1 : last]]
    return round(float(np.mean(seen)), 4)


def _reached(curve: list[float], level: float) -> int | None:
    """The first round from which the mean accuracy of that round and the next two is at `level` or above."""
    for i in range(len(curve) - 2):
        if np.mean(curve[i : i + 3]) >= level:
            return i + 1
    return None


def returning(series_per_person: int = 6, games: int = 6) -> dict[str, Any]:
    """The same people in the same games against a bot that forgets and one that remembers them."""
    _, people = tables()
    arms: dict[str, list[tuple[Played, Hits]]] = {"fresh": [], "memory": []}
    for person, table in enumerate(people):
        for s in range(series_per_person):
            for arm, games_ in arms.items():
                games_ += _series(person, table, 1000 * person + s, games, remember=arm == "memory")
    first = [p for p in arms["fresh"] if p[0].game_id.endswith("-0")]
    groups = {
        "first_game": first,
        "returning_fresh": [p for p in arms["fresh"] if not p[0].game_id.endswith("-0")],
        "returning_memory": [p for p in arms["memory"] if not p[0].game_id.endswith("-0")],
    }
    known = _accuracy([h for _, h in groups["returning_memory"]], 11, 99)
    curves = {
        name: [_accuracy([h for _, h in group], n, n) for n in range(1, CURVE_ROUNDS + 1)]
        for name, group in groups.items()
    }
    band = {name: bands([p for p, _ in group]) for name, group in groups.items()}
    net = {name: {b: figures["net_points_per_round"] for b, figures in band[name].items()} for name in band}
    won = {name: np.array([p.bot_won for p, _ in group]) for name, group in groups.items()}
    return {
        "people": len(people),
        "series_per_person": series_per_person,
        "games_per_series": games,
        "memory_games": MEMORY_GAMES,
        "accuracy": {
            name: {b: _accuracy([h for _, h in group], lo, hi) for b, lo, hi in BANDS} for name, group in groups.items()
        },
        "accuracy_curve": curves,
        "known_level": known,
        "round_reaching_known_level": {name: _reached(c, known) for name, c in curves.items()},
        "bands": band,
        "band_memory_minus_fresh": {
            b: round(net["returning_memory"][b] - net["returning_fresh"][b], 4) for b, _, _ in BANDS
        },
        "win_rate": {name: _rate(w) for name, w in won.items()},
        "memory_minus_fresh": _paired(won["returning_memory"], won["returning_fresh"]),
    }

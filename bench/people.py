"""The people yardstick: the bot against people-like players built from wxz2014 people never seen in training.

Each of the 36 players of groups 07-12 becomes a `TablePlayer` (engine/people.py): their own response
table, smoothed to the population table of the 36 training players (groups 01-06). Each plays whole
games against the served bot through the protocol (a real server, every opponent). The same games
(same game id, so the same round values; the same person with the same random seed) are replayed
offline against the plain bot (best expected value under the population table: no openings, no
mixing) and the oracle (best expected value under the person's own table). Figures: game-win rates
with standard errors, the paired difference to the plain bot, and net points per round by round band.

`openings` measures the scripted openings of rounds 1-3 offline against the same people and against
the simulated personas (engine/players.py): the bot (online predictor, no trained model) with the
named openings drawn by weight, with each opening alone, with its own policy and with the plain
population-table choice in rounds 1-3, and the plain bot with and without random moves in rounds 1-3,
all on the same seeds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Server
from clients.client import Client
from engine.bot import Bot
from engine.openings import OPENING_ROUNDS, OPENINGS, Opening, draw_opening
from engine.opponents import OPPONENTS
from engine.people import (
    OfflineBot,
    Player,
    ResponseTable,
    TableBot,
    TablePlayer,
    best_move,
    count,
    play,
    population_table,
    smoothed,
)
from engine.players import population
from engine.policy import decide, payoff_matrix
from engine.rules import Game, Round, Values, ranked, winner
from trainer.cycle import RECORDED_HOLDOUT, recorded_histories
from trainer.datasets import histories_from_csv

BANDS: tuple[tuple[str, int, int], ...] = (("1-3", 1, 3), ("4-10", 4, 10), ("11+", 11, 99))
CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class Played:
    """One game of one person: who, with which seed, against which opponent, and its rounds."""

    person: int
    seed: int
    opponent: str
    game_id: str
    rounds: tuple[Round, ...]

    @property
    def bot_won(self) -> bool:
        last = self.rounds[-1]
        return winner(last.score_player, last.score_bot) == "bot"


def tables() -> tuple[ResponseTable, list[ResponseTable]]:
    """The population table of the training players and the smoothed tables of the unseen ones."""
    population_ = population_table(count(h.rounds for h in recorded_histories()))
    unseen = sorted(histories_from_csv(RECORDED_HOLDOUT), key=lambda h: h.player)
    return population_, [smoothed(count([h.rounds]), population_) for h in unseen]


async def _served(url: str, people: Sequence[ResponseTable], games_per_person: int) -> list[Played]:
    """Every person plays `games_per_person` games against every opponent through the protocol."""
    jobs = [
        (i, 1000 * i + g, opponent.id)
        for i in range(len(people))
        for g in range(games_per_person)
        for opponent in OPPONENTS
    ]
    queue: asyncio.Queue[tuple[int, int, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    played: list[Played] = []

    async def worker() -> None:
        client = await Client.open(url)
        try:
            while not queue.empty():
                person, seed, opponent = queue.get_nowait()
                player = TablePlayer(people[person], random.Random(seed))
                game = await client.start(opponent, tag="sim")
                while game.open_round is not None:
                    done, answer, _ = await client.move(game, player.move(game.rounds, game.values()))
                    if done is None:
                        raise RuntimeError(f"the server refused a move: {answer}")
                played.append(Played(person, seed, opponent, game.game_id, tuple(game.rounds)))
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return sorted(played, key=lambda p: (p.opponent, p.person, p.seed))


def _replay(served: Played, player: Player, bot: OfflineBot) -> Played:
    game = play(served.game_id, player, bot)
    return Played(served.person, served.seed, "offline", served.game_id, tuple(game.rounds))


def _rate(wins: np.ndarray) -> dict[str, float]:
    return {"rate": round(float(wins.mean()), 4), "se": round(float(wins.std() / np.sqrt(len(wins))), 4)}


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The mean of a - b over paired games, with its standard error."""
    d = a.astype(float) - b.astype(float)
    return {"diff": round(float(d.mean()), 4), "se": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4)}


def bands(games: Sequence[Played]) -> dict[str, dict[str, float]]:
    """Per round band: the bot's mean net points per round (its points minus the player's) with a standard error
    clustered by game, its round-win rate, and how many rounds were played in the band."""
    out = {}
    for name, first, last in BANDS:
        net, counts, won = [], [], 0
        for g in games:
            rounds = [r for r in g.rounds if first <= r.number <= last]
            if rounds:
                net.append(sum(r.points[1] - r.points[0] for r in rounds) / 10.0)
                counts.append(len(rounds))
                won += sum(r.points[1] > r.points[0] for r in rounds)
        n_rounds = sum(counts)
        mean = sum(net) / n_rounds
        residual = np.array(net) - mean * np.array(counts)
        se = float(np.sqrt(np.sum(residual**2)) / n_rounds)
        out[name] = {
            "net_points_per_round": round(mean, 4),
            "se": round(se, 4),
            "round_win_rate": round(won / n_rounds, 4),
            "rounds": n_rounds,
        }
    return out


def people_yardstick(data_dir: Path, store: Path, games_per_person: int = 10) -> dict[str, Any]:
    """The served bot, the plain bot and the oracle against the same people-like players in the same games."""
    population_, people = tables()
    server = Server(data_dir, store, {"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_AB_SPLIT": "0"})
    try:
        served = asyncio.run(_served(server.ws_url, people, games_per_person))
    finally:
        server.stop()
    plain = [_replay(s, TablePlayer(people[s.person], random.Random(s.seed)), TableBot(population_)) for s in served]
    oracle = [
        _replay(s, TablePlayer(people[s.person], random.Random(s.seed)), TableBot(people[s.person])) for s in served
    ]
    won = {
        "bot": np.array([g.bot_won for g in served]),
        "plain": np.array([g.bot_won for g in plain]),
        "oracle": np.array([g.bot_won for g in oracle]),
    }
    by_opponent = {}
    for opponent in OPPONENTS:
        mask = np.array([g.opponent == opponent.id for g in served])
        by_opponent[opponent.id] = {
            "bot": _rate(won["bot"][mask]),
            "bot_minus_plain": _paired(won["bot"][mask], won["plain"][mask]),
        }
    bot_bands, plain_bands = bands(served), bands(plain)
    return {
        "people": len(people),
        "games": len(served),
        "games_per_person_per_opponent": games_per_person,
        "win_rate": {name: _rate(w) for name, w in won.items()},
        "bot_minus_plain": _paired(won["bot"], won["plain"]),
        "oracle_minus_plain": _paired(won["oracle"], won["plain"]),
        "by_opponent": by_opponent,
        "bands": {"bot": bot_bands, "plain": plain_bands, "oracle": bands(oracle)},
        "band_bot_minus_plain": {
            name: round(bot_bands[name]["net_points_per_round"] - plain_bands[name]["net_points_per_round"], 4)
            for name, _, _ in BANDS
        },
    }


FirstRounds = Callable[[Game, Bot, random.Random], int]


class _OfflineBot:
    """The server's bot offline (online predictor, no trained model); rounds 1-3 by its policy, by a named
    opening, or by another choice of their own."""

    def __init__(self, opening: Opening | None, first: FirstRounds | None, rng: random.Random) -> None:
        self.bot = Bot()
        self.opening = opening
        self.first = first
        self.rng = rng

    def choose(self, game: Game) -> int:
        number = len(game.rounds) + 1
        if number <= OPENING_ROUNDS and self.opening is not None:
            return self.opening.move(number, game.values(number))
        if number <= OPENING_ROUNDS and self.first is not None:
            return self.first(game, self.bot, self.rng)
        return self.bot.choose(game, self.rng).move

    def observe(self, played: Round) -> None:
        self.bot.observe(played)


class _RandomStart(TableBot):
    """The plain bot with uniformly random moves in rounds 1-3."""

    def __init__(self, table: ResponseTable, rng: random.Random) -> None:
        super().__init__(table)
        self.rng = rng

    def choose(self, game: Game) -> int:
        return self.rng.randrange(3) if len(game.rounds) < OPENING_ROUNDS else super().choose(game)


def _scripted(opening: Opening) -> Callable[[random.Random], _OfflineBot]:
    return lambda rng: _OfflineBot(opening, None, rng)


def openings(games: int = 3600) -> dict[str, Any]:
    """Game-win rate of the offline bot with each choice for rounds 1-3, and the paired difference to the bot
    playing its own policy there, against the people-like players and against the simulated personas."""
    population_, people = tables()

    def plain(game: Game, bot: Bot, rng: random.Random) -> int:
        return best_move(population_.distribution(game.rounds), game.values(len(game.rounds) + 1), *game.score)

    variants: dict[str, Callable[[random.Random], _OfflineBot]] = {
        "named openings, drawn by weight": lambda rng: _OfflineBot(draw_opening(rng), None, rng),
        "policy": lambda rng: _OfflineBot(None, None, rng),
        "plain population-table choice": lambda rng: _OfflineBot(None, plain, rng),
        **{o.name: _scripted(o) for o in OPENINGS},
    }
    players: dict[str, Callable[[int], Player]] = {
        "people": lambda seed: TablePlayer(people[seed % len(people)], random.Random(seed)),
        "personas": lambda seed: population(seed, 1)[0],
    }
    out: dict[str, Any] = {"games_per_variant": games}
    for kind, make_player in players.items():
        won = {
            name: np.array(
                [
                    play(f"opening-{seed}", make_player(seed), make(random.Random(seed))).winner == "bot"
                    for seed in range(games)
                ]
            )
            for name, make in variants.items()
        }
        out[kind] = {name: {**_rate(w), "minus_policy": _paired(w, won["policy"])} for name, w in won.items()}
        plain_bot = np.array(
            [play(f"opening-{s}", make_player(s), TableBot(population_)).winner == "bot" for s in range(games)]
        )
        random_start = np.array(
            [
                play(f"opening-{s}", make_player(s), _RandomStart(population_, random.Random(s))).winner == "bot"
                for s in range(games)
            ]
        )
        out[kind]["plain bot"] = _rate(plain_bot)
        out[kind]["plain bot, random in rounds 1-3"] = {
            **_rate(random_start),
            "minus_plain_bot": _paired(random_start, plain_bot),
        }
    return out


class _Policy(_OfflineBot):
    """The offline bot (online predictor, no trained model, its policy from round 1) with a fixed or gated guard."""

    def __init__(self, guard: bool | None, rng: random.Random) -> None:
        super().__init__(None, None, rng)
        self.guard = guard

    def choose(self, game: Game) -> int:
        if self.guard is None:
            return self.bot.choose(game, self.rng).move
        number = len(game.rounds) + 1
        values = game.values(number)
        return decide(self.bot.predictor.predict(values), values, *game.score, self.rng, self.guard).move


def _best_reply(strategy: Sequence[float], values: Values, score_player: int, score_bot: int) -> int:
    """The player's move that costs the bot most against the bot's mix `strategy`."""
    return int(np.argmin(np.asarray(strategy) @ payoff_matrix(values, score_player, score_bot)))


class Reader:
    """An adaptive player who knows the bot's algorithm: rebuilds the bot from the game so far, reads its mix
    for the round (the move itself stays secret) and plays the best reply to that mix."""

    def __init__(self, guard: bool | None) -> None:
        self.guard = guard

    def move(self, history: list[Round], values: Values) -> int:
        bot = Bot(history)
        score = (history[-1].score_player, history[-1].score_bot) if history else (0, 0)
        guard = bot.guarded if self.guard is None else self.guard
        strategy = decide(bot.predictor.predict(values), values, *score, random.Random(0), guard).strategy
        return _best_reply(strategy, values, *score)


class RankCounter:
    """An adaptive player who learns which value rank (high, middle, low) the bot plays and plays the best
    reply to those counts (one pseudo-count of each rank)."""

    def move(self, history: list[Round], values: Values) -> int:
        counts = [1.0, 1.0, 1.0]
        for r in history:
            counts[ranked(r.values).index(r.bot)] += 1.0
        strategy = [0.0, 0.0, 0.0]
        for rank, move in enumerate(ranked(values)):
            strategy[move] = counts[rank] / sum(counts)
        score = (history[-1].score_player, history[-1].score_bot) if history else (0, 0)
        return _best_reply(strategy, values, *score)


GUARDS: dict[str, bool | None] = {
    "guarded when read (served)": None,
    "always the equilibrium": True,
    "never guarded (best response)": False,
}


def adaptive(games: int = 720) -> dict[str, Any]:
    """Game-win rate of the offline bot with each guard against people-like players and two adaptive players:
    one who knows the bot's algorithm (Reader) and one who learns the bot's value-rank habit (RankCounter)."""
    _, people = tables()
    out: dict[str, Any] = {"games_per_cell": games}
    for name, guard in GUARDS.items():
        reader = Reader(guard)  # stateless: one serves every game
        players: dict[str, Callable[[int], Player]] = {
            "people": lambda seed: TablePlayer(people[seed % len(people)], random.Random(seed)),
            "reader": lambda seed, reader=reader: reader,  # type: ignore[misc]  # bound now, not at call
            "rank counter": lambda seed: RankCounter(),
        }
        out[name] = {
            kind: _rate(
                np.array(
                    [
                        play(f"adaptive-{s}", make(s), _Policy(guard, random.Random(s))).winner == "bot"
                        for s in range(games)
                    ]
                )
            )
            for kind, make in players.items()
        }
    return out

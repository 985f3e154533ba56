"""Games of simulated players against the online bot, played in memory for a first training set.

The games are the same for the same count, seed and simulator (the engine's code): they are played once
and kept in the data dir, and later cycles read them back instead of playing them again.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import msgspec

from engine.bot import Bot
from engine.players import population
from engine.rules import Game, Round
from trainer.datasets import History

ENGINE = Path(__file__).resolve().parent.parent / "engine"


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


def simulator_version() -> str:
    """A digest of the code that plays the simulated games: the engine's files and this module."""
    digest = hashlib.sha256()
    for path in [*sorted(ENGINE.rglob("*")), Path(__file__).resolve()]:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


# A history in the cache file: key, source, rounds as plain tuples (the engine's Round may be a compiled class,
# which msgspec cannot decode into), times, player.
Stored = tuple[str, str, list[tuple[int, tuple[int, int, int], int, int, int, int]], list[float], str]
_decoder = msgspec.msgpack.Decoder(list[Stored])


def encode(histories: list[History]) -> bytes:
    """The cache file's bytes for `histories`."""
    stored = [(h.key, h.source, [_row(r) for r in h.rounds], h.times, h.player) for h in histories]
    return msgspec.msgpack.encode(stored)


def _row(r: Round) -> tuple[int, tuple[int, int, int], int, int, int, int]:
    return r.number, r.values, r.player, r.bot, r.score_player, r.score_bot


def _decode(data: bytes) -> list[History]:
    return [
        History(key, source, [Round(*r) for r in rounds], times, player)
        for key, source, rounds, times, player in _decoder.decode(data)
    ]


def cached_simulation(
    cache_dir: Path, games: int, seed: int, progress: Callable[[int], None] | None = None
) -> list[History]:
    """`simulated_histories(games, seed)`, played once per simulator version and kept in `cache_dir`.

    Files of other counts, seeds or versions are removed when a new one is written.
    """
    path = cache_dir / f"coldstart-{games}-{seed}-{simulator_version()}.msgpack"
    if path.exists():
        try:
            return _decode(path.read_bytes())
        except msgspec.DecodeError:
            pass  # a damaged file: play them again
    histories = simulated_histories(games, seed, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob("coldstart-*.msgpack"):
        old.unlink(missing_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_bytes(encode(histories))
    partial.replace(path)
    return histories

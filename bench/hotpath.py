"""`hot_path`: a round's CPU in one process, with the mypyc-compiled engine and with the pure-Python one.

Each measurement runs in a subprocess of its own (the engine is chosen at import: RPSQUEST_PURE_ENGINE=1 forces
the pure one), and the two engines take turns in BLOCKS blocks so that a noisy stretch of the shared machine falls
on both alike. Three loops: the engine alone (features, the bot's choice and its learning, as LiveGame plays a
round), one game at a time and LIVE_GAMES games in turn (each round then finds its game out of the caches, as a
server's moves at human pace do), and the whole GameService (real SQLite in a temporary folder and the real model
pool, no sockets).
Young collections per 1,000 rounds count what a round leaves for the collector (at CPython's default thresholds).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import ROOT

BLOCKS = 3
ENGINE_GAMES = 1500
LIVE_GAMES = 10_000  # the interleaved loop's games in play at once (a server's at 10,000 sessions)
SERVICE_GAMES = 300
LOOPS = ("engine", "engine_interleaved", "service")


def _young_collections() -> int:
    return int(gc.get_stats()[0]["collections"])


def _figures(cpu: float, rounds: int, collections: int) -> dict[str, float]:
    return {
        "us_per_round": cpu / rounds * 1e6,
        "young_gc_per_1000_rounds": (_young_collections() - collections) / rounds * 1e3,
    }


def engine_loop(games: int, live: int = 1) -> dict[str, float]:
    """µs of CPU per round of the engine alone, over `games` seeded games, `live` of them at a time played in turn
    (a round each)."""
    from engine.bot import Bot
    from engine.features import FIRST_MODEL_ROUND, FeatureTracker
    from engine.rules import Game

    rng = random.Random(7)
    rounds, collections = 0, _young_collections()
    started = time.process_time()
    playing: list[tuple[Game, Bot, FeatureTracker]] = []
    made = 0
    while made < games or playing:
        while len(playing) < live and made < games:
            playing.append((Game(f"bench-{made}"), Bot(), FeatureTracker()))
            made += 1
        for game, bot, tracker in playing:
            number = game.next_round
            assert number is not None
            tracker.vector(game.values(number))
            model = (0.5, 0.3, 0.2) if number >= FIRST_MODEL_ROUND else None
            choice = bot.choose(game, rng, model)
            played = game.play(rng.randrange(3), choice.move)
            bot.observe(played, model)
            tracker.add(played)
            rounds += 1
        playing = [p for p in playing if p[0].next_round is not None]
    return _figures(time.process_time() - started, rounds, collections)


def interleaved_loop() -> dict[str, float]:
    """`engine_loop` with LIVE_GAMES games in play, as a server's live games are: each round finds its game's state
    out of the caches. CPython's collector is off meanwhile, as the server's clock keeps it out of a move
    (server/collector.py): at its default thresholds it would examine every live game again and again."""
    gc.disable()
    try:
        return engine_loop(LIVE_GAMES, LIVE_GAMES)
    finally:
        gc.enable()


async def _service_loop(games: int, store: Path) -> dict[str, float]:
    from engine.rules import MOVES
    from inference.pool import ModelPool
    from inference.store import LocalStore
    from server.games import GameService
    from storage.sqlite import SQLiteStorage

    pool = ModelPool(LocalStore(store))
    pool.reload()
    with tempfile.TemporaryDirectory(prefix="rpsq-hotpath-") as tmp:
        storage = SQLiteStorage(Path(tmp) / "rpsquest.db")
        service = GameService(storage, pool)
        rng = random.Random(7)
        rounds, collections = 0, _young_collections()
        started = time.process_time()
        for g in range(games):
            game = await service.start(("brian", "forrest", "logan")[g % 3], None, "sim")
            following = game.next
            while following is not None:
                result = await service.move(game.game_id, following.round, MOVES[rng.randrange(3)])
                following = result.next
                rounds += 1
        cpu = time.process_time() - started
        await storage.close()
    return _figures(cpu, rounds, collections)


def _measure(pure: bool, store: Path) -> dict[str, Any]:
    env = {**os.environ, "RPSQUEST_PURE_ENGINE": "1" if pure else "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.hotpath", str(store)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def hot_path(store: Path) -> dict[str, Any]:
    """Per-round CPU of both engines (median of the blocks), and the compiled engine's saving."""
    blocks: dict[str, list[dict[str, Any]]] = {"compiled": [], "pure": []}
    for _ in range(BLOCKS):
        for kind in blocks:
            blocks[kind].append(_measure(kind == "pure", store))
    if not all(b["built"].startswith("compiled") for b in blocks["compiled"]):
        raise RuntimeError(f"the compiled engine did not load: {blocks['compiled'][0]['built']}")
    out: dict[str, Any] = {"blocks": BLOCKS, "engine_games": ENGINE_GAMES, "service_games": SERVICE_GAMES}
    for kind, results in blocks.items():
        out[kind] = {
            loop: {key: round(median(r[loop][key] for r in results), 1) for key in results[0][loop]} for loop in LOOPS
        }
    for loop in LOOPS:
        pure, compiled = out["pure"][loop]["us_per_round"], out["compiled"][loop]["us_per_round"]
        out[f"{loop}_saving_us_per_round"] = round(pure - compiled, 1)
        out[f"{loop}_speedup"] = round(pure / compiled, 2)
    return out


if __name__ == "__main__":
    import engine

    print(
        json.dumps(
            {
                "built": engine.ENGINE,
                "engine": engine_loop(ENGINE_GAMES),
                "engine_interleaved": interleaved_loop(),
                "service": asyncio.run(_service_loop(SERVICE_GAMES, Path(sys.argv[1]))),
            }
        )
    )

"""`storage_rounds`: what storing a round costs the storage layer, on each backend, at max pace.

1,000 live games play rounds committed N at a time (N concurrent record_round calls of games drawn at
random: one group commit), on a database already holding finished games with random ids (as stored before
ids were time-ordered). Per round: the CPU time of this process (the writer: storage layer, driver and, for
SQLite, the database itself; PostgreSQL's server CPU is `db_cpu_us_per_round`) and the WAL bytes written
(SQLite: the log's growth, its checkpoints held off meanwhile so that nothing is copied back or written
over; PostgreSQL: the difference of pg_current_wal_lsn()). Live games get time-ordered ids, or random ones.
Rows are the server's: each decision's features are the engine's of its game's rounds (mostly zeros, so packed
to about 120 bytes; random dense vectors, 200 bytes, were used before 2026-11-30 16:00 UTC).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from bench.common import free_port
from engine.features import features
from engine.rules import points, round_values
from storage import sqlite as sqlite_backend
from storage.database import Database, is_postgres, open_storage
from storage.ids import GameIds
from storage.pgcluster import PostgresCluster, find_bindir
from storage.records import Decision, GameRecord, ModelPrediction, RoundRecord

LIVE = 1_000
ROUNDS = 8  # per live game and measurement
HISTORY = 2_000  # finished games already stored (10 rounds each)
GROUPS = (1, 16, 64)  # rounds per commit
_rng = np.random.default_rng(7)


def _probs() -> tuple[float, float, float]:
    """A model's output: float32 probabilities."""
    a, b, c = (float(p) for p in _rng.dirichlet((1, 1, 1)).astype(np.float32))
    return (a, b, c)


def _decision(game_id: str, played: list[RoundRecord]) -> Decision:
    """A decision as the server makes one for the round after `played`: the engine's features of those rounds
    and three aliases' float32 predictions."""
    n = len(played) + 1
    aliases = (("Production", "v7"), ("B", "v8"), ("shadow1", "v9")) if n > 3 else ()
    return Decision(
        round=n,
        bot_move=n % 3,
        nonce=secrets.token_hex(16),
        source="model" if n > 3 else "opening",
        probs=_probs(),
        ev=(0.1, -0.2, 0.3),
        features=features([r.as_round() for r in played], round_values(game_id, n)).tobytes(),
        models={alias: ModelPrediction(version, _probs()) for alias, version in aliases},
    )


def _game(game_id: str, now: float) -> GameRecord:
    return GameRecord(
        id=game_id, opponent="brian", family="mlp", alias="Production", version="v7", opening="policy", tag="sim",
        player=None, token_hash="f" * 64, created=now, updated=now, pending=_decision(game_id, []),
    )  # fmt: skip


def _played(game: GameRecord, n: int, now: float) -> tuple[GameRecord, RoundRecord]:
    """The record_round arguments of round `n` (the game with its next decision pending)."""
    d = game.pending or _decision(game.id, game.rounds)
    values = round_values(game.id, n)
    move = (n * 7) % 3
    gained = points(values, move, d.bot_move)
    score = (game.rounds[-1].score_player, game.rounds[-1].score_bot) if game.rounds else (0, 0)
    played = RoundRecord(d, values, move, score[0] + gained[0], score[1] + gained[1], now)
    game.rounds = [*game.rounds, played]  # a new list: the copy returned keeps its own
    game.pending = _decision(game.id, game.rounds)
    return msgspec.structs.replace(game), played


async def _fill(db: Database) -> None:
    storage = await open_storage(db)
    try:
        now = time.time() - 86_400
        for start in range(0, HISTORY, 64):
            games = [_game(secrets.token_urlsafe(12), now) for _ in range(start, min(HISTORY, start + 64))]
            await asyncio.gather(*(storage.create_game(g) for g in games))
            for n in range(1, 11):
                args = [_played(g, n, now) for g in games]
                await asyncio.gather(*(storage.record_round(g, p, "bot" if n == 10 else None) for g, p in args))
    finally:
        await storage.close()


def _shuffled(games: list[GameRecord]) -> list[GameRecord]:
    return [games[i] for i in _rng.permutation(len(games))]


async def _measure(db: Database, group: int, ordered: bool, wal: Any, db_cpu: Any) -> dict[str, float]:
    storage = await open_storage(db)
    try:
        ids, now = GameIds(), time.time()
        live = [_game(ids.next() if ordered else secrets.token_urlsafe(12), now) for _ in range(LIVE)]
        for start in range(0, LIVE, 64):
            await asyncio.gather(*(storage.create_game(g) for g in live[start : start + 64]))
        # made before the clock runs; the games that commit together differ from round to round, as in play
        work = [[_played(g, n, now + n) for g in _shuffled(live)] for n in range(1, ROUNDS + 1)]
        wal_before, cpu_before, db_before = wal(), time.process_time(), db_cpu()
        for args in work:
            for start in range(0, LIVE, group):
                await asyncio.gather(*(storage.record_round(g, p, None) for g, p in args[start : start + group]))
        cpu, written, on_db = time.process_time() - cpu_before, wal() - wal_before, db_cpu() - db_before
    finally:
        await storage.close()
    rounds = LIVE * ROUNDS
    out = {"cpu_us_per_round": round(cpu / rounds * 1e6, 1), "wal_bytes_per_round": round(written / rounds)}
    if on_db:
        out["db_cpu_us_per_round"] = round(on_db / rounds * 1e6, 1)
    return out


def _run(db: Database, wal: Any, db_cpu: Any = lambda: 0.0) -> dict[str, Any]:
    asyncio.run(_fill(db))
    out: dict[str, Any] = {}
    for ordered in (True, False):
        for group in GROUPS:
            name = f"{'ordered' if ordered else 'random'}_ids_n{group}"
            out[name] = asyncio.run(_measure(db, group, ordered, wal, db_cpu))
    return out


def storage_rounds(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"live_games": LIVE, "rounds_per_game": ROUNDS, "history_games": HISTORY}
    path = root / "storage-rounds" / "rpsquest.db"
    wal_file = Path(f"{path}-wal")
    # checkpoints held off: the log only grows, so its growth is every byte written (bounded by the run)
    held = {"WAL_TRUNCATE_AT": 2**40, "WAL_HARD_LIMIT": 2**41, "CHECKPOINT_EVERY": 1e9}
    saved = {name: getattr(sqlite_backend, name) for name in held}
    for name, value in held.items():
        setattr(sqlite_backend, name, value)
    try:
        out["sqlite"] = _run(path, lambda: wal_file.stat().st_size if wal_file.exists() else 0)
    finally:
        for name, value in saved.items():
            setattr(sqlite_backend, name, value)
    bindir = find_bindir()
    if bindir is None:
        out["postgres"] = {"skipped": "PostgreSQL binaries (initdb, pg_ctl) not found"}
        return out
    cluster = PostgresCluster(bindir, free_port(), durable=True)
    cluster.start()
    try:
        url = cluster.create_database()
        assert is_postgres(url)
        out["postgres"] = _run(url, lambda: cluster.activity(url)[1], cluster.cpu_seconds)
    finally:
        cluster.stop()
    return out

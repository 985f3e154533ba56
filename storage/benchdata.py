"""Synthetic play for the benchmarks: a database with millions of finished rounds, made by SQL in minutes
instead of by playing. Every game is a finished human game of `ROUNDS_PER_GAME` rounds on brian's family,
half of them on Production and half on B, each round from 4 on with four aliases' predictions."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

from storage.sqlite import SQLiteStorage, connect, rebuild_totals

ROUNDS_PER_GAME = 15
_ALIASES = (("Production", "v1"), ("B", "v2"), ("shadow1", "v3"), ("shadow2", "v4"))
# a round's stored predictions, varied by round so that some are right and some wrong
_MODELS = (
    "'{' || "
    + " || ',' || ".join(
        f"""'"{alias}":{{"version":"{version}","probs":[' || (0.2 + ((r.i + {k}) % 5) * 0.1) || ',0.3,' ||"""
        f""" (0.5 - ((r.i + {k}) % 5) * 0.1) || ']}}'"""
        for k, (alias, version) in enumerate(_ALIASES)
    )
    + " || '}'"
)


def fill(path: Path, rounds: int) -> dict[str, float]:
    """Create the database at `path` with `rounds` rounds (rounded down to whole games) and its live totals;
    returns the seconds each step took (`totals`: one full scan of every round, as migration 4's backfill)."""
    SQLiteStorage.prepare(path)
    games = rounds // ROUNDS_PER_GAME
    took: dict[str, float] = {}
    with closing(connect(path)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO games (id, opponent, family, alias, version, opening, tag, token_hash, state, winner,"
            " score_player, score_bot, rounds, created, updated, finished)"
            " WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)"
            " SELECT printf('g%09d', i), 'brian', 'mlp', CASE i % 2 WHEN 0 THEN 'Production' ELSE 'B' END,"
            " CASE i % 2 WHEN 0 THEN 'v1' ELSE 'v2' END, 'random', 'human', 'x', 'over',"
            " CASE i % 4 WHEN 0 THEN 'player' ELSE 'bot' END, 80, 100, ?, i, i, i FROM n",
            (games, ROUNDS_PER_GAME),
        )
        conn.execute(
            "INSERT INTO rounds"
            " WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ?)"
            " SELECT g.id, r.i, 10, 11, 16, CASE (r.i + g.created) % 3 WHEN 0 THEN 'rock' WHEN 1 THEN 'paper'"
            " ELSE 'scissors' END, 'paper', 'win', 10, 0, r.i * 5, r.i * 6, g.family, g.alias, g.version,"
            " CASE WHEN r.i > 3 THEN 'model' ELSE 'opening' END, 0.5, 0.3, 0.2, 0.1, 0.2, 0.3,"
            f" CASE WHEN r.i > 3 THEN {_MODELS} ELSE '{{}}' END, zeroblob(200), 'nonce', g.created, NULL"
            " FROM games g, r",
            (ROUNDS_PER_GAME,),
        )
        conn.execute("COMMIT")
        took["fill"] = time.perf_counter() - started
        started = time.perf_counter()
        rebuild_totals(conn)
        took["totals"] = time.perf_counter() - started
    return took

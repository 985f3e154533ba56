"""Read-only queries for the trainer and the benchmarks: finished play, as the engine's rounds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

from engine.rules import MOVE_INDEX, Round
from storage.database import Database, connect, exists
from storage.rows import LAST_PLAYED


@dataclass(frozen=True)
class PlayedGame:
    """One stored game's rounds (with the time each was played) and who played it."""

    id: str
    tag: str
    player: str  # the player's id as text, "" when anonymous
    rounds: list[Round]
    times: list[float]


def played_games(db: Database, since: float = 0.0, tags: tuple[str, ...] = ("human", "sim")) -> Iterator[PlayedGame]:
    """Every game with rounds, tagged one of `tags` and moved on after `since`, oldest first (none without
    a database yet)."""
    if not exists(db):
        return
    marks = ", ".join("?" * len(tags))
    with closing(connect(db, readonly=True)) as conn:
        games = conn.execute(
            "SELECT id, tag, COALESCE(CAST(player_id AS TEXT), '') FROM games"
            f" WHERE tag IN ({marks}) AND {LAST_PLAYED} >= ? ORDER BY created",
            (*tags, since),
        ).fetchall()
        for game_id, tag, player in games:
            rows = conn.execute(
                "SELECT round, rock_value, paper_value, scissors_value, player_move, bot_move, score_player,"
                " score_bot, created FROM rounds WHERE game_id = ? ORDER BY round",
                (game_id,),
            ).fetchall()
            yield PlayedGame(
                id=game_id,
                tag=tag,
                player=str(player),
                rounds=[Round(r[0], (r[1], r[2], r[3]), MOVE_INDEX[r[4]], MOVE_INDEX[r[5]], r[6], r[7]) for r in rows],
                times=[r[8] for r in rows],
            )


def rounds_since(db: Database, since: float, tags: tuple[str, ...]) -> int:
    """Rounds of games tagged one of `tags` stored after `since` (0 when there is no database yet)."""
    if not exists(db):
        return 0
    marks = ", ".join("?" * len(tags))
    with closing(connect(db, readonly=True)) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM rounds r JOIN games g ON g.id = r.game_id"
            f" WHERE r.created > ? AND g.tag IN ({marks})",
            (since, *tags),
        ).fetchone()
    return int(row[0])


def last_trained(db: Database) -> float:
    """When the last training run that succeeded started (0 when none did or there is no database yet)."""
    if not exists(db):
        return 0.0
    with closing(connect(db, readonly=True)) as conn:
        row = conn.execute("SELECT MAX(started) FROM training_runs WHERE outcome = 'success'").fetchone()
    return float(row[0] or 0.0)


def winners_by_opponent(db: Database) -> list[tuple[str, str, int]]:
    """(opponent, winner, games) over every finished game."""
    with closing(connect(db, readonly=True)) as conn:
        rows = conn.execute("SELECT opponent, winner, COUNT(*) FROM games WHERE state = 'over' GROUP BY 1, 2")
        return [(o, w, int(n)) for o, w, n in rows]

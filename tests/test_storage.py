"""Both storage backends on real databases (SQLite files, a PostgreSQL server): migrations, exact round trips,
group commit and the statistics."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import sqlite3
import threading
from collections.abc import Coroutine
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import psycopg
import pytest

from engine.features import features
from engine.rules import MOVES, Round, points, round_values
from storage import Storage, postgres
from storage import sqlite as storage_module
from storage.database import Database, connect, is_postgres, open_storage
from storage.history import played_games
from storage.lifecycle import Lifecycle
from storage.records import (
    Decision,
    GameRecord,
    LeaderboardRow,
    ModelPrediction,
    OpponentStats,
    RoundRecord,
)
from storage.rows import (
    RoundWrite,
    Totals,
    decode_pending,
    encode_pending,
    pack_features,
    pack_models,
    round_row,
    round_statements,
    segments,
    unpack_features,
    unpack_models,
)
from storage.sqlite import MIGRATIONS, SQLiteStorage, StorageConflict, migrate

T = TypeVar("T")
FAMILY = {"brian": "mlp", "forrest": "xgboost", "logan": "logistic"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def decision(game_id: str, history: list[Round], bot_move: int = 1, shadow: bool = True) -> Decision:
    """The decision for the round after `history`, with a real feature vector."""
    n = len(history) + 1
    return Decision(
        round=n,
        bot_move=bot_move,
        nonce=f"{n:02d}" + "ab" * 15,
        source="opening" if n <= 3 else "online",
        probs=(0.1 + n / 100, 0.3, 0.6 - n / 100),
        ev=(-0.25 * n, 1.0 / 3.0, 2.0 / 3.0),
        features=features(history, round_values(game_id, n)).tobytes(),
        models={
            "shadow1": ModelPrediction("v3", (0.2, 0.3, 0.5)),
            "shadow2": ModelPrediction("v4", (1 / 3, 1 / 3, 1 / 3)),
            "B": ModelPrediction("v2", (0.7, 0.2, 0.1)),
        }
        if shadow
        else {},
    )


def new_game(
    game_id: str,
    opponent: str = "brian",
    player: str | None = None,
    tag: str = "human",
    alias: str = "Production",
    created: float = 1_000.0,
) -> GameRecord:
    return GameRecord(
        id=game_id,
        opponent=opponent,
        family=FAMILY[opponent],
        alias=alias,
        version="v7",
        opening="mirror",
        tag=tag,
        player=player,
        token_hash="f" * 64,
        created=created,
        updated=created,
        pending=decision(game_id, []),
    )


def play(game: GameRecord, player_move: int, at: float) -> RoundRecord:
    """The round record of playing `player_move` in the open round of `game` (not yet stored)."""
    assert game.pending is not None
    d = game.pending
    values = round_values(game.id, d.round)
    gained = points(values, player_move, d.bot_move)
    before = (game.rounds[-1].score_player, game.rounds[-1].score_bot) if game.rounds else (0, 0)
    return RoundRecord(d, values, player_move, before[0] + gained[0], before[1] + gained[1], at)


def history(game: GameRecord) -> list[Round]:
    return [r.as_round() for r in game.rounds]


async def advance(storage: Storage, game: GameRecord, player_move: int, at: float, winner: str | None) -> None:
    """Play and store a round, updating `game` as the game service does."""
    played = play(game, player_move, at)
    after = [*history(game), played.as_round()]
    following = None if winner else decision(game.id, after, bot_move=(player_move + 1) % 3)
    await storage.record_round(msgspec.structs.replace(game, pending=following), played, winner)
    game.rounds.append(played)
    game.pending = following
    game.updated = at


def columns(db: Database, table: str) -> list[str]:
    if is_postgres(db):
        return [r["column_name"] for r in rows(db, f"SELECT column_name FROM information_schema.columns"
                                                  f" WHERE table_name = '{table}'")]  # fmt: skip
    return [r["name"] for r in rows(db, f"PRAGMA table_info({table})")]


def rows(db: Database, sql: str) -> list[dict[str, Any]]:
    """What `sql` reads from either backend, as dicts."""
    with closing(connect(db)) as conn:
        cursor = conn.execute(sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def count(db: Database, table: str) -> int:
    return int(rows(db, f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])


# -- schema ---------------------------------------------------------------------------------------


def test_migrations_run_once_and_reopening_keeps_the_data(database: Database) -> None:
    db = database if is_postgres(database) else Path(database).parent / "db" / "rpsquest.db"

    async def first() -> None:
        storage = await open_storage(db)
        await storage.create_game(new_game("g1", player="Ann"))
        await storage.close()

    async def second() -> GameRecord | None:
        storage = await open_storage(db)
        try:
            return await storage.load_game("g1")
        finally:
            await storage.close()

    run(first())
    loaded = run(second())
    assert loaded == new_game("g1", player="Ann")
    run(second())  # a third open does not fail either

    assert len(postgres.MIGRATIONS) == len(MIGRATIONS)  # the same schema versions on both backends
    versions = [r["version"] for r in rows(db, "SELECT version FROM schema_migrations ORDER BY version")]
    if is_postgres(db):
        with closing(postgres.connect(str(db))) as pg:
            assert postgres.migrate(pg) == len(MIGRATIONS)  # nothing left to apply
        tables = {r["table_name"] for r in rows(db, "SELECT table_name FROM information_schema.tables")}
    else:
        with closing(sqlite3.connect(db)) as conn:
            assert migrate(conn) == len(MIGRATIONS)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r["name"] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    again = [r["version"] for r in rows(db, "SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == again == list(range(1, len(MIGRATIONS) + 1))
    assert {"players", "games", "rounds", "promotions", "schema_migrations", "alias_tenures"} <= tables


def test_rounds_table_keeps_what_mlops_md_lists(database: Database) -> None:
    path = database
    game = new_game("g1", opponent="forrest", alias="B", player="Ann")

    async def scenario() -> None:
        storage = await open_storage(path)
        await storage.create_game(game)
        await advance(storage, game, 0, 1_001.0, None)
        await advance(storage, game, 2, 1_002.0, None)
        await storage.close()

    run(scenario())
    wanted = {
        "game_id", "round", "player_move", "bot_move", "rock_value", "paper_value", "scissors_value",
        "score_player", "score_bot", "family", "alias", "version", "p_rock", "p_paper", "p_scissors", "models",
    }  # fmt: skip
    assert wanted <= set(columns(path, "rounds"))
    assert "tag" in columns(path, "games")

    stored = rows(path, "SELECT * FROM rounds WHERE game_id = 'g1' ORDER BY round")
    assert rows(path, "SELECT tag FROM games WHERE id = 'g1'") == [{"tag": "human"}]
    assert len(stored) == 2
    for row, played in zip(stored, game.rounds, strict=True):
        d = played.decision
        assert row["round"] == d.round
        assert (row["player_move"], row["bot_move"]) == (MOVES[played.player_move], MOVES[d.bot_move])
        assert (row["rock_value"], row["paper_value"], row["scissors_value"]) == played.values
        assert (row["score_player"], row["score_bot"]) == (played.score_player, played.score_bot)  # after the round
        assert (row["family"], row["alias"], row["version"]) == ("xgboost", "B", "v7")
        assert (row["p_rock"], row["p_paper"], row["p_scissors"]) == d.probs  # the served probabilities
        assert unpack_models(row["models"]) == d.models and len(row["models"]) < len(msgspec.json.encode(d.models))
        assert unpack_features(row["features"]) == d.features and len(row["features"]) < len(d.features)


# -- round trips ----------------------------------------------------------------------------------


def test_game_record_round_trips_exactly(database: Database) -> None:
    async def scenario() -> list[tuple[GameRecord, GameRecord | None]]:
        storage = await open_storage(database)
        game = new_game("g-\u00e9", player="Zoë_2 -x", tag="sim", alias="B", created=1_234.5678901234)
        anonymous = new_game("g-anon", opponent="logan", player=None)
        seen = []
        await storage.create_game(game)
        await storage.create_game(anonymous)
        seen.append((msgspec.structs.replace(game, rounds=list(game.rounds)), await storage.load_game(game.id)))
        for i, move in enumerate((0, 1, 2, 2)):
            await advance(storage, game, move, 1_300.0 + i / 7, None)
            seen.append((msgspec.structs.replace(game, rounds=list(game.rounds)), await storage.load_game(game.id)))
        await advance(storage, game, 0, 1_400.25, "bot")
        seen.append((game, await storage.load_game(game.id)))
        seen.append((anonymous, await storage.load_game(anonymous.id)))
        seen.append((new_game("missing"), await storage.load_game("missing")))
        await storage.close()
        return seen

    seen = run(scenario())
    for expected, loaded in seen[:-1]:
        assert loaded == expected
    first, last = seen[0][1], seen[-3][1]
    assert first is not None and first.pending is not None
    assert len(first.pending.features) == 50 * 4 and first.pending.models["shadow2"].probs == (1 / 3, 1 / 3, 1 / 3)
    assert last is not None and last.pending is None and len(last.rounds) == 5
    assert all(r.decision.models and r.decision.features for r in last.rounds)
    assert seen[-2][1] is not None and seen[-2][1].player is None
    assert seen[-1][1] is None


def test_rounds_a_live_game_keeps_stay_out_of_the_garbage_collector(database: Database) -> None:
    """A live game holds every round it played: those records must not lengthen every collection."""

    async def scenario() -> GameRecord | None:
        storage = await open_storage(database)
        game = new_game("g-gc")
        await storage.create_game(game)
        for move in (0, 1, 2, 2):
            await advance(storage, game, move, 1_300.0, None)
        loaded = await storage.load_game(game.id)
        await storage.close()
        return loaded

    loaded = run(scenario())
    assert loaded is not None and len(loaded.rounds) == 4 and loaded.pending is not None
    gc.collect()  # a first pass drops the containers that hold only untracked values
    kept = [loaded.pending, loaded.pending.models]
    for r in loaded.rounds:
        kept += [r, r.decision, r.decision.models, *r.decision.models.values()]
    assert [type(x).__name__ for x in kept if gc.is_tracked(x)] == []


# -- abandoned games ------------------------------------------------------------------------------


def test_mark_abandoned_marks_only_open_idle_games(database: Database) -> None:
    async def scenario() -> tuple[int, int, dict[str, bool]]:
        storage = await open_storage(database)
        idle = new_game("idle", created=100.0)
        idle_played = new_game("idle-played", created=50.0)
        recent = new_game("recent", created=300.0)
        recent_played = new_game("recent-played", created=50.0)
        finished = new_game("finished", created=50.0)
        for game in (idle, idle_played, recent, recent_played, finished):
            await storage.create_game(game)
        await advance(storage, idle_played, 0, 150.0, None)
        await advance(storage, recent_played, 0, 250.0, None)  # a move after the cutoff keeps it alive
        await advance(storage, finished, 0, 60.0, "player")
        marked = await storage.mark_abandoned(200.0)
        again = await storage.mark_abandoned(200.0)  # already marked: not counted twice
        flags = {}
        for game_id in ("idle", "idle-played", "recent", "recent-played", "finished"):
            loaded = await storage.load_game(game_id)
            assert loaded is not None
            flags[game_id] = loaded.abandoned
        await storage.close()
        return marked, again, flags

    marked, again, flags = run(scenario())
    assert marked == 2 and again == 0
    assert flags == {"idle": True, "idle-played": True, "recent": False, "recent-played": False, "finished": False}


def test_a_round_only_appends_and_an_open_game_reads_its_progress_from_its_last_round(database: Database) -> None:
    """Storing a round of an open game leaves the games row as the game's start wrote it; loading the game, the
    trainer's reads and the sweeps take its progress from its last round; its end writes the games row."""
    game, idle = new_game("g-open", created=100.0), new_game("g-idle", created=100.0)

    async def scenario() -> tuple[GameRecord | None, list[dict[str, Any]], GameRecord | None, int, int]:
        storage = await open_storage(database)
        try:
            for g in (game, idle):
                await storage.create_game(g)
            started = rows(database, "SELECT * FROM games ORDER BY id")
            await advance(storage, idle, 0, 150.0, None)
            for i, move in enumerate((0, 2, 1)):
                await advance(storage, game, move, 300.0 + i, None)
            assert rows(database, "SELECT * FROM games ORDER BY id") == started
            loaded = await storage.load_game(game.id)
            swept = await storage.delete_unplayed(1e9) + await storage.mark_abandoned(200.0)  # only g-idle
            await advance(storage, game, 0, 310.0, "bot")
            return loaded, started, await storage.load_game(game.id), swept, count(database, "games")
        finally:
            await storage.close()

    loaded, started, finished, swept, games = run(scenario())
    assert loaded is not None and loaded.pending == decision(game.id, history(game)[:3], bot_move=2)
    assert (loaded.updated, len(loaded.rounds), loaded.abandoned) == (302.0, 3, False)
    assert swept == 1 and games == 2
    assert finished == game and finished.pending is None
    [row] = rows(database, "SELECT state, winner, score_player, score_bot, rounds, pending, updated, finished"
                           " FROM games WHERE id = 'g-open'")  # fmt: skip
    last = game.rounds[-1]
    assert row == {"state": "over", "winner": "bot", "score_player": last.score_player, "score_bot": last.score_bot,
                   "rounds": 4, "pending": None, "updated": 310.0, "finished": 310.0}  # fmt: skip
    assert [g.id for g in played_games(database, since=200.0)] == ["g-open"]
    assert sorted(g.id for g in played_games(database, since=0.0)) == ["g-idle", "g-open"]
    assert started[0]["rounds"] == 0


# -- group commit ---------------------------------------------------------------------------------


def test_burst_of_concurrent_rounds_all_land_and_are_readable_at_once(database: Database) -> None:
    n = 200

    async def scenario() -> tuple[list[int], int]:
        storage = await open_storage(database)
        games = [new_game(f"g{i:03d}", opponent=("brian", "forrest", "logan")[i % 3]) for i in range(n)]
        await asyncio.gather(*(storage.create_game(g) for g in games))

        async def write_then_read(game: GameRecord, move: int) -> int:
            await advance(storage, game, move, 2_000.0 + move, None)
            loaded = await storage.load_game(game.id)  # the caller's own write is visible at once
            assert loaded == game
            return len(loaded.rounds)

        counts = await asyncio.gather(*(write_then_read(g, i % 3) for i, g in enumerate(games)))
        await storage.close()
        return counts, count(database, "rounds")

    counts, stored = run(scenario())
    assert counts == [1] * n
    assert stored == n


@pytest.mark.parametrize(("max_batch", "transactions_expected"), [(512, 1), (64, 4)])
def test_writes_queued_in_one_turn_commit_together(
    database: Database, monkeypatch: pytest.MonkeyPatch, max_batch: int, transactions_expected: int
) -> None:
    for module in (storage_module, postgres):  # a longer queue commits in chunks, batch by batch
        monkeypatch.setattr(module, "MAX_BATCH", max_batch)
    n = 200
    begins: list[int] = []
    if is_postgres(database):
        attempt = postgres.PostgresStorage._attempt

        async def counted(self: postgres.PostgresStorage, jobs: list[Any]) -> list[tuple[bool, Any]]:
            begins.append(len(jobs))
            return await attempt(self, jobs)

        monkeypatch.setattr(postgres.PostgresStorage, "_attempt", counted)

    async def scenario() -> None:
        storage = await open_storage(database)
        games = [new_game(f"g{i:03d}") for i in range(n)]
        await asyncio.gather(*(storage.create_game(game) for game in games))
        begins.clear()
        if isinstance(storage, SQLiteStorage):
            storage._writer_conn.set_trace_callback(lambda sql: begins.append(1) if sql.startswith("BEGIN") else None)
        await asyncio.gather(*(advance(storage, g, 1, 2_000.0, None) for g in games))  # all queued in one turn
        for game in games:
            assert await storage.load_game(game.id) == game
        await storage.close()

    run(scenario())
    assert len(begins) == transactions_expected


def test_while_commits_gather_several_jobs_the_next_waits_for_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "COMMIT_GAP", 0.2)
    begins: list[int] = []

    async def scenario() -> list[GameRecord]:
        storage = SQLiteStorage(tmp_path / "rpsquest.db")
        games = [new_game(f"g{i:03d}") for i in range(4)]
        await asyncio.gather(*(storage.create_game(game) for game in games))  # one commit of four jobs
        storage._writer_conn.set_trace_callback(lambda sql: begins.append(1) if sql.startswith("BEGIN") else None)
        writes = []
        for game in games:  # one write a turn, as from a busy loop's connections
            writes.append(asyncio.ensure_future(advance(storage, game, 1, 2_000.0, None)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*writes)
        loaded = [await storage.load_game(game.id) for game in games]
        await storage.close()
        assert loaded == games
        return games

    run(scenario())
    assert len(begins) == 1  # the four writes, in four turns, joined one commit


def _hold_turn(path: Path) -> int:
    """Take the writers' turn as another worker process would (an open file of its own); returns it."""
    held = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    return held


def test_a_commit_waiting_for_another_process_leaves_the_event_loop_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "TURN_PATIENCE", 60.0)  # waits by retrying only, however long it takes
    path = tmp_path / "rpsquest.db"

    async def scenario() -> tuple[int, bool, int]:
        storage = SQLiteStorage(path)
        game = new_game("g001")
        await storage.create_game(game)
        held = _hold_turn(path)
        release = threading.Event()

        def let_go() -> None:  # when told, or after 3 s: a commit that stopped the loop would never tell it
            release.wait(3.0)
            fcntl.flock(held, fcntl.LOCK_UN)

        releaser = threading.Thread(target=let_go)
        releaser.start()
        write = asyncio.create_task(advance(storage, game, 1, 2_000.0, None))
        ticks = 0
        for _ in range(200):  # the loop turns while the other process commits
            await asyncio.sleep(0.001)
            ticks += 1
        waited = not write.done()
        release.set()
        releaser.join()
        os.close(held)
        await asyncio.wait_for(write, timeout=5)
        await storage.close()
        return ticks, waited, count(path, "rounds")

    ticks, waited, stored = run(scenario())
    assert ticks == 200
    assert waited
    assert stored == 1


def test_a_commit_past_its_patience_waits_in_line_and_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "TURN_PATIENCE", 0.01)
    path = tmp_path / "rpsquest.db"

    async def scenario() -> int:
        storage = SQLiteStorage(path)
        game = new_game("g001")
        await storage.create_game(game)
        held = _hold_turn(path)
        releaser = threading.Timer(0.3, lambda: fcntl.flock(held, fcntl.LOCK_UN))
        releaser.start()
        await asyncio.wait_for(advance(storage, game, 1, 2_000.0, None), timeout=5)
        releaser.join()
        os.close(held)
        assert await storage.load_game(game.id) == game
        await storage.close()
        return count(path, "rounds")

    assert run(scenario()) == 1


def test_one_failing_write_of_a_batch_spares_the_others(database: Database) -> None:
    n = 50

    async def scenario() -> tuple[list[BaseException | None], int]:
        storage = await open_storage(database)
        games = [new_game(f"g{i:03d}") for i in range(n)]
        await asyncio.gather(*(storage.create_game(game) for game in games))
        await advance(storage, games[0], 0, 1_500.0, None)
        duplicate = msgspec.structs.replace(games[0], rounds=[], pending=games[0].rounds[0].decision)
        tasks = [advance(storage, g, 1, 2_000.0, None) for g in games[1:]]
        tasks.append(advance(storage, duplicate, 2, 2_000.0, None))  # round 1 again, in the same batch
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for game in games:
            assert await storage.load_game(game.id) == game
        await storage.close()
        return outcomes, count(database, "rounds")

    outcomes, stored = run(scenario())
    assert outcomes[:-1] == [None] * (n - 1)
    assert isinstance(outcomes[-1], StorageConflict)  # the duplicate round alone is refused
    assert stored == n  # game 0's first round plus 49 new ones


def test_replicas_storing_one_round_wait_for_it_and_never_deadlock_over_the_totals(
    request: pytest.FixtureRequest,
) -> None:
    """One replica's transaction has stored round 4 of a game and not committed (the round, the totals last, as
    a batch with other jobs stores them); another replica's batch of the same round, one
    statement, must wait on that round without holding the totals every process shares. The transaction then
    takes the totals and commits; the batch gets StorageConflict. Taking the totals first, as the statement's
    WITH parts did when PostgreSQL ran them last to first, deadlocks the two."""
    url = request.getfixturevalue("postgres").create_database()

    async def scenario() -> tuple[BaseException | None, list[dict[str, Any]]]:
        storage = await open_storage(url)
        game = new_game("g1")
        await storage.create_game(game)
        for n in range(3):  # the models' predictions count from round 4
            await advance(storage, game, n, 1_001.0 + n, None)
        played = play(game, 0, 1_010.0)
        after = [*history(game), played.as_round()]
        moved_on = msgspec.structs.replace(game, pending=decision("g1", after))
        write = RoundWrite.of(moved_on, played, None)
        other = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            async with other.transaction():
                await other.execute("SET LOCAL lock_timeout = '5s'")
                await other.execute(*postgres._statement(round_statements([write])))
                racing = asyncio.create_task(storage.record_round(moved_on, played, None))
                await asyncio.sleep(0.5)
                assert not racing.done()  # waiting on the round the transaction holds
                await other.execute(*postgres._statement(Totals.of([write]).statements()))
            outcome = (await asyncio.gather(racing, return_exceptions=True))[0]
        finally:
            await other.close()
            await storage.close()
        return outcome, rows(url, "SELECT alias, kind, predictions FROM prediction_stats ORDER BY 1, 2")

    outcome, totals = run(scenario())
    assert isinstance(outcome, StorageConflict)
    assert totals and all(row["predictions"] == 1 for row in totals)  # the round counted once


def test_a_first_round_stored_by_another_replica_during_the_sweep_keeps_its_game(
    request: pytest.FixtureRequest,
) -> None:
    """Another replica stores the first round of a game the sweep is deleting as unplayed: the sweep waits on the
    game, finds the round then, and deletes nothing (the game and its round stay), instead of failing."""
    url = request.getfixturevalue("postgres").create_database()

    async def scenario() -> tuple[int, int, list[dict[str, Any]]]:
        storage = await open_storage(url)
        game = new_game("g-first", created=100.0)
        await storage.create_game(game)
        played = play(game, 0, 1_001.0)
        moved_on = msgspec.structs.replace(game, rounds=[played])
        moved_on.pending = decision(game.id, history(moved_on))
        other = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            async with other.transaction():
                await other.execute("SET LOCAL lock_timeout = '5s'")
                await other.execute(*postgres._statement(round_statements([RoundWrite.of(moved_on, played, None)])))
                sweeping = asyncio.create_task(storage.delete_unplayed(1e9))
                await asyncio.sleep(0.5)
                assert not sweeping.done()  # waiting on the game the round refers to
            deleted = await sweeping
            return deleted, await storage.delete_unplayed(1e9), rows(url, "SELECT game_id, round FROM rounds")
        finally:
            await other.close()
            await storage.close()

    deleted, again, stored = run(scenario())
    assert (deleted, again) == (0, 0) and stored == [{"game_id": "g-first", "round": 1}]


def test_a_broken_write_does_not_stop_the_writer(database: Database) -> None:
    async def scenario() -> GameRecord | None:
        storage = await open_storage(database)
        try:
            await storage.create_game(new_game("g1"))
            await storage.create_game(new_game("g2"))
            bad = new_game("g1")
            broken = msgspec.structs.replace(play(bad, 0, 1_001.0), player_move=7)  # MOVES[7] fails in the writer
            with pytest.raises(Exception) as failed:  # any error will do, as long as one comes back
                await asyncio.wait_for(storage.record_round(bad, broken, None), timeout=1.0)
            assert not isinstance(failed.value, TimeoutError), "the broken write never came back"
            good = new_game("g2")
            await asyncio.wait_for(advance(storage, good, 0, 1_002.0, None), timeout=1.0)
            return await storage.load_game("g2")
        finally:
            await storage.close()

    loaded = run(scenario())
    assert loaded is not None and len(loaded.rounds) == 1


# -- statistics -----------------------------------------------------------------------------------


def test_leaderboard_and_opponent_stats_on_a_known_data_set(database: Database) -> None:
    # (opponent, player, tag, winner): winner None leaves the game open.
    data: list[tuple[str, str | None, str, str | None]] = [
        ("brian", "Ann", "human", "player"),
        ("brian", "Ann", "human", "player"),
        ("brian", "Ann", "human", "bot"),
        ("brian", "Bob", "human", "player"),
        ("brian", "Bob", "human", "bot"),
        ("brian", "Cy", "human", "player"),
        ("brian", "Dan", "human", "bot"),
        ("brian", "Fay", "human", "tie"),
        ("brian", None, "human", "player"),
        ("brian", None, "human", "bot"),
        ("brian", "Ann", "sim", "player"),
        ("brian", "Ann", "sim", "player"),
        ("brian", "Sim", "sim", "player"),
        ("brian", "Eve", "human", None),
        ("forrest", "Bob", "loadtest", "player"),
        ("forrest", "Bob", "human", "bot"),
        ("logan", "Gus", "sim", "bot"),
        ("logan", None, "human", None),
    ]

    async def scenario() -> tuple[list[OpponentStats], list[LeaderboardRow], list[LeaderboardRow]]:
        storage = await open_storage(database)
        for i, (opponent, player, tag, winner) in enumerate(data):
            game = new_game(f"g{i:02d}", opponent=opponent, player=player, tag=tag)
            await storage.create_game(game)
            await advance(storage, game, 0, 1_100.0, winner)
        await storage.mark_abandoned(2_000.0)  # the open games become abandoned: still not counted
        stats = await storage.opponent_stats()
        top = await storage.leaderboard(10)
        top3 = await storage.leaderboard(3)
        await storage.close()
        return stats, top, top3

    stats, top, top3 = run(scenario())
    assert {s.opponent: (s.games, s.bot_wins) for s in stats} in (
        {"brian": (10, 4), "forrest": (1, 1)},
        {"brian": (10, 4), "forrest": (1, 1), "logan": (0, 0)},
    )
    assert top == [
        LeaderboardRow("brian", "Ann", 2, 3),
        LeaderboardRow("brian", "Cy", 1, 1),  # equal wins: fewer games ranks higher
        LeaderboardRow("brian", "Bob", 1, 2),
        LeaderboardRow("brian", "Dan", 0, 1),  # equal wins and games: by name
        LeaderboardRow("brian", "Fay", 0, 1),
        LeaderboardRow("forrest", "Bob", 0, 1),
    ]
    assert top3 == [*top[:3], top[5]]


# -- live totals ----------------------------------------------------------------------------------


def _totals(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(path)) as db:
        return (
            db.execute("SELECT * FROM prediction_stats ORDER BY 1, 2, 3, 4, 5").fetchall(),
            db.execute("SELECT * FROM arm_stats ORDER BY 1, 2, 3, 4, 5").fetchall(),
        )


TOTALS_PLAN = [("human", "Production"), ("human", "B"), ("sim", "B"), ("human", "B")]


async def _play_totals(database: Database) -> list[Any]:
    """Four games of 8 rounds (the fourth stays open) by TOTALS_PLAN's tags and aliases; the human totals."""
    storage = await open_storage(database)
    try:
        for i, (tag, alias) in enumerate(TOTALS_PLAN):
            game = new_game(f"t{i}", tag=tag, alias=alias)
            await storage.create_game(game)
            for n in range(8):
                last = n == 7 and i < 3
                await advance(
                    storage, game, (n * (i + 1)) % 3, 1_001.0 + n, ("bot", "player", "bot")[i] if last else None
                )
        return await storage.version_stats(("human",))
    finally:
        await storage.close()


def test_live_totals_kept_by_each_round_equal_a_recount(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    run(_play_totals(path))
    kept = _totals(path)
    with closing(storage_module.connect(path)) as conn:
        storage_module.rebuild_totals(conn)
    assert _totals(path) == kept  # what every round added up equals a count of all stored rounds


def test_live_totals_answer_version_stats_on_both_backends(database: Database) -> None:
    by_alias = {(s.alias, s.version): s for s in run(_play_totals(database))}
    # the human games t0 (Production), t1 and t3 (B) have 5 rounds each from round 4 on, all predicted by
    # shadow1 (v3), shadow2 (v4) and B (v2) as well
    production, b = by_alias[("Production", "v7")], by_alias[("B", "v7")]
    assert production.predictions == {"blend": 5} and b.predictions == {"blend": 10}
    assert (production.games, production.bot_wins, b.games, b.bot_wins) == (1, 1, 1, 0)
    assert by_alias[("shadow1", "v3")].predictions == {"model": 15}
    assert by_alias[("B", "v2")].predictions == {"model": 15}
    # shadow1 (v3) always says scissors: right in the human rounds from 4 on where the player chose it
    human = [i for i, (tag, _) in enumerate(TOTALS_PLAN) if tag == "human"]
    scissors = sum((n * (i + 1)) % 3 == 2 for i in human for n in range(3, 8))
    assert by_alias[("shadow1", "v3")].correct == {"model": scissors}


# -- a returning player's memory --------------------------------------------------------------------


def test_remembered_games_are_the_keys_last_finished_ones_and_forget_unlinks_them(database: Database) -> None:
    """Only finished games of the key that ended before the moment, the latest `games` of them, oldest first;
    forgetting keeps the games (anonymous, for training) and leaves other keys alone."""

    async def scenario() -> tuple[list[list[Round]], list[list[Round]], list[list[Round]], int, int, GameRecord | None]:
        storage = await open_storage(database)
        keyed = [msgspec.structs.replace(new_game(f"k{i}", created=100.0 * i), key_hash="a" * 64) for i in range(4)]
        other = msgspec.structs.replace(new_game("other", created=50.0), key_hash="b" * 64)
        open_one = msgspec.structs.replace(new_game("open", created=60.0), key_hash="a" * 64)
        for game in (*keyed, other, open_one):
            await storage.create_game(game)
        for i, game in enumerate(keyed):
            for r in range(i):  # game k{i} has i + 1 rounds
                await advance(storage, game, r % 3, 100.0 * i + r, None)
            await advance(storage, game, 2, 100.0 * i + 50.0, "bot")
        await advance(storage, other, 1, 70.0, "player")
        await advance(storage, open_one, 1, 70.0, None)
        last_two = await storage.remembered("a" * 64, 1_000.0, 2)
        before_k3 = await storage.remembered("a" * 64, 300.0, 10)
        forgotten = await storage.forget("a" * 64)
        again = await storage.forget("a" * 64)
        after = await storage.remembered("a" * 64, 1_000.0, 10)
        kept = await storage.load_game("k1")
        others = await storage.remembered("b" * 64, 1_000.0, 10)
        await storage.close()
        assert others and len(others[0]) == 1
        return last_two, before_k3, after, forgotten, again, kept

    last_two, before_k3, after, forgotten, again, kept = run(scenario())
    assert [len(g) for g in last_two] == [3, 4]  # k2 then k3
    assert [len(g) for g in before_k3] == [1, 2, 3]  # k3 finished at 350
    assert [r.number for r in last_two[1]] == [1, 2, 3, 4] and last_two[1][-1].player == 2
    assert forgotten == 5 and again == 0 and after == []
    assert kept is not None and kept.key_hash is None and len(kept.rounds) == 2


# -- packed rows ----------------------------------------------------------------------------------


def test_packed_predictions_round_trip_exactly_in_a_third_of_the_json() -> None:
    f32 = tuple(float(np.float32(p)) for p in (0.123456, 0.654321, 0.222223))  # a model's output
    models = {
        "Production": ModelPrediction("v12", (f32[0], f32[1], f32[2])),
        "shadow1": ModelPrediction("v3", (1 / 3, 1 / 3, 1 / 3)),  # not float32: kept as float64
        "nan": ModelPrediction("v1", (0.0, -0.0, 1e-300)),
    }
    packed = pack_models(models)
    back = unpack_models(packed)
    assert back == models and [str(p) for m in back.values() for p in m.probs] == [
        str(p) for m in models.values() for p in m.probs
    ]
    assert unpack_models(msgspec.json.encode(models)) == unpack_models(msgspec.json.encode(models).decode()) == models
    one = {"Production": models["Production"]}
    assert len(pack_models(one)) * 3 <= len(msgspec.json.encode(one))
    assert unpack_models(pack_models({})) == {}


@pytest.mark.parametrize(
    "vector",
    [
        features([Round(n, (10, 11, 16), n % 3, (n + 1) % 3, n, n) for n in range(1, 9)], (13, 10, 16)),
        np.array([0.0, -0.0, np.nan, 1e-45, 3.5, 0.0, 0.0, 0.0, 0.0], dtype=np.float32),  # bit for bit
        np.zeros(50, dtype=np.float32),
        np.arange(1, 51, dtype=np.float32),  # nothing to save: stays raw
        np.zeros(0, dtype=np.float32),
    ],
)
def test_packed_features_round_trip_bit_for_bit_and_raw_ones_read_as_they_are(vector: np.ndarray) -> None:
    raw = vector.tobytes()
    packed = pack_features(raw)
    assert unpack_features(packed) == raw and unpack_features(raw) == raw
    assert len(packed) <= len(raw)
    if np.count_nonzero(vector.view(np.uint32)) < len(vector) * 0.8:
        assert len(packed) < len(raw) * 0.7


def test_an_open_decision_is_stored_packed_and_one_stored_as_a_map_still_reads() -> None:
    game = new_game("g-packed")
    for move in (0, 2, 2, 1, 0, 1, 1):
        played = play(game, move, 1_000.0)
        game.rounds.append(played)
        game.pending = decision(game.id, history(game), bot_move=move)
    pending = game.pending
    packed = encode_pending(pending)
    assert packed is not None and decode_pending(packed, game.id, game.rounds) == pending  # features computed again
    before = msgspec.msgpack.encode(pending)  # the Decision's fields by name, as stored before schema version 9
    assert decode_pending(before, game.id, []) == pending and len(packed) * 2 < len(before)
    first = decision(game.id, [], shadow=False)
    assert decode_pending(encode_pending(first), game.id, []) == first
    assert encode_pending(None) is None and decode_pending(None, game.id, []) is None


def test_migration_7_keeps_every_round_stored_as_json_before_it(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds stored at schema version 6 (predictions as JSON) read the same after migration 7: the game, the
    trainer's reads and the shadow predictions; new rounds are stored packed beside them."""
    module: Any = postgres if is_postgres(database) else storage_module
    game = new_game("g-old", player="Ann")
    placeholder = "%s" if is_postgres(database) else "?"

    async def before() -> None:
        storage = await open_storage(database)
        await storage.create_game(game)
        await storage.close()

    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:6])
    run(before())
    with closing(connect(database)) as conn:  # two rounds written as version 6 wrote them
        for i, move in enumerate((0, 2)):
            played = play(game, move, 1_001.0 + i)
            following = decision(game.id, [*history(game), played.as_round()])
            row = list(round_row(game, played))[:26]  # version 6's columns (no next decision)
            row[22] = msgspec.json.encode(played.decision.models).decode()
            row[23] = played.decision.features  # raw float32
            conn.execute(f"INSERT INTO rounds VALUES ({', '.join([placeholder] * len(row))})", row)
            conn.execute(
                "UPDATE games SET rounds = ?, score_player = ?, score_bot = ?, pending = ?, updated = ? WHERE id = ?",
                (i + 1, played.score_player, played.score_bot, msgspec.msgpack.encode(following), played.created,
                 game.id),
            )  # fmt: skip
            game.rounds.append(played)
            game.pending, game.updated = following, played.created
    monkeypatch.undo()

    async def after() -> GameRecord | None:
        storage = await open_storage(database)
        try:
            await advance(storage, game, 1, 1_003.0, None)  # a new round, packed
            return await storage.load_game(game.id)
        finally:
            await storage.close()

    assert run(after()) == game
    stored = rows(database, "SELECT round, models FROM rounds ORDER BY round")
    assert all(unpack_models(r["models"]) == game.rounds[0].decision.models for r in stored)
    assert isinstance(stored[2]["models"], bytes) and stored[2]["models"][:1] != b"{"
    stored = rows(database, "SELECT round, models, features FROM rounds ORDER BY round")
    if not is_postgres(database):  # SQLite's migration converted the old rows too
        assert all(isinstance(r["models"], bytes) and r["models"][:1] != b"{" for r in stored)
        assert all(len(r["features"]) % 4 != 0 for r in stored)
    else:
        assert [len(r["features"]) % 4 != 0 for r in stored] == [False, False, True]
    [played_game] = list(played_games(database, tags=("human",)))
    assert played_game.rounds == history(game) and played_game.times == [1_001.0, 1_002.0, 1_003.0]
    with Lifecycle(database) as lifecycle:
        shadows = lifecycle.shadow_rounds("mlp", 0.0, ("human",))
    assert [s.player_move for s in shadows] == [0, 2, 1] and all(s.probs["v3"] == (0.2, 0.3, 0.5) for s in shadows)


def test_games_stored_before_migration_9_read_their_next_decision_from_their_row_and_play_on(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Games stored at schema version 8 (the games row rewritten by every round, its next decision a msgpack map)
    load the same after migration 9 and play on; a finished one keeps its row."""
    module: Any = postgres if is_postgres(database) else storage_module
    open_game, over = new_game("g-open"), new_game("g-over")
    placeholder = "%s" if is_postgres(database) else "?"

    async def create() -> None:
        storage = await open_storage(database)
        for game in (open_game, over):
            await storage.create_game(game)
        await storage.close()

    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:8])
    run(create())
    with closing(connect(database)) as conn:  # rounds as version 8 stored them
        for game, moves in ((open_game, (0, 2)), (over, (1,))):
            for i, move in enumerate(moves):
                played = play(game, move, 1_001.0 + i)
                row = list(round_row(game, played))[:26]
                conn.execute(f"INSERT INTO rounds VALUES ({', '.join([placeholder] * len(row))})", row)
                game.rounds.append(played)
                game.pending = None if game is over else decision(game.id, history(game))
                game.updated = played.created
                conn.execute(
                    "UPDATE games SET state = ?, rounds = ?, score_player = ?, score_bot = ?, pending = ?, updated = ?"
                    " WHERE id = ?",
                    ("over" if game.pending is None else "open", i + 1, played.score_player, played.score_bot,
                     game.pending and msgspec.msgpack.encode(game.pending), played.created, game.id),
                )  # fmt: skip
    monkeypatch.undo()

    async def after() -> tuple[GameRecord | None, GameRecord | None, GameRecord | None]:
        storage = await open_storage(database)
        try:
            migrated = await storage.load_game(open_game.id)
            await advance(storage, open_game, 1, 1_003.0, None)
            return migrated, await storage.load_game(open_game.id), await storage.load_game(over.id)
        finally:
            await storage.close()

    migrated, played_on, finished = run(after())
    assert migrated is not None and migrated.rounds == open_game.rounds[:2]
    assert migrated.pending == open_game.rounds[2].decision and migrated.updated == 1_002.0
    assert played_on == open_game and finished == over
    stored = rows(database, "SELECT game_id, round, pending FROM rounds ORDER BY game_id, round")
    assert [(r["game_id"], r["round"], r["pending"] is None) for r in stored] == [
        ("g-open", 1, True), ("g-open", 2, True), ("g-open", 3, False), ("g-over", 1, True)
    ]  # fmt: skip


def test_a_new_sqlite_database_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    """New databases get PAGE_SIZE pages (the WAL logs whole pages); an existing one is opened as it is."""
    new = tmp_path / "new.db"
    run(_create_and_play(new))
    with closing(sqlite3.connect(new)) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == storage_module.PAGE_SIZE == 1024
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("VACUUM")
    run(_create_and_play(old))
    with closing(sqlite3.connect(old)) as db:
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096


async def _create_and_play(path: Path) -> None:
    storage = SQLiteStorage(path)
    try:
        game = new_game(f"pages-{path.stem}")
        await storage.create_game(game)
        for n in range(5):
            await advance(storage, game, n % 3, 1_000.0 + n, None)
        loaded = await storage.load_game(game.id)
        assert loaded is not None and len(loaded.rounds) == 5
    finally:
        await storage.close()


def test_a_transactions_jobs_are_cut_into_runs_of_rounds_each_before_the_job_that_followed() -> None:
    a, b, c = (RoundWrite(row=(n,), over=None, counted=(), arm=None) for n in range(3))
    assert segments(["start", a, b, "resume", c]) == [([], "start"), ([a, b], "resume"), ([c], None)]
    assert segments([]) == [([], None)]

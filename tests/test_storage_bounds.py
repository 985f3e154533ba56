"""Storage stays bounded: the WAL is truncated under steady writes, commits wait and are refused while it
cannot be, and a full database refuses starts and moves without losing an answered round, then recovers."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from conftest import ServerProcess
from test_storage import advance, new_game, run

from clients.client import Client, ClientGame, Refused
from inference.settings import Settings, SettingsError
from server.games import GameService, result_message
from server.messages import Result
from storage import SQLiteStorage, StorageUnavailable
from storage import sqlite as storage_module

KIB = 1024


@contextmanager
def wal_sizes(path: Path) -> Iterator[list[int]]:
    """The size of `path`'s WAL, sampled every millisecond while the block runs."""
    wal = Path(f"{path}-wal")
    sizes: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.001):
            try:
                sizes.append(wal.stat().st_size)
            except FileNotFoundError:
                sizes.append(0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield sizes
    finally:
        stop.set()
        sampler.join()


def test_steady_writes_keep_the_wal_under_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "WAL_TRUNCATE_AT", 256 * KIB)
    monkeypatch.setattr(storage_module, "WAL_HARD_LIMIT", 1024 * KIB)
    monkeypatch.setattr(storage_module, "WAL_WAIT", 60.0)  # commits may wait for the checkpointer, never fail here
    path = tmp_path / "rpsquest.db"
    games = [new_game(f"g{i:03d}") for i in range(100)]

    async def scenario() -> None:
        storage = SQLiteStorage(path)
        await asyncio.gather(*(storage.create_game(g) for g in games))
        for step in range(12):  # every game plays a round: 100 rounds a step, committed in batches of 64
            rounds = (advance(storage, g, (step + i) % 3, 2_000.0 + step, None) for i, g in enumerate(games))
            await asyncio.gather(*rounds)
        for game in games:
            assert await storage.load_game(game.id) == game
        await storage.close()

    with wal_sizes(path) as sizes:
        run(scenario())
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 1200
    # The hard limit plus what one batch adds past it (64 rounds, a few pages each).
    assert max(sizes) <= 1024 * KIB + 64 * 4 * 4 * KIB
    assert any(later < earlier for earlier, later in itertools.pairwise(sizes)), "the WAL was never truncated"


def test_commits_wait_then_are_refused_while_a_reader_pins_the_wal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "WAL_TRUNCATE_AT", 64 * KIB)
    monkeypatch.setattr(storage_module, "WAL_HARD_LIMIT", 256 * KIB)
    monkeypatch.setattr(storage_module, "WAL_WAIT", 0.2)
    path = tmp_path / "rpsquest.db"
    games = [new_game(f"g{i:02d}") for i in range(20)]

    async def scenario() -> tuple[int, int]:
        storage = SQLiteStorage(path)
        await asyncio.gather(*(storage.create_game(g) for g in games))
        reader = sqlite3.connect(path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM games").fetchone()  # a snapshot no checkpoint may pass
        refused_at = None
        for step in range(200):
            outcomes = await asyncio.gather(
                *(advance(storage, g, step % 3, 3_000.0 + step, None) for g in games), return_exceptions=True
            )
            if any(isinstance(o, StorageUnavailable) for o in outcomes):
                assert all(o is None or isinstance(o, StorageUnavailable) for o in outcomes), outcomes
                refused_at = step
                break
        assert refused_at is not None, "the WAL grew without limit and no commit was refused"
        with pytest.raises(StorageUnavailable):  # still pinned: a lone write is refused as well
            await advance(storage, games[0], 0, 4_000.0, None)
        stored = [await storage.load_game(g.id) for g in games]
        assert stored == games  # `advance` keeps what was stored: a refused round is not in the database
        reader.execute("ROLLBACK")  # the reader lets go: the checkpointer truncates the log, commits go through
        reader.close()
        monkeypatch.setattr(storage_module, "WAL_WAIT", 60.0)
        await asyncio.gather(*(advance(storage, g, 1, 5_000.0, None) for g in games))
        for game in games:
            assert await storage.load_game(game.id) == game
        await storage.close()
        return refused_at, len(games[0].rounds)

    with wal_sizes(path) as sizes:
        refused_at, played = run(scenario())
    assert played == refused_at + 1
    assert max(sizes) <= 256 * KIB + 20 * 4 * 4 * KIB  # the hard limit plus one batch
    assert sizes[-1] < 256 * KIB


def _fill(path: Path, spare_pages: int) -> float:
    """Create the database with a filler table; returns a cap in MiB that leaves `spare_pages` pages free."""
    SQLiteStorage.prepare(path)
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE filler (b BLOB)")
        db.executemany("INSERT INTO filler VALUES (zeroblob(3000))", [()] * 40)
        db.commit()
        pages: int = db.execute("PRAGMA page_count").fetchone()[0]
        size: int = db.execute("PRAGMA page_size").fetchone()[0]
    return (pages + spare_pages) * size / 2**20


def _free(path: Path) -> None:
    """Give the space back: the filler's pages become free pages of the database."""
    with closing(sqlite3.connect(path, timeout=30)) as db:
        db.execute("DROP TABLE filler")
        db.commit()


def test_a_full_database_refuses_starts_and_moves_and_play_resumes_when_space_returns(tmp_path: Path) -> None:
    path = tmp_path / "rpsquest.db"
    cap_mib = _fill(path, spare_pages=12)
    rng = random.Random(3)

    async def scenario() -> None:
        storage = SQLiteStorage(path, max_bytes=int(cap_mib * 2**20))
        service = GameService(storage)
        answered: dict[str, list[Result]] = {}
        playing: list[str] = []  # three games at a time, their moves in turn: when the first write refused is a
        failed = None  # start, the games already open go on until one of their rounds is refused
        for turn in range(3000):
            while len(playing) < 3:
                try:
                    game = await service.start(("brian", "forrest", "logan")[len(answered) % 3], None, "sim")
                except StorageUnavailable:
                    break
                playing.append(game.game_id)
                answered[game.game_id] = []
            if not playing:
                pytest.fail("the database refused starts before it refused any move")
            game_id = playing[turn % len(playing)]
            n, move = len(answered[game_id]) + 1, ("rock", "paper", "scissors")[rng.randrange(3)]
            try:
                result = await service.move(game_id, n, move)
            except StorageUnavailable:
                failed = (game_id, n, move)
                break
            answered[game_id].append(result)
            if result.over:
                playing.remove(game_id)
        assert failed is not None, "the database never filled up"
        started: list[str] = []
        with pytest.raises(StorageUnavailable):  # a game's row may still fit in a page where a round did not
            for _ in range(500):
                started.append((await service.start("brian", None, "sim")).game_id)
        with pytest.raises(StorageUnavailable):  # the same move again: refused, not answered from memory
            await service.move(*failed)
        _free(path)
        answered[failed[0]].append(await service.move(*failed))  # no restart: the next write finds room
        game_id, n = failed[0], failed[1]
        while not answered[game_id][-1].over:
            n += 1
            answered[game_id].append(await service.move(game_id, n, "rock"))
        started.append((await service.start("logan", None, "sim")).game_id)
        for gid in started:
            assert await storage.load_game(gid) is not None
        for gid, results in answered.items():  # every answered round is stored, exactly as answered
            record = await storage.load_game(gid)
            assert record is not None
            assert [result_message(record, i) for i in range(len(record.rounds))] == results
        await storage.close()

    run(scenario())


def test_db_max_mb_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPSQUEST_DB_MAX_MB", "0.5")
    assert Settings.from_env().db_max_mb == 0.5
    monkeypatch.setenv("RPSQUEST_DB_MAX_MB", "-1")
    with pytest.raises(SettingsError):
        Settings.from_env()
    monkeypatch.delenv("RPSQUEST_DB_MAX_MB")
    assert Settings.from_env().db_max_mb == 0.0


def test_server_answers_unavailable_when_full_and_recovers_by_itself(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "full"
    data_dir.mkdir()
    cap_mib = _fill(data_dir / "rpsquest.db", spare_pages=12)
    server = server_factory({"RPSQUEST_DB_MAX_MB": repr(cap_mib), "RPSQUEST_RATE_LIMIT": "0"}, data_dir=data_dir)

    async def scenario() -> None:
        client = await Client.open(server.ws_url)
        rng = random.Random(4)
        games: list[ClientGame] = []
        answers: dict[str, list[dict[str, object]]] = {}
        refused: dict[str, object] | None = None
        for _ in range(3000):
            if not games or games[-1].open_round is None:
                games.append(await client.start("forrest", tag="loadtest"))
                answers[games[-1].game_id] = []
            game = games[-1]
            move = rng.randrange(3)
            played, answer, _ = await client.move(game, move)
            if played is None:
                refused = answer
                break
            answers[game.game_id].append(answer)
        assert refused is not None, "the database never filled up"
        assert refused["code"] == "unavailable" and refused["game_id"] == games[-1].game_id
        started: list[ClientGame] = []
        with pytest.raises(Refused) as start:  # a game's row may still fit in a page where a round did not
            for _ in range(500):
                started.append(await client.start("brian", tag="loadtest"))
        assert start.value.code == "unavailable"
        _free(data_dir / "rpsquest.db")
        game = games[-1]
        while game.open_round is not None:  # the same round again, then to the end, on the same connection
            played, answer, _ = await client.move(game, rng.randrange(3))
            assert played is not None, answer
            answers[game.game_id].append(answer)
        started.append(await client.start("logan", tag="loadtest"))
        for g in games + started:
            state = await client.request({"type": "resume", "game_id": g.game_id, "token": g.token})
            assert state["type"] == "game" and state["history"] == answers.get(g.game_id, [])
        await client.close()

    asyncio.run(scenario())
    assert os.path.getsize(data_dir / "rpsquest.db") <= cap_mib * 2**20

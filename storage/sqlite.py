"""Durable storage behind a small interface; SQLite (WAL, group commit) is the embedded backend.

Writes queue up during a turn of the event loop and are committed together at its end, in one transaction
(group commit), before any caller's future resolves: a round is on disk before its result is sent. A write
with nothing else waiting to run in its turn commits at once. While commits gather several jobs (a busy loop),
the next one waits until COMMIT_GAP after the last, so that more join it (storage/pace.py). A commit in WAL
mode with synchronous=NORMAL writes to the log without an fsync (tens of microseconds), so it runs on the
event loop itself: handing it to a thread and back cost ten times as much. WAL with synchronous=NORMAL
survives the death of the process at any moment (kill -9); only an operating-system crash could lose the last
commits. Checkpoints (which fsync) run on a thread of their own, reads on a small pool of read-only
connections, both off the event loop.

The log stays bounded. Under steady writes a passive checkpoint never catches up with the
end of the log, so the log would never restart: once it reaches WAL_TRUNCATE_AT, the
checkpointer copies it passively (writers carry on), then takes the writers' turn (every
process's writers wait) to copy the last frames and truncate the log to nothing. Should the
log still reach WAL_HARD_LIMIT (a slow disk, a long reader), commits wait for it to shrink,
and after WAL_WAIT they are refused (StorageUnavailable): the log never grows past the hard
limit by more than one batch per process. A full database or disk (SQLITE_FULL, ENOSPC)
refuses writes the same way, and they succeed again as soon as there is room.

Worker processes sharing the file commit in turns (a kernel lock, `-writers`). A commit that finds another
process's turn under way does not stop its event loop to wait: it is tried again every TURN_RETRY seconds
while the loop serves (and more rounds join the batch), and waits in the kernel's line only after
TURN_PATIENCE, so that no process can be kept from committing for long by the others' retries. The
patience outlasts the checkpointer's hold on the turn while it truncates the log (20-31 ms, about once a
second at 7,500 human-paced sessions), so the loops serve through that too.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from engine.features import FIRST_MODEL_ROUND
from engine.rules import Round
from storage.pace import Pace
from storage.records import (
    MEMORY_SQL,
    GameRecord,
    LeaderboardRow,
    LedgerEntry,
    LifecycleFigures,
    OpponentStats,
    RoundRecord,
    VersionStats,
    memory_games,
)
from storage.rows import (
    GAME_COLUMNS,
    LAST_PLAYED,
    ROUND_COLUMNS,
    RoundWrite,
    Totals,
    encode_pending,
    game_record,
    models_json,
    pack_features,
    pack_models,
    round_statements,
    segments,
    settle,
    unpack_features,
    unpack_models,
)

T = TypeVar("T")
log = logging.getLogger("rpsquest.storage")
PAGE_SIZE = 1024  # bytes, for a new database (connect)
CHECKPOINT_EVERY = 1.0  # a passive checkpoint at least this often while the log holds anything
CHECKPOINT_POLL = 0.05  # how often the checkpointer looks at the size of the log
WAL_TRUNCATE_AT = 16 * 2**20  # a log this large is copied back and truncated, the writers held for its tail
WAL_HARD_LIMIT = 48 * 2**20  # commits wait while the log is this large ...
WAL_WAIT = 1.0  # ... for at most this many seconds; then they are refused
WAL_RECHECK = 0.01  # seconds between looks at the log while commits wait
CHECKPOINT_BUSY_MS = 20  # how long the truncating checkpoint waits for readers while it holds the writers
TURN_RETRY = 0.0002  # seconds between tries for the writers' turn while another process holds it ...
TURN_PATIENCE = 0.05  # ... for at most this long (past a truncating checkpoint's hold); then it waits on the event loop


def _hit(rock: str, paper: str, scissors: str) -> str:
    """SQL: 1 when the round's player_move is the top move of the probabilities (as `top_move`)."""
    return (
        f"CASE r.player_move WHEN 'rock' THEN ({rock} >= {paper} AND {rock} >= {scissors})"
        f" WHEN 'paper' THEN ({paper} > {rock} AND {paper} >= {scissors})"
        f" ELSE ({scissors} > {rock} AND {scissors} > {paper}) END"
    )


_MODEL_PROBS = [f"json_extract(m.value, '$.probs[{i}]')" for i in range(3)]  # of a json_each(models) row
# Live figures from every stored round and game: migration 4 fills its tables with them, `rebuild_totals` again.
_TOTALS = f"""
    INSERT INTO prediction_stats
        SELECT r.family, r.alias, r.version, 'blend', g.tag, COUNT(*),
            SUM({_hit("r.p_rock", "r.p_paper", "r.p_scissors")})
        FROM rounds r JOIN games g ON g.id = r.game_id WHERE r.round >= {FIRST_MODEL_ROUND} GROUP BY 1, 2, 3, 5;
    INSERT INTO prediction_stats
        SELECT r.family, m.key, json_extract(m.value, '$.version'), 'model', g.tag, COUNT(*),
            SUM({_hit(*_MODEL_PROBS)})
        FROM rounds r JOIN games g ON g.id = r.game_id, json_each(models_json(r.models)) m
        WHERE r.round >= {FIRST_MODEL_ROUND} GROUP BY 1, 2, 3, 5;
    INSERT INTO arm_stats
        SELECT family, alias, version, tag, winner, COUNT(*) FROM games WHERE state = 'over' GROUP BY 1, 2, 3, 4, 5
"""
# A round's columns, the same in the table of schema version 1 and in the one version 8 copies it into.
_ROUNDS = """\
        game_id TEXT NOT NULL REFERENCES games(id),
        round INTEGER NOT NULL,
        rock_value INTEGER NOT NULL,
        paper_value INTEGER NOT NULL,
        scissors_value INTEGER NOT NULL,
        player_move TEXT NOT NULL,
        bot_move TEXT NOT NULL,
        outcome TEXT NOT NULL,
        player_points INTEGER NOT NULL,
        bot_points INTEGER NOT NULL,
        score_player INTEGER NOT NULL,
        score_bot INTEGER NOT NULL,
        family TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        source TEXT NOT NULL,
        p_rock REAL NOT NULL,
        p_paper REAL NOT NULL,
        p_scissors REAL NOT NULL,
        ev_rock REAL NOT NULL,
        ev_paper REAL NOT NULL,
        ev_scissors REAL NOT NULL,
        models TEXT NOT NULL DEFAULT '{}',
        features BLOB NOT NULL,
        nonce TEXT NOT NULL,
        created REAL NOT NULL"""
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE TABLE players (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE games (
        id TEXT PRIMARY KEY,
        opponent TEXT NOT NULL,
        family TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        opening TEXT NOT NULL,
        tag TEXT NOT NULL CHECK (tag IN ('human', 'sim', 'loadtest')),
        player_id INTEGER REFERENCES players(id),
        token_hash TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'over')),
        abandoned INTEGER NOT NULL DEFAULT 0,
        winner TEXT CHECK (winner IN ('player', 'bot', 'tie')),
        score_player INTEGER NOT NULL DEFAULT 0,
        score_bot INTEGER NOT NULL DEFAULT 0,
        rounds INTEGER NOT NULL DEFAULT 0,
        pending BLOB,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        finished REAL
    );
    CREATE INDEX games_open ON games (state, updated);
    CREATE INDEX games_player ON games (player_id);
    CREATE TABLE rounds (
{_ROUNDS},
        PRIMARY KEY (game_id, round)
    ) WITHOUT ROWID;
    CREATE TABLE promotions (
        id INTEGER PRIMARY KEY,
        created REAL NOT NULL,
        family TEXT NOT NULL,
        decision TEXT NOT NULL,
        alias TEXT,
        from_version TEXT,
        to_version TEXT,
        details TEXT NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX promotions_family ON promotions (family, created);
    """,
    # Games in play, for the abandonment sweep: a partial index on a column no round changes, so storing
    # a round leaves it alone (an index on `updated` was rewritten by every round).
    """
    DROP INDEX games_open;
    CREATE INDEX games_unfinished ON games (created) WHERE state = 'open' AND abandoned = 0;
    """,
    # The model lifecycle: version numbers and manifest generations allocated under the database's write lock,
    # and which version held which alias when (live figures count from the start of a tenure).
    """
    CREATE TABLE model_versions (
        family TEXT NOT NULL,
        number INTEGER NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (family, number)
    );
    CREATE TABLE manifests (
        generation INTEGER PRIMARY KEY,
        families TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE alias_tenures (
        id INTEGER PRIMARY KEY,
        family TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        started REAL NOT NULL,
        ended REAL,
        why TEXT NOT NULL
    );
    CREATE UNIQUE INDEX alias_tenures_open ON alias_tenures (family, alias) WHERE ended IS NULL;
    CREATE INDEX games_arm ON games (family, alias, version, created);
    """,
    # Live figures kept up to date by every round and every game end (in the same transaction), so that
    # /api/models reads a few rows instead of every round; filled here from what is already stored.
    # Predictions count from round 4 (FIRST_MODEL_ROUND): `blend` is what the bot used in the games a
    # version served as an alias, `model` every alias's own probabilities; `correct` = the top move was played.
    f"""
    CREATE TABLE prediction_stats (
        family TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('blend', 'model')),
        tag TEXT NOT NULL,
        predictions INTEGER NOT NULL,
        correct INTEGER NOT NULL,
        PRIMARY KEY (family, alias, version, kind, tag)
    ) WITHOUT ROWID;
    CREATE TABLE arm_stats (
        family TEXT NOT NULL,
        alias TEXT NOT NULL,
        version TEXT NOT NULL,
        tag TEXT NOT NULL,
        winner TEXT NOT NULL CHECK (winner IN ('player', 'bot', 'tie')),
        games INTEGER NOT NULL,
        PRIMARY KEY (family, alias, version, tag, winner)
    ) WITHOUT ROWID;
    {_TOTALS}    """,
    # The trainer's runs (a row when one starts, its outcome when it ends), for the operators' metrics.
    """
    CREATE TABLE training_runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        outcome TEXT CHECK (outcome IN ('success', 'failure', 'skipped')),
        rows INTEGER,
        versions TEXT NOT NULL DEFAULT '{}',
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX training_runs_finished ON training_runs (outcome, finished);
    """,
    # A returning player's games: the SHA-256 of the key their browser keeps (NULL once they ask to be forgotten).
    """
    ALTER TABLE games ADD COLUMN key_hash TEXT;
    CREATE INDEX games_key ON games (key_hash, finished) WHERE key_hash IS NOT NULL;
    """,
    # Rounds' predictions and features packed (storage.rows.pack_models, pack_features): a third fewer bytes.
    """
    UPDATE rounds SET models = packed_models(models), features = packed_features(features)
    """,
    # Rounds in a rowid table, appended in the order they are stored, and found by a unique index on (game, round).
    # A round's row (some 350 bytes) is more than a WITHOUT ROWID table keeps in a 1 KiB page (231 bytes): every
    # round spilled into an overflow page of its own, three quarters empty, so the file was about four times
    # its data and every round logged one page more. A rowid table keeps rows up to 989 bytes in the page.
    f"""
    CREATE TABLE rounds_by_time (
{_ROUNDS}
    );
    INSERT INTO rounds_by_time SELECT * FROM rounds ORDER BY created, game_id, round;
    DROP TABLE rounds;
    ALTER TABLE rounds_by_time RENAME TO rounds;
    CREATE UNIQUE INDEX rounds_game ON rounds (game_id, round)
    """,
    # A round's row holds the game's next decision (storage.rows.round_row), so that storing a round only appends:
    # rewriting the game's row, its next decision inline, logged a page a round. Rounds stored before hold none:
    # their game's row has it (storage.rows.game_record).
    "ALTER TABLE rounds ADD COLUMN pending BLOB",
)


class StorageUnavailable(Exception):
    """The database cannot be reached or written right now."""


class StorageConflict(StorageUnavailable):
    """The write collides with what is stored (e.g. a round another process has just played)."""


class Storage(Protocol):
    """What the game server needs from a database."""

    async def create_game(self, game: GameRecord) -> None: ...

    async def record_round(self, game: GameRecord, played: RoundRecord, winner: str | None) -> None:
        """Store a played round with the game's next decision (game.pending) in one transaction."""
        ...

    async def load_game(self, game_id: str) -> GameRecord | None: ...

    async def mark_abandoned(self, idle_before: float) -> int: ...

    async def remembered(self, key_hash: str, before: float, games: int) -> list[list[Round]]:
        """The rounds of the last `games` games with `key_hash` that finished before `before`, oldest first."""
        ...

    async def forget(self, key_hash: str) -> int:
        """Unlink every game from `key_hash` (the games stay, anonymous); returns how many there were."""
        ...

    async def delete_unplayed(self, created_before: float) -> int:
        """Delete the open games created before `created_before` in which no round was played; their count."""
        ...

    async def opponent_stats(self) -> list[OpponentStats]: ...

    async def version_stats(self, tags: tuple[str, ...]) -> list[VersionStats]:
        """Live figures of every version by alias, over games with these tags (read from running totals)."""
        ...

    async def leaderboard(self, per_opponent: int) -> list[LeaderboardRow]: ...

    async def promotions(self, family: str | None, limit: int) -> list[LedgerEntry]:
        """The promotion ledger, newest first."""
        ...

    async def lifecycle_figures(self) -> LifecycleFigures:
        """Promotion decisions by family and outcome, each family's last ledger row, training runs."""
        ...

    async def close(self) -> None: ...


# The lifecycle's figures for /metrics, in SQL both backends speak: decisions by family and outcome, each
# family's latest ledger details, training runs by outcome, the last success, the last run's duration.
FIGURES_SQL = (
    "SELECT family, decision, COUNT(*) FROM promotions GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT family, details FROM promotions WHERE id IN (SELECT MAX(id) FROM promotions GROUP BY family)",
    "SELECT outcome, COUNT(*) FROM training_runs WHERE outcome IS NOT NULL GROUP BY 1 ORDER BY 1",
    "SELECT MAX(finished) FROM training_runs WHERE outcome = 'success'",
    "SELECT finished - started FROM training_runs WHERE outcome IN ('success', 'failure')"
    " ORDER BY finished DESC LIMIT 1",
)


def lifecycle_figures(
    decisions: list[Any], latest: list[Any], runs: list[Any], success: list[Any], last: list[Any]
) -> LifecycleFigures:
    """The figures from the rows of FIGURES_SQL's queries, in order."""
    return LifecycleFigures(
        decisions=[(f, d, int(n)) for f, d, n in decisions],
        latest={f: json.loads(details) for f, details in latest},
        training_runs={o: int(n) for o, n in runs},
        last_success=success[0][0] if success else None,
        last_duration=float(last[0][0]) if last else None,
    )


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        # A new database gets small pages: the WAL logs every page a commit touches whole, and a round touches
        # a few (the end of `rounds`, its game's place in their index): 1 KiB pages log a third of the bytes of
        # SQLite's 4 KiB default for a few percent more CPU (docs/scaling.md). An existing database keeps its size.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _functions(conn: sqlite3.Connection) -> None:
    """The SQL functions the migrations and _TOTALS call: a round's predictions or features packed (from either
    stored form), its predictions as JSON."""
    conn.create_function("packed_models", 1, lambda stored: pack_models(unpack_models(stored)), deterministic=True)
    conn.create_function(
        "packed_features", 1, lambda stored: pack_features(unpack_features(stored)), deterministic=True
    )
    conn.create_function("models_json", 1, models_json, deterministic=True)


def rebuild_totals(conn: sqlite3.Connection) -> None:
    """Count prediction_stats and arm_stats afresh from every stored round and game (a scan of all of them)."""
    _functions(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM prediction_stats")
        conn.execute("DELETE FROM arm_stats")
        for statement in _TOTALS.split(";"):
            conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations not yet applied; returns the schema version."""
    _functions(conn)
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
    for version, script in enumerate(MIGRATIONS, start=1):
        conn.execute("BEGIN IMMEDIATE")  # checked inside the lock: another process may be migrating too
        if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)).fetchone():
            conn.execute("COMMIT")
            continue
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


_Work = Callable[[sqlite3.Connection], Any] | RoundWrite  # a round's rows are stored with their group's
_Job = tuple[_Work, "asyncio.Future[Any]"]
WRITE_BUSY_MS = 1000
MAX_BATCH = 64  # jobs in one transaction: bounds how long one commit holds the event loop
COMMIT_GAP = 0.002  # seconds from one commit to the next while commits gather several jobs (storage/pace.py)


class SQLiteStorage:
    """The embedded SQLite backend."""

    @staticmethod
    def prepare(path: Path) -> None:
        """Create or migrate the database at `path` (before processes that share it start)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            migrate(conn)
        finally:
            conn.close()

    def __init__(self, path: Path, readers: int = 2, max_bytes: int = 0) -> None:
        """`max_bytes` > 0 caps the database file (PRAGMA max_page_count): past it, writes are refused."""
        self.path = path
        self._wal = f"{path}-wal"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer_conn = connect(path)
        migrate(self._writer_conn)
        if max_bytes > 0:  # per connection: only this one writes rows (never below the current size)
            page_size = self._writer_conn.execute("PRAGMA page_size").fetchone()[0]
            self._writer_conn.execute(f"PRAGMA max_page_count = {max(1, max_bytes // page_size)}")
        # Commits never checkpoint (that would fsync in the middle of a player's round); a thread of
        # its own copies the WAL back into the database and keeps it bounded (see the module's docstring).
        self._writer_conn.execute("PRAGMA wal_autocheckpoint = 0")
        # Commits run on the event loop: a database held by something else fails them after a second
        # (the players get `unavailable` and retry) rather than stalling every connection for long.
        self._writer_conn.execute(f"PRAGMA busy_timeout = {WRITE_BUSY_MS}")
        # Worker processes sharing the file take turns through a kernel lock, which wakes the next in
        # line: SQLite's own busy wait (sleep and retry) can starve one writer for seconds under load.
        self._turn = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o600)
        self._jobs: list[_Job] = []  # queued in this turn; a commit is scheduled whenever there are some
        self._held_since: float | None = None  # when commits started waiting for the log to shrink
        self._turn_wanted: float | None = None  # when the queued commit first found the turn taken
        self._pace = Pace(COMMIT_GAP)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")

    # -- writing ---------------------------------------------------------------------------

    def _wal_bytes(self) -> int:
        try:
            return os.stat(self._wal).st_size
        except FileNotFoundError:
            return 0

    def _checkpoint_loop(self) -> None:
        conn = connect(self.path)
        conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}")
        turn = os.open(f"{self.path}-writers", os.O_RDWR)  # an open file of its own: flock is per open file
        # One process's checkpointer works at a time; the others skip their turn rather than queue up behind it.
        ours = os.open(f"{self.path}-checkpoint", os.O_RDWR | os.O_CREAT, 0o600)
        last = truncate_after = time.monotonic()
        failing = False
        try:
            while not self._stop.wait(CHECKPOINT_POLL):
                now = time.monotonic()
                if self._wal_bytes() < WAL_TRUNCATE_AT and now - last < CHECKPOINT_EVERY:
                    continue
                try:
                    fcntl.flock(ours, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                try:
                    size = self._wal_bytes()  # afresh: another process may have just truncated it
                    truncate = size >= WAL_TRUNCATE_AT and now >= truncate_after
                    if truncate or (size > 0 and now - last >= CHECKPOINT_EVERY):
                        last = now
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # the bulk of the copy; writers carry on
                        if truncate and not self._truncate(conn, turn):
                            truncate_after = now + CHECKPOINT_EVERY  # a reader holds on: let writers run meanwhile
                except sqlite3.Error as exc:
                    if not failing:
                        log.warning("WAL checkpoint failed (retrying): %s", exc)
                    failing = True
                else:
                    if failing:
                        log.warning("WAL checkpoints succeed again")
                    failing = False
                finally:
                    fcntl.flock(ours, fcntl.LOCK_UN)
        finally:
            conn.close()
            os.close(turn)
            os.close(ours)

    def _truncate(self, conn: sqlite3.Connection, turn: int) -> bool:
        """Copy the rest of the log into the database and truncate it, every process's writers held meanwhile.

        With no writer the checkpoint reaches the end of the log; it then waits (CHECKPOINT_BUSY_MS at most)
        for readers still on an older snapshot. False when they held on and the log was not truncated.
        """
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            busy: int = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            return busy == 0
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)

    def _held_back(self) -> bool:
        """Back-pressure: True while the log is at WAL_HARD_LIMIT, when this turn's commit does not run.

        The queued jobs wait (the commit is tried again every WAL_RECHECK seconds) while the checkpointer
        catches up; once they have waited WAL_WAIT, they are refused with StorageUnavailable.
        """
        if self._wal_bytes() < WAL_HARD_LIMIT:
            self._held_since = None
            return False
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._held_since is None:
            self._held_since = now
            log.warning("the WAL is over %d MiB: commits wait for the checkpointer", WAL_HARD_LIMIT >> 20)
        if now - self._held_since < WAL_WAIT:
            loop.call_later(WAL_RECHECK, self._commit)
            return True
        self._held_since = None
        refused, self._jobs = self._jobs, []
        for _, future in refused:
            if not future.done():
                future.set_exception(StorageUnavailable(f"the WAL stayed over {WAL_HARD_LIMIT >> 20} MiB"))
        return True

    def _commit(self) -> None:
        """Commit the queued jobs (at most MAX_BATCH; the rest in the next turn) and settle their futures.

        They run in one transaction. Should one job fail, the transaction is rolled back and each job runs
        again in a transaction of its own: one job's failure is its caller's alone. When the database
        itself fails (busy, I/O, full), every job of the batch gets its error.
        """
        if self._held_back():
            return
        try:
            if not self._take_turn():
                return  # tried again in TURN_RETRY seconds; the jobs stay queued, and more may join them
        except OSError as exc:  # the lock itself failed (it never does in practice): so does every queued job
            failed, self._jobs = self._jobs, []
            settle(failed, [(False, exc)] * len(failed))
            return
        try:
            loop = asyncio.get_running_loop()
            batch, self._jobs = self._jobs[:MAX_BATCH], self._jobs[MAX_BATCH:]
            if self._jobs:
                loop.call_soon(self._commit)
            outcomes = self._attempt([work for work, _ in batch])
            self._pace.ran(loop.time(), len(batch))
            ok, error = outcomes[0]
            if len(batch) > 1 and not ok and not isinstance(error, sqlite3.OperationalError):
                outcomes = [self._attempt([work])[0] for work, _ in batch]
        finally:
            fcntl.flock(self._turn, fcntl.LOCK_UN)
        settle(batch, outcomes)

    def _take_turn(self) -> bool:
        """Take the writers' turn (the lock that worker processes commit in turns by) without stopping the event
        loop: while another process commits, False, and the commit is tried again in TURN_RETRY seconds, the loop
        serving meanwhile. After TURN_PATIENCE seconds of that, wait for the turn here, first in the kernel's
        line, so that no process is kept from committing by the others' retries."""
        try:
            fcntl.flock(self._turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if self._turn_wanted is None:
                self._turn_wanted = now
            if now - self._turn_wanted < TURN_PATIENCE:
                loop.call_later(TURN_RETRY, self._commit)
                return False
            fcntl.flock(self._turn, fcntl.LOCK_EX)
        self._turn_wanted = None
        return True

    def _attempt(self, jobs: list[_Work]) -> list[tuple[bool, Any]]:
        """Run `jobs` in one transaction, their totals last (the writers' turn held): [(True, result)] per job,
        or [(False, exception)] for all. Consecutive rounds are stored together, one statement of each kind."""
        conn = self._writer_conn
        totals = Totals.of(work for work in jobs if isinstance(work, RoundWrite))
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                results: list[tuple[bool, Any]] = []
                for rounds, work in segments(jobs):
                    _store_rounds(conn, rounds)
                    results += [(True, None)] * len(rounds)
                    if work is not None:
                        results.append((True, work(conn)))
                for sql, rows in totals.statements():
                    conn.executemany(sql, rows)
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except Exception as exc:
            return [(False, exc)] * len(jobs)
        return results

    async def _write(self, work: Callable[[sqlite3.Connection], T] | RoundWrite) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.append((work, future))
        if len(self._jobs) == 1:
            self._pace.schedule(loop, self._commit)
        try:
            return await future
        except sqlite3.IntegrityError as exc:
            raise StorageConflict(str(exc)) from exc
        except (sqlite3.Error, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    # -- reading ---------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
        return conn

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: fn(self._reader()))
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    # -- the interface -----------------------------------------------------------------------

    async def create_game(self, game: GameRecord) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            player_id = None
            if game.player is not None:
                conn.execute(
                    "INSERT INTO players (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                    (game.player, game.created),
                )
                player_id = conn.execute("SELECT id FROM players WHERE name = ?", (game.player,)).fetchone()[0]
            conn.execute(
                "INSERT INTO games (id, opponent, family, alias, version, opening, tag, player_id, token_hash,"
                " state, pending, created, updated, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                (
                    game.id,
                    game.opponent,
                    game.family,
                    game.alias,
                    game.version,
                    game.opening,
                    game.tag,
                    player_id,
                    game.token_hash,
                    encode_pending(game.pending),
                    game.created,
                    game.updated,
                    game.key_hash,
                ),
            )

        await self._write(insert)

    async def record_round(self, game: GameRecord, played: RoundRecord, winner: str | None) -> None:
        await self._write(RoundWrite.of(game, played, winner))

    async def load_game(self, game_id: str) -> GameRecord | None:
        return await self._read(lambda conn: _load_game(conn, game_id))

    async def remembered(self, key_hash: str, before: float, games: int) -> list[list[Round]]:
        return await self._read(lambda conn: memory_games(conn.execute(MEMORY_SQL, (key_hash, before, games))))

    async def forget(self, key_hash: str) -> int:
        def update(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE games SET key_hash = NULL WHERE key_hash = ?", (key_hash,)).rowcount

        return await self._write(update)

    async def mark_abandoned(self, idle_before: float) -> int:
        def update(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "UPDATE games SET abandoned = 1 WHERE state = 'open' AND abandoned = 0 AND created < ?"
                f" AND COALESCE({LAST_PLAYED}, created) < ?",  # created first: an index range, not every open game
                (idle_before, idle_before),
            )
            return cursor.rowcount

        return await self._write(update)

    async def delete_unplayed(self, created_before: float) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                f"DELETE FROM games WHERE state = 'open' AND abandoned = 0 AND {LAST_PLAYED} IS NULL AND created < ?",
                (created_before,),
            )
            return cursor.rowcount

        return await self._write(delete)

    async def opponent_stats(self) -> list[OpponentStats]:
        def query(conn: sqlite3.Connection) -> list[OpponentStats]:
            rows = conn.execute(
                "SELECT opponent, COUNT(*), SUM(winner = 'bot') FROM games"
                " WHERE tag = 'human' AND state = 'over' GROUP BY opponent"
            )
            return [OpponentStats(o, n, w or 0) for o, n, w in rows]

        return await self._read(query)

    async def version_stats(self, tags: tuple[str, ...]) -> list[VersionStats]:
        marks = ", ".join("?" * len(tags))

        def query(conn: sqlite3.Connection) -> list[VersionStats]:
            stats: dict[tuple[str, str, str], VersionStats] = {}
            for family, alias, version, kind, n, correct in conn.execute(
                "SELECT family, alias, version, kind, SUM(predictions), SUM(correct) FROM prediction_stats"
                f" WHERE tag IN ({marks}) GROUP BY 1, 2, 3, 4",
                tags,
            ):
                found = stats.setdefault((family, alias, version), VersionStats(family, alias, version, {}, {}))
                found.predictions[kind], found.correct[kind] = n, correct
            for family, alias, version, n, wins in conn.execute(
                "SELECT family, alias, version, SUM(games), SUM(games * (winner = 'bot')) FROM arm_stats"
                f" WHERE tag IN ({marks}) GROUP BY 1, 2, 3",
                tags,
            ):
                found = stats.get((family, alias, version)) or VersionStats(family, alias, version, {}, {})
                stats[(family, alias, version)] = msgspec.structs.replace(found, games=n, bot_wins=wins)
            return [stats[key] for key in sorted(stats)]

        return await self._read(query)

    async def promotions(self, family: str | None, limit: int) -> list[LedgerEntry]:
        def query(conn: sqlite3.Connection) -> list[LedgerEntry]:
            rows = conn.execute(
                "SELECT id, created, family, decision, alias, from_version, to_version, details FROM promotions"
                " WHERE ? IS NULL OR family = ? ORDER BY created DESC, id DESC LIMIT ?",
                (family, family, limit),
            )
            return [
                LedgerEntry(
                    id=r[0], created=r[1], family=r[2], decision=r[3], alias=r[4], from_version=r[5],
                    to_version=r[6], details=json.loads(r[7]),
                )
                for r in rows
            ]  # fmt: skip

        return await self._read(query)

    async def lifecycle_figures(self) -> LifecycleFigures:
        def query(conn: sqlite3.Connection) -> LifecycleFigures:
            return lifecycle_figures(*(conn.execute(sql).fetchall() for sql in FIGURES_SQL))

        return await self._read(query)

    async def leaderboard(self, per_opponent: int) -> list[LeaderboardRow]:
        def query(conn: sqlite3.Connection) -> list[LeaderboardRow]:
            rows = conn.execute(
                "SELECT opponent, name, wins, games FROM ("
                " SELECT g.opponent, p.name, SUM(g.winner = 'player') AS wins, COUNT(*) AS games,"
                "  ROW_NUMBER() OVER (PARTITION BY g.opponent ORDER BY SUM(g.winner = 'player') DESC,"
                "   COUNT(*) ASC, p.name) AS rank"
                " FROM games g JOIN players p ON p.id = g.player_id"
                " WHERE g.tag = 'human' AND g.state = 'over' GROUP BY g.opponent, p.id"
                ") WHERE rank <= ? ORDER BY opponent, rank",
                (per_opponent,),
            )
            return [LeaderboardRow(*row) for row in rows]

        return await self._read(query)

    async def close(self) -> None:
        while self._jobs:  # what is queued still commits
            await asyncio.sleep(0)
        self._stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
        self._readers.shutdown(wait=True)
        self._writer_conn.close()
        os.close(self._turn)


def _store_rounds(conn: sqlite3.Connection, rounds: list[RoundWrite]) -> None:
    for sql, rows in round_statements(rounds) if rounds else ():
        conn.executemany(sql, rows)


def _load_game(conn: sqlite3.Connection, game_id: str) -> GameRecord | None:
    row = conn.execute(f"SELECT {GAME_COLUMNS} WHERE g.id = ?", (game_id,)).fetchone()
    if row is None:
        return None
    rounds = conn.execute(f"SELECT {ROUND_COLUMNS} WHERE game_id = ? ORDER BY round", (game_id,)).fetchall()
    return game_record(row, rounds)

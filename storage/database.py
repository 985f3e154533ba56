"""Which database: a SQLite file (a Path) or a PostgreSQL server (its postgresql:// URL), and opening it.

The server opens a `Storage` with `open_storage`; the lifecycle and the trainer's reads use a
blocking `Connection` from `connect`, whose queries are written once, with ? placeholders, in the
SQL both backends speak.
"""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from psycopg import pq

from storage import postgres
from storage.sqlite import SQLiteStorage, Storage
from storage.sqlite import connect as sqlite_connect

Database = Path | str  # a SQLite file, or a PostgreSQL URL
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
LIFECYCLE_WRITE, LIFECYCLE_TURN = 2, 3  # advisory locks (second keys under postgres.LOCKS)


def is_postgres(db: Database) -> bool:
    if isinstance(db, Path):
        return False
    if not db.startswith(POSTGRES_SCHEMES):
        raise ValueError(f"not a PostgreSQL URL: {db!r}")
    return True


def exists(db: Database) -> bool:
    """False only for a SQLite file not created yet (a PostgreSQL database is created by its operator)."""
    return is_postgres(db) or Path(db).exists()


def prepare(db: Database) -> None:
    """Create or migrate the database (once, before the processes that share it start)."""
    if is_postgres(db):
        postgres.PostgresStorage.prepare(str(db))
    else:
        SQLiteStorage.prepare(Path(db))


async def open_storage(db: Database, max_bytes: int = 0) -> Storage:
    """The server's asynchronous storage on `db`, migrated; `max_bytes` caps a SQLite file (0: no cap; a
    PostgreSQL server's size is its operator's to bound)."""
    if is_postgres(db):
        return await postgres.PostgresStorage.open(str(db))
    return await asyncio.to_thread(SQLiteStorage, Path(db), max_bytes=max_bytes)


class Rows(Protocol):
    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def close(self) -> None: ...


class Connection(Protocol):
    """A blocking connection to either backend, in autocommit mode unless a locked transaction is open."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def begin_locked(self) -> None:
        """Open a transaction that holds the database's write lock (one writer of the lifecycle at a time)."""

    def commit(self) -> None: ...

    def rollback_open(self) -> None:
        """Roll back the transaction, if one is open."""

    def turn(self) -> AbstractContextManager[None]:
        """Held while one process changes the manifest: the others wait their turn."""
        ...

    def close(self) -> None: ...


class _SQLite:
    def __init__(self, path: Path, readonly: bool) -> None:
        self._conn = sqlite_connect(path, readonly)
        self._path = path

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._conn.execute(sql, params)

    def begin_locked(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback_open(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def turn(self) -> Iterator[None]:
        with Path(f"{self._path}-lifecycle").open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def close(self) -> None:
        self._conn.close()


class _Postgres:
    def __init__(self, url: str) -> None:
        self._conn = postgres.connect(url)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._conn.execute(sql.replace("?", "%s"), params)

    def begin_locked(self) -> None:
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (postgres.LOCKS, LIFECYCLE_WRITE))

    def commit(self) -> None:
        self._conn.execute("COMMIT")

    def rollback_open(self) -> None:
        if self._conn.info.transaction_status != pq.TransactionStatus.IDLE:
            self._conn.execute("ROLLBACK")

    @contextmanager
    def turn(self) -> Iterator[None]:
        self._conn.execute("SELECT pg_advisory_lock(%s, %s)", (postgres.LOCKS, LIFECYCLE_TURN))
        try:
            yield
        finally:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", (postgres.LOCKS, LIFECYCLE_TURN))

    def close(self) -> None:
        self._conn.close()


def connect(db: Database, readonly: bool = False) -> Connection:
    """A blocking connection to `db` (read-only for SQLite with `readonly`)."""
    if is_postgres(db):
        return _Postgres(str(db))
    return _SQLite(Path(db), readonly)

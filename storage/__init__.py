"""The database: schema, migrations, records and every query, for the game server and the trainer alike.

Nothing outside this package writes SQL. The server talks to a `Storage` (asynchronous, group
commit); the trainer and the benchmarks read finished play through `storage.history`. Two
backends: SQLite (embedded, the default) and PostgreSQL (replicas sharing one database),
chosen by `storage.database` from a file path or a postgresql:// URL.
"""

from storage.database import Database, open_storage, prepare
from storage.records import (
    Decision,
    GameRecord,
    LeaderboardRow,
    LedgerEntry,
    LifecycleFigures,
    ModelPrediction,
    OpponentStats,
    RoundRecord,
    VersionStats,
    prediction_counts,
)
from storage.sqlite import SQLiteStorage, Storage, StorageConflict, StorageUnavailable

__all__ = [
    "Database",
    "Decision",
    "GameRecord",
    "LeaderboardRow",
    "LedgerEntry",
    "LifecycleFigures",
    "ModelPrediction",
    "OpponentStats",
    "RoundRecord",
    "SQLiteStorage",
    "Storage",
    "StorageConflict",
    "StorageUnavailable",
    "VersionStats",
    "open_storage",
    "prediction_counts",
    "prepare",
]

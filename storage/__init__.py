"""The database: schema, migrations, records and every query, for the game server and the trainer alike.

Nothing outside this package writes SQL. The server talks to a `Storage` (asynchronous, group
commit); the trainer and the benchmarks read finished play through `storage.history`.
"""

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
)
from storage.sqlite import SQLiteStorage, Storage, StorageConflict, StorageUnavailable

__all__ = [
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
]

"""The model lifecycle's records: version numbers, manifest generations, alias tenures and the promotion ledger.

Processes that train or promote at the same moment take turns: a version number is handed out
inside the database's write lock, so never twice; a manifest change holds a lock of its own
while it reads the newest manifest, applies the change and writes the next generation, so no
update is lost and no generation is written twice. On SQLite the locks are the database's own
and a file lock; on PostgreSQL, advisory locks. Blocking calls: the server runs them off its
event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass

from engine.rules import MOVE_INDEX
from storage.database import Connection, Database, connect, prepare
from storage.rows import unpack_models

Families = dict[str, dict[str, str]]  # family -> alias -> version


@dataclass(frozen=True)
class Tenure:
    """A version's time holding an alias (`ended` is None while it holds it)."""

    family: str
    alias: str
    version: str
    started: float
    ended: float | None
    why: str


@dataclass(frozen=True)
class ArmCounts:
    """The games one version served as one alias: started, finished (abandoned ones left out), won by the bot."""

    started: int
    finished: int
    bot_wins: int


@dataclass(frozen=True)
class ShadowRound:
    """A played round's answer and what each version predicted for it (as any alias)."""

    player_move: int
    probs: dict[str, tuple[float, float, float]]  # version -> P(rock, paper, scissors)


@dataclass(frozen=True)
class Published:
    """What a manifest change wrote: its generation, the families, and whether anything changed."""

    generation: int
    families: Families
    changed: bool


def _number(version: str) -> int | None:
    return int(version[1:]) if version[:1] == "v" and version[1:].isdigit() else None


class Lifecycle:
    """The lifecycle tables of the database `db` (created or migrated on open)."""

    def __init__(self, db: Database) -> None:
        prepare(db)
        self._conn = connect(db)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _locked(self) -> Connection:
        self._conn.begin_locked()
        return self._conn

    def allocate_version(self, family: str, taken: Iterable[str] = ()) -> str:
        """The next version name of `family` ("v<n>"), above every allocated one and every name in `taken`."""
        conn = self._locked()
        try:
            (allocated,) = conn.execute("SELECT MAX(number) FROM model_versions WHERE family = ?", (family,)).fetchone()
            number = max([allocated or 0, *(n for n in map(_number, taken) if n is not None)]) + 1
            conn.execute("INSERT INTO model_versions VALUES (?, ?, ?)", (family, number, time.time()))
            conn.commit()
        finally:
            conn.rollback_open()
        return f"v{number}"

    def publish(
        self,
        read: Callable[[], tuple[int, Families] | None],
        change: Callable[[Families], Families],
        write: Callable[[int, Families], object],
        why: str,
    ) -> Published:
        """Apply `change` to the store's newest manifest and write it as the next generation, one process at a time.

        `read` returns the store's manifest (generation, families), or None when it is missing or broken:
        then the change applies to the last manifest written here. `write` stores a manifest.
        Then the tenures follow the new manifest: an alias whose version changed ends its tenure and
        starts one for the new version, with `why`. A change that leaves the families as they are
        writes nothing (the tenures are still brought in line: a crash between the two is repaired).
        """
        with self._conn.turn():  # the store's write happens inside: the database is never locked while it is slow
            stored = read() or self._newest()
            current: Families = {f: dict(a) for f, a in stored[1].items()} if stored else {}
            new = change({f: dict(a) for f, a in current.items()})
            generation = stored[0] if stored else 0
            if new != current:
                (newest,) = self._conn.execute("SELECT MAX(generation) FROM manifests").fetchone()
                generation = max(newest or 0, generation) + 1
                write(generation, new)
            conn = self._locked()
            try:
                now = time.time()
                if new != current:
                    conn.execute("INSERT INTO manifests VALUES (?, ?, ?)", (generation, json.dumps(new), now))
                self._align_tenures(conn, new, now, why)
                conn.commit()
            finally:
                conn.rollback_open()
        return Published(generation, new, changed=new != current)

    def _newest(self) -> tuple[int, Families] | None:
        """The last manifest written through the lifecycle, if any."""
        row = self._conn.execute(
            "SELECT generation, families FROM manifests ORDER BY generation DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))

    @staticmethod
    def _align_tenures(conn: Connection, families: Families, now: float, why: str) -> None:
        """End the running tenures that `families` no longer has and start the ones it adds."""
        rows = conn.execute("SELECT family, alias, version FROM alias_tenures WHERE ended IS NULL").fetchall()
        running = {(f, a): v for f, a, v in rows}
        wanted = {(f, a): v for f, aliases in families.items() for a, v in aliases.items()}
        for (family, alias), version in running.items():
            if wanted.get((family, alias)) != version:
                conn.execute(
                    "UPDATE alias_tenures SET ended = ? WHERE family = ? AND alias = ? AND ended IS NULL",
                    (now, family, alias),
                )
        for (family, alias), version in wanted.items():
            if running.get((family, alias)) != version:
                conn.execute(
                    "INSERT INTO alias_tenures (family, alias, version, started, why) VALUES (?, ?, ?, ?, ?)",
                    (family, alias, version, now, why),
                )

    def tenures(self, family: str, current_only: bool = False) -> list[Tenure]:
        """The tenures of `family`'s aliases, oldest first (only the running ones with `current_only`)."""
        query = "SELECT family, alias, version, started, ended, why FROM alias_tenures WHERE family = ?"
        if current_only:
            query += " AND ended IS NULL"
        with closing(self._conn.execute(query + " ORDER BY started, id", (family,))) as rows:
            return [Tenure(*row) for row in rows]

    def record_decision(
        self,
        family: str,
        decision: str,
        details: dict[str, object],
        alias: str | None = None,
        from_version: str | None = None,
        to_version: str | None = None,
    ) -> int:
        """Append a decision ("no change" included) to the promotion ledger; returns its id."""
        conn = self._locked()
        try:
            (ledger_id,) = conn.execute(
                "INSERT INTO promotions (created, family, decision, alias, from_version, to_version, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (time.time(), family, decision, alias, from_version, to_version, json.dumps(details)),
            ).fetchone()
            conn.commit()
        finally:
            conn.rollback_open()
        return int(ledger_id)

    def start_training_run(self, command: str) -> int:
        """Record that a training run (`bootstrap`, `train`, `loop`) starts now; returns its id."""
        conn = self._locked()
        try:
            (run_id,) = conn.execute(
                "INSERT INTO training_runs (command, started) VALUES (?, ?) RETURNING id", (command, time.time())
            ).fetchone()
            conn.commit()
        finally:
            conn.rollback_open()
        return int(run_id)

    def finish_training_run(
        self, run_id: int, outcome: str, rows: int | None = None, versions: Families | None = None, detail: str = ""
    ) -> None:
        """Record how run `run_id` ended (success, failure or skipped), with the rows it trained on and the versions
        it made."""
        conn = self._locked()
        try:
            conn.execute(
                "UPDATE training_runs SET finished = ?, outcome = ?, rows = ?, versions = ?, detail = ? WHERE id = ?",
                (time.time(), outcome, rows, json.dumps(versions or {}), detail, run_id),
            )
            conn.commit()
        finally:
            conn.rollback_open()

    def training_runs(self, command: str) -> list[tuple[str | None, str]]:
        """(outcome, detail) of the training runs of `command`, oldest first (outcome None while one runs)."""
        query = "SELECT outcome, detail FROM training_runs WHERE command = ? ORDER BY id"
        with closing(self._conn.execute(query, (command,))) as rows:
            return [(outcome, detail) for outcome, detail in rows]

    def arm(self, family: str, alias: str, version: str, since: float, tags: tuple[str, ...]) -> ArmCounts:
        """The games `version` of `family` served as `alias` that started at `since` or later, tagged one of `tags`."""
        marks = ", ".join("?" * len(tags))
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'over' AND abandoned = 0 THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN state = 'over' AND abandoned = 0 AND winner = 'bot' THEN 1 ELSE 0 END), 0)"
            " FROM games"
            f" WHERE family = ? AND alias = ? AND version = ? AND created >= ? AND tag IN ({marks})",
            (family, alias, version, since, *tags),
        ).fetchone()
        return ArmCounts(int(row[0]), int(row[1]), int(row[2]))

    def shadow_rounds(self, family: str, since: float, tags: tuple[str, ...]) -> list[ShadowRound]:
        """`family`'s rounds played at `since` or later in games tagged one of `tags` (abandoned ones left out),
        oldest first, with every stored prediction by version."""
        marks = ", ".join("?" * len(tags))
        rows = self._conn.execute(
            "SELECT r.player_move, r.models FROM rounds r JOIN games g ON g.id = r.game_id"
            f" WHERE g.family = ? AND g.tag IN ({marks}) AND g.abandoned = 0 AND r.created >= ? ORDER BY r.created",
            (family, *tags, since),
        )
        out = []
        for move, models in rows:
            predictions = unpack_models(models)
            out.append(ShadowRound(MOVE_INDEX[move], {p.version: p.probs for p in predictions.values()}))
        return out

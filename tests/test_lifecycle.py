"""The lifecycle tables (storage/lifecycle.py): version numbers, manifest generations, tenures, the ledger.

The races run in real processes on one real database (a SQLite file, a PostgreSQL server) and one real local
model store.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference.store import LocalStore, read_manifest, stored_manifest, write_manifest
from storage.database import Database, open_storage
from storage.lifecycle import Families, Lifecycle

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
ROUNDS = 40  # manifest changes per process
OPEN_DB = "db = sys.argv[2] if '://' in sys.argv[2] else pathlib.Path(sys.argv[2])\n"  # a URL, or a SQLite file


def _publish(lifecycle: Lifecycle, store: LocalStore, change: dict[str, dict[str, str]], why: str = "test") -> int:
    def apply(families: Families) -> Families:
        for family, aliases in change.items():
            families.setdefault(family, {}).update(aliases)
        return families

    return lifecycle.publish(
        lambda: stored_manifest(store), apply, lambda g, f: write_manifest(store, f, g), why
    ).generation


def _run_all(script: str, *args: str) -> None:
    """Run `script` in WORKERS processes that all begin at the same moment, and wait for them."""
    start = time.time() + 3.0  # every process has started (and imported) by then
    wait = f"import time\ntime.sleep(max(0.0, {start} - time.time()))\n"
    processes = [
        subprocess.Popen([sys.executable, "-c", wait + script, str(i), *args], cwd=ROOT, stderr=subprocess.PIPE)
        for i in range(WORKERS)
    ]
    for p in processes:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()


def test_versions_count_up_past_allocated_and_existing_ones(database: Database) -> None:
    with Lifecycle(database) as lifecycle:
        assert lifecycle.allocate_version("mlp") == "v1"
        assert lifecycle.allocate_version("mlp") == "v2"
        assert lifecycle.allocate_version("xgboost") == "v1"
        assert lifecycle.allocate_version("mlp", ["v1", "v7", "latest"]) == "v8"  # versions already in the store
        assert lifecycle.allocate_version("mlp") == "v9"


def test_processes_allocating_at_once_never_share_a_version(database: Database, tmp_path: Path) -> None:
    Lifecycle(database).close()
    script = (
        "import sys, pathlib\n"
        "from storage.lifecycle import Lifecycle\n"
        f"{OPEN_DB}"
        "with Lifecycle(db) as l:\n"
        "    out = [l.allocate_version('mlp') for _ in range(25)]\n"
        "pathlib.Path(sys.argv[3] + '.' + sys.argv[1]).write_text(' '.join(out))\n"
    )
    _run_all(script, str(database), str(tmp_path / "handed"))
    handed = [v for i in range(WORKERS) for v in (tmp_path / f"handed.{i}").read_text().split()]
    assert sorted(handed, key=lambda v: int(v[1:])) == [f"v{n}" for n in range(1, 25 * WORKERS + 1)]


def test_processes_publishing_at_once_lose_no_update_and_reuse_no_generation(
    database: Database, tmp_path: Path
) -> None:
    db, root = database, tmp_path / "store"
    Lifecycle(db).close()
    script = (
        "import sys, pathlib\n"
        "from inference.store import LocalStore, stored_manifest, write_manifest\n"
        "from storage.lifecycle import Lifecycle\n"
        f"{OPEN_DB}"
        "me, root = sys.argv[1], pathlib.Path(sys.argv[3])\n"
        "store = LocalStore(root)\n"
        "with Lifecycle(db) as l:\n"
        f"    for j in range({ROUNDS}):\n"
        "        def change(f, j=j):\n"
        "            f.setdefault('p' + me, {})[f'a{j}'] = f'v{j}'\n"
        "            return f\n"
        "        l.publish(lambda: stored_manifest(store), change, lambda g, f: write_manifest(store, f, g), 'race')\n"
    )
    _run_all(script, str(db), str(root))
    manifest = read_manifest(LocalStore(root))
    assert manifest is not None
    assert manifest["generation"] == ROUNDS * WORKERS
    assert manifest["families"] == {f"p{i}": {f"a{j}": f"v{j}" for j in range(ROUNDS)} for i in range(WORKERS)}


def test_tenures_follow_the_manifest(database: Database, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with Lifecycle(database) as lifecycle:
        assert _publish(lifecycle, store, {"mlp": {"Production": "v1", "B": "v2"}}, "cold start") == 1
        assert _publish(lifecycle, store, {"mlp": {"B": "v3"}}, "trained") == 2
        assert _publish(lifecycle, store, {"mlp": {"B": "v3"}}, "again") == 2  # no change: nothing written
        running = {(t.alias, t.version, t.why) for t in lifecycle.tenures("mlp", current_only=True)}
        assert running == {("Production", "v1", "cold start"), ("B", "v3", "trained")}
        ended = [t for t in lifecycle.tenures("mlp") if t.ended is not None]
        assert [(t.alias, t.version) for t in ended] == [("B", "v2")]
        assert ended[0].ended is not None and ended[0].ended >= ended[0].started

        write_manifest(store, {"mlp": {"Production": "v4", "B": "v3"}})  # written behind the lifecycle's back
        assert _publish(lifecycle, store, {}, "repair") == 3
        running = {(t.alias, t.version, t.why) for t in lifecycle.tenures("mlp", current_only=True)}
        assert running == {("Production", "v4", "repair"), ("B", "v3", "trained")}


def test_a_broken_store_manifest_is_rebuilt_from_the_last_one_published(database: Database, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    with Lifecycle(database) as lifecycle:
        _publish(lifecycle, store, {"mlp": {"Production": "v1"}, "logistic": {"Production": "v1"}})
        store.write("aliases.json", b'{"generation": 2, "fam')  # truncated
        assert _publish(lifecycle, store, {"mlp": {"B": "v2"}}) == 2
    assert stored_manifest(store) == (2, {"mlp": {"Production": "v1", "B": "v2"}, "logistic": {"Production": "v1"}})


def test_a_failed_store_write_records_nothing(database: Database, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")

    def broken(generation: int, families: Families) -> None:
        raise OSError("store down")

    with Lifecycle(database) as lifecycle:
        _publish(lifecycle, store, {"mlp": {"Production": "v1"}})
        with pytest.raises(OSError, match="store down"):
            lifecycle.publish(lambda: stored_manifest(store), lambda f: {"mlp": {"Production": "v2"}}, broken, "x")
        assert [(t.version, t.ended) for t in lifecycle.tenures("mlp")] == [("v1", None)]
        assert _publish(lifecycle, store, {"mlp": {"Production": "v2"}}) == 2  # the generation was not used up


def test_ledger_rows_are_read_back_newest_first(database: Database) -> None:
    with Lifecycle(database) as lifecycle:
        first = lifecycle.record_decision("mlp", "keep_collecting", {"games": [10, 12]})
        second = lifecycle.record_decision("mlp", "promote", {"p_value": 0.01}, "Production", "v1", "v2")
    assert second > first

    async def read() -> list[tuple[int, str, str | None, dict[str, object]]]:
        storage = await open_storage(database)
        try:
            return [(e.id, e.decision, e.to_version, e.details) for e in await storage.promotions("mlp", 10)]
        finally:
            await storage.close()

    assert asyncio.run(read()) == [
        (second, "promote", "v2", {"p_value": 0.01}),
        (first, "keep_collecting", None, {"games": [10, 12]}),
    ]

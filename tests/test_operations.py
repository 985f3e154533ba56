"""What operators see of the model lifecycle: training runs recorded by the trainer, the lifecycle's metrics read
from the database (storage, /metrics of a real server), and the trainer's window, simulation cache and memory budget.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, ServerProcess
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.rules import round_values
from inference.settings import Settings
from inference.store import LocalStore, read_manifest
from server.metrics import LifecycleCollector
from storage import Decision, GameRecord, LifecycleFigures, RoundRecord, SQLiteStorage
from storage.lifecycle import Lifecycle
from trainer.__main__ import Steps, _histories
from trainer.budget import MemoryBudget, MemoryBudgetExceeded
from trainer.coldstart import cached_simulation, encode, simulated_histories

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
DETAILS: dict[str, object] = {"e_better": 3.5, "e_futile": 0.25, "threshold": 20.0, "srm_p": 0.42, "b_games": 12}


def _figures(db: Path) -> LifecycleFigures:
    async def read() -> LifecycleFigures:
        storage = SQLiteStorage(db)
        try:
            return await storage.lifecycle_figures()
        finally:
            await storage.close()

    return asyncio.run(read())


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _text(figures: LifecycleFigures) -> str:
    collector = LifecycleCollector()
    collector.update(figures, 0.0)
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def _record(db: Path) -> None:
    """Three training runs (a success, a failure, a skip) and four ledger rows of two families."""
    with Lifecycle(db) as lifecycle:
        ok = lifecycle.start_training_run("train")
        lifecycle.finish_training_run(ok, "success", 1234, {"mlp": {"shadow1": "v5"}})
        failed = lifecycle.start_training_run("loop")
        lifecycle.finish_training_run(failed, "failure", detail="MemoryBudgetExceeded: over")
        skipped = lifecycle.start_training_run("loop")
        lifecycle.finish_training_run(skipped, "skipped", detail="12 new rounds")
        lifecycle.start_training_run("train")  # still running: not counted
        lifecycle.record_decision("mlp", "start", {"e_better": 1.0, "e_futile": 1.0, "threshold": 20.0})
        lifecycle.record_decision("mlp", "continue", {"e_better": 1.5, "e_futile": 2.0, "threshold": 20.0})
        lifecycle.record_decision("mlp", "continue", DETAILS)
        lifecycle.record_decision("logistic", "reject", {"e_better": 0.1, "e_futile": 25.0, "threshold": 10.0})


def test_training_runs_and_the_ledger_become_lifecycle_figures(tmp_path: Path) -> None:
    db = tmp_path / "rpsquest.db"
    before = time.time()
    _record(db)
    figures = _figures(db)
    assert figures.training_runs == {"success": 1, "failure": 1, "skipped": 1}
    assert figures.last_success is not None and before <= figures.last_success <= time.time()
    assert figures.last_duration is not None and 0 <= figures.last_duration < 60  # the failure, the last that trained
    assert figures.decisions == [("logistic", "reject", 1), ("mlp", "continue", 2), ("mlp", "start", 1)]
    assert figures.latest["mlp"] == DETAILS  # the family's last row
    assert figures.latest["logistic"]["e_futile"] == 25.0


def test_an_empty_database_has_no_figures_but_every_counter_at_zero(tmp_path: Path) -> None:
    figures = _figures(tmp_path / "rpsquest.db")
    assert figures == LifecycleFigures()
    samples = _samples(_text(figures))
    assert samples[("rpsquest_training_runs_total", frozenset({("outcome", "failure")}))] == 0
    assert (
        samples[("rpsquest_promotion_decisions_total", frozenset({("family", "xgboost"), ("outcome", "promote")}))] == 0
    )
    assert not any(name.startswith("rpsquest_training_last") for name, _ in samples)
    assert not any(name == "rpsquest_promotion_e_value" for name, _ in samples)


def test_the_server_exports_the_lifecycle_figures_at_metrics(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory()
    _record(server.data_dir / "rpsquest.db")  # written by "another process", as the trainer does
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as response:
        samples = _samples(response.read().decode())

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("rpsquest_promotion_decisions_total", family="mlp", outcome="continue") == 2
    assert value("rpsquest_promotion_decisions_total", family="logistic", outcome="reject") == 1
    assert value("rpsquest_promotion_decisions_total", family="xgboost", outcome="promote") == 0
    assert value("rpsquest_promotion_e_value", family="mlp", test="better") == 3.5
    assert value("rpsquest_promotion_e_value", family="mlp", test="futile") == 0.25
    assert value("rpsquest_promotion_threshold", family="logistic") == 10.0
    assert value("rpsquest_promotion_srm_p_value", family="mlp") == 0.42
    assert ("rpsquest_promotion_srm_p_value", frozenset({("family", "logistic")})) not in samples  # none in its row
    assert value("rpsquest_training_runs_total", outcome="success") == 1
    assert value("rpsquest_training_runs_total", outcome="skipped") == 1
    assert time.time() - 600 < value("rpsquest_training_last_success_timestamp_seconds") <= time.time()
    assert 0 <= value("rpsquest_training_last_duration_seconds") < 60
    assert any(name == "rpsquest_http_requests_total" for name, _ in samples)  # the process's own metrics too


# -- the trainer ---------------------------------------------------------------------------------


async def _store_game(db: Path, game_id: str, when: float) -> None:
    """A one-round human game played at `when`."""
    storage = SQLiteStorage(db)
    try:
        decision = Decision(1, 0, "ab" * 16, "opening", (1 / 3, 1 / 3, 1 / 3), (0.0, 0.0, 0.0), b"")
        record = GameRecord(
            id=game_id, opponent="brian", family="mlp", alias="Production", version="v1", opening="mirror",
            tag="human", player=None, token_hash="f" * 64, created=when, updated=when, pending=decision,
        )  # fmt: skip
        await storage.create_game(record)
        await storage.record_round(record, RoundRecord(decision, round_values(game_id, 1), 0, 0, 0, when), None)
    finally:
        await storage.close()


def test_a_cycle_reads_the_games_of_its_window_only(tmp_path: Path) -> None:
    db = tmp_path / "rpsquest.db"
    asyncio.run(_store_game(db, "old", time.time() - 10 * 86400))
    asyncio.run(_store_game(db, "new", time.time() - 3600))

    def stored(days: float) -> list[str]:
        histories = _histories(Settings(data_dir=tmp_path, training_window_days=days), 10, 0, Steps())
        return sorted(h.key for h in histories if h.source == "human")

    assert stored(7) == ["new"]
    assert stored(30) == ["new", "old"]
    assert stored(0) == ["new", "old"]  # 0: every stored game


def test_the_cold_start_simulation_is_played_once_and_reused(tmp_path: Path) -> None:
    first = cached_simulation(tmp_path, 20, 3)
    [kept] = tmp_path.glob("coldstart-20-3-*.msgpack")
    assert first == simulated_histories(20, 3)
    kept.write_bytes(encode(first[:5]))  # were the games played again, all 20 would come back
    assert cached_simulation(tmp_path, 20, 3) == first[:5]
    kept.write_bytes(b"\xc1 damaged")
    assert cached_simulation(tmp_path, 20, 3) == first  # a damaged file is played again
    cached_simulation(tmp_path, 20, 4)
    assert [p.name.split("-")[2] for p in tmp_path.glob("coldstart-*")] == ["4"]  # another seed replaces it


def _data_mib() -> int:
    """The process's data segment now (VmData), in MiB."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmData:")[1].split()[0]) // 1024


def test_the_memory_budget_refuses_an_allocation_over_it_during_a_step() -> None:
    with MemoryBudget(1 << 20).step("a step"):  # a terabyte: nothing happens
        np.ones(64 << 20, dtype=np.uint8)
    budget = MemoryBudget(_data_mib() + 64)
    reached = False
    refused = pytest.raises(MemoryBudgetExceeded, match=r"during a big step: an allocation went over the budget of")
    with refused, budget.step("a big step"):
        np.ones(512 << 20, dtype=np.uint8)  # 512 MiB: refused at once, not after it was made
        reached = True
    assert not reached
    with pytest.raises(MemoryBudgetExceeded, match="during torch's step"), budget.step("torch's step"):
        torch.ones(512 << 20, dtype=torch.uint8)  # torch says RuntimeError for it
    with pytest.raises(ValueError, match="not about memory"), budget.step("another step"):
        raise ValueError("not about memory")
    assert np.ones(512 << 20, dtype=np.uint8).size == 512 << 20  # the cap is lifted when the step ends


def test_a_refused_allocations_error_is_read_with_the_cap_lifted() -> None:
    """numpy's out-of-memory error builds its message when it is read: under the cap that can fail as well."""
    caps: list[int] = []

    class Refused(RuntimeError):
        def __str__(self) -> str:
            caps.append(resource.getrlimit(resource.RLIMIT_DATA)[0])
            return "Cannot allocate memory"

    before = resource.getrlimit(resource.RLIMIT_DATA)[0]
    with pytest.raises(MemoryBudgetExceeded, match="during a step"), MemoryBudget(1 << 20).step("a step"):
        raise Refused
    assert caps and set(caps) == {before}


def test_the_memory_budget_stops_a_run_whose_peak_was_over_it() -> None:
    over = pytest.raises(MemoryBudgetExceeded, match=r"after a step: it used .* MiB, over the budget of 1 MiB")
    with over, MemoryBudget(1).step("a step"):
        pass


def test_train_refuses_to_exceed_its_memory_budget_and_records_the_failure(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--data-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "RPSQUEST_TRAINER_MEMORY_MB": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "over the budget of 1 MiB (RPSQUEST_TRAINER_MEMORY_MB)" in done.stderr
    assert read_manifest(LocalStore(tmp_path / "store")) is None  # stopped before any model was written
    figures = _figures(tmp_path / "rpsquest.db")
    assert figures.training_runs == {"failure": 1} and figures.last_success is None
    assert list((tmp_path / "cache").glob("coldstart-3000-0-*.msgpack"))  # kept for the next cycle

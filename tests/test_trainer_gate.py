"""The data gate of `rpsquest train --min-rounds N` (the cluster's training CronJob): train when the store has
no models yet or enough new rounds of counted games arrived since the last training started."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_storage import advance, new_game, run

from inference.settings import Settings
from inference.store import LocalStore, write_manifest
from storage.database import open_storage, prepare
from storage.history import last_trained
from storage.lifecycle import Lifecycle
from trainer.__main__ import enough_data
from trainer.__main__ import main as trainer_main


def stored_rounds(settings: Settings, tag: str, count: int, at: float) -> None:
    async def play() -> None:
        storage = await open_storage(settings.database())
        try:
            game = new_game(f"gate{tag}{at:.0f}", tag=tag, created=at)
            await storage.create_game(game)
            for n in range(count):
                await advance(storage, game, n % 3, at + n, None)
        finally:
            await storage.close()

    run(play())


def test_an_empty_store_always_trains(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert enough_data(settings, LocalStore(settings.store_root()), 2000)


def test_the_gate_counts_rounds_of_counted_games_since_the_last_training(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stats_tags=("human",))
    store = LocalStore(settings.store_root())
    write_manifest(store, {"mlp": {"Production": "v1"}})
    assert not enough_data(settings, store, 1)  # no database yet
    stored_rounds(settings, "human", 3, at=1_000.0)
    stored_rounds(settings, "loadtest", 5, at=1_000.0)  # never counted
    assert enough_data(settings, store, 3)
    assert not enough_data(settings, store, 4)
    assert enough_data(settings, store, 0)
    with Lifecycle(settings.database()) as lifecycle:  # a training run that failed does not move the gate
        lifecycle.finish_training_run(lifecycle.start_training_run("train"), "failure")
    assert enough_data(settings, store, 3)
    with Lifecycle(settings.database()) as lifecycle:
        lifecycle.finish_training_run(lifecycle.start_training_run("loop"), "success")
    assert not enough_data(settings, store, 1)  # every round came before it
    stored_rounds(settings, "human", 2, at=time.time() + 100)
    assert enough_data(settings, store, 2)
    assert not enough_data(settings, store, 3)


def test_a_gated_run_skips_training_and_still_runs_the_promotion_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("trainer.__main__._tracker", lambda settings: None)  # MLflow is not what this checks
    store = LocalStore(tmp_path / "store")
    write_manifest(store, {"mlp": {"Production": "v1"}})
    prepare(tmp_path / "rpsquest.db")
    assert trainer_main(["train", "--data-dir", str(tmp_path), "--min-rounds", "10", "--family", "mlp"]) == 0
    out = capsys.readouterr().out
    assert "0 new rounds, fewer than 10: no training this time" in out
    assert "promotion mlp:" in out
    assert last_trained(Settings(data_dir=tmp_path).database()) == 0.0  # no training run succeeded

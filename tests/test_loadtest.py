"""The load tester counts and classifies right (small runs; no timing assertions)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, ServerProcess, free_port, recorded_collections
from websockets.asyncio.server import ServerConnection, serve

from clients.loadtest import GeneratorFailed, LoadReport, Plan, _in_processes, format_report, generate, loadtest, merge
from engine.fairplay import commitment
from engine.rules import MOVES, round_values
from server.cli import main


def test_counts_games_and_rounds_exactly(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "0"})
    report = asyncio.run(loadtest(server.ws_url, 4, games=10, pace="max", seed=3))
    summary = report.summary()
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        games = db.execute("SELECT tag, state, COUNT(*) FROM games GROUP BY 1, 2").fetchall()
        rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    assert games == [("loadtest", "over", 10)]  # tagged, so never in A/B statistics
    assert summary["games"] == 10 and summary["rounds"] == rounds
    assert len(report.latencies) == rounds
    assert summary["sessions_opened"] == 4 and summary["sessions_failed"] == 0
    assert summary["errors"] == {} and summary["protocol_violations"] == {}
    assert (
        0 < summary["move_latency_ms"]["p50"] <= summary["move_latency_ms"]["p99"] <= summary["move_latency_ms"]["max"]
    )
    assert 0 < summary["generator_cpu_percent"] <= 100 * (os.cpu_count() or 1)


def test_the_generator_runs_without_collections_and_collects_in_full_after(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "0"})
    assert gc.isenabled()
    gc.collect()  # the counts start from nothing: only the run can reach CPython's trigger
    with recorded_collections() as seen:
        report = asyncio.run(loadtest(server.ws_url, 2, duration=1.0, pace="max", seed=7))
    assert report.rounds > 100  # enough allocation for CPython's own trigger to collect many times
    assert seen[:1] == [2]  # none during the run: the first is the full collection after it
    assert gc.isenabled()


def test_sessions_spread_over_every_url(server_factory: Callable[..., ServerProcess]) -> None:
    replicas = [server_factory({"RPSQUEST_RATE_LIMIT": "0"}) for _ in range(2)]
    summary = asyncio.run(loadtest([r.ws_url for r in replicas], 4, duration=1.5, pace="max", seed=6)).summary()
    stored = []
    for replica in replicas:
        with closing(sqlite3.connect(replica.data_dir / "rpsquest.db")) as db:
            stored.append(db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0])
    assert all(n > 0 for n in stored) and sum(stored) == summary["rounds"]  # two sessions played on each
    assert summary["sessions_opened"] == 4 and summary["protocol_violations"] == {}


def test_the_report_says_when_the_generator_itself_was_the_limit() -> None:
    def report(cpu_seconds: float) -> str:
        run = LoadReport(sessions=1, started=100.0, finished=110.0, cpu_started=5.0, cpu_finished=5.0 + cpu_seconds)
        return format_report(run.summary())

    busy, calm = report(9.5), report(4.0)
    assert "generator  95.0 % of one core: near its limit" in busy
    assert "generator  40.0 % of one core" in calm and "near its limit" not in calm


def test_classifies_errors_by_code(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "3"})
    report = asyncio.run(loadtest(server.ws_url, 2, duration=2.5, pace="max", seed=4))
    summary = report.summary()
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    assert summary["protocol_violations"] == {}, summary
    assert summary["errors"].get("rate_limited", 0) > 0, summary
    assert set(summary["errors"]) == {"rate_limited"}, summary
    assert summary["rounds"] == rounds, (rounds, summary)  # refused moves are errors, not rounds


def test_unreachable_server_counts_failed_sessions() -> None:
    url = f"ws://127.0.0.1:{free_port()}/ws"
    summary = asyncio.run(loadtest(url, 3, games=3)).summary()
    assert summary["sessions_failed"] == 3 and summary["sessions_opened"] == 0
    assert summary["rounds"] == 0 and sum(summary["errors"].values()) == 3


async def _cheating_server(connection: ServerConnection) -> None:
    """Commits to rock every round, then reveals paper: the load tester must notice."""
    await connection.send(json.dumps({"type": "welcome", "protocol": 1, "opponents": []}))
    game_id, nonce = "cheat", "00" * 16

    def open_round(n: int) -> dict[str, Any]:
        values = dict(zip(MOVES, (v / 10 for v in round_values(game_id, n)), strict=True))
        return {"round": n, "values": values, "commit": commitment(game_id, n, 0, nonce)}

    async for raw in connection:
        message = json.loads(raw)
        if message["type"] == "start":
            await connection.send(json.dumps({
                "type": "game", "game_id": game_id, "token": "t", "opponent": "brian", "target": 10.0,
                "score": {"player": 0.0, "bot": 0.0}, "over": False, "winner": None, "history": [],
                "next": open_round(1),
            }))  # fmt: skip
        else:
            await connection.send(json.dumps({
                "type": "result", "game_id": game_id, "round": message["round"], "player_move": message["move"],
                "bot_move": "paper", "outcome": "draw", "points": {"player": 0.5, "bot": 0.5},
                "score": {"player": 0.5, "bot": 0.5}, "nonce": nonce, "over": False, "winner": None,
                "next": open_round(message["round"] + 1),
            }))  # fmt: skip


def _against(handler: Callable[[ServerConnection], Awaitable[None]]) -> dict[str, Any]:
    """The summary of 2 sessions playing 2 games at max pace against a fake server run by `handler`."""

    async def scenario() -> dict[str, Any]:
        port = free_port()
        async with serve(handler, "127.0.0.1", port):
            report = await loadtest(f"ws://127.0.0.1:{port}/", 2, games=2, pace="max")
        return report.summary()

    return asyncio.run(scenario())


def test_protocol_violations_are_detected() -> None:
    summary = _against(_cheating_server)
    assert sum(summary["protocol_violations"].values()) == 2  # one per game: each stops at the first lie
    assert "round 1" in summary["protocol_violations"]
    assert summary["rounds"] == 0


async def _refusing_server(connection: ServerConnection) -> None:
    """Refuses the first start of a connection as rate limited, the next as an unknown opponent."""
    await connection.send(json.dumps({"type": "welcome", "protocol": 1, "opponents": []}))
    codes = iter(("rate_limited", "unknown_opponent"))
    async for _ in connection:
        await connection.send(json.dumps({"type": "error", "code": next(codes), "message": "no"}))


def test_refused_starts_are_errors_by_code_and_rate_limits_are_retried() -> None:
    summary = _against(_refusing_server)
    assert summary["errors"] == {"rate_limited": 2, "unknown_opponent": 2}  # each session retried once, then gave up
    assert summary["protocol_violations"] == {}
    assert summary["games"] == summary["rounds"] == 0


def test_cli_writes_a_json_report(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "0"})
    out = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "loadtest", "--url", server.ws_url, "--sessions", "2", "--games", "3",
         "--pace", "max", "--opponent", "logan", "--processes", "2", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["games"] == 3 and report["sessions_opened"] == 2 and report["processes"] == 2
    assert len(report["generator_cpu_percent_per_process"]) == 2 and "in 2 processes" in done.stdout
    assert set(report["move_latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert "rounds/s" in done.stdout and "violations {}" in done.stdout
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        assert db.execute("SELECT DISTINCT opponent FROM games").fetchall() == [("logan",)]


def test_two_processes_play_the_run_and_merge_their_reports(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "0"})
    report = generate(server.ws_url, 4, processes=2, games=11, pace="max", seed=3)
    summary = report.summary()
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        games = db.execute("SELECT tag, state, COUNT(*) FROM games GROUP BY 1, 2").fetchall()
        rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    assert games == [("loadtest", "over", 11)]  # 6 + 5: the games are shared out, none lost or doubled
    assert summary["games"] == 11 and summary["rounds"] == rounds == len(report.latencies)
    assert summary["processes"] == 2 and len(summary["generator_cpu_percent_per_process"]) == 2
    assert all(c > 0 for c in summary["generator_cpu_percent_per_process"])
    assert summary["sessions"] == summary["sessions_opened"] == 4 and summary["sessions_failed"] == 0
    assert summary["errors"] == {} and summary["protocol_violations"] == {}
    assert "in 2 processes" in format_report(summary)


def test_merged_percentiles_are_of_the_pooled_samples() -> None:
    fast = LoadReport(sessions=2, opened=2, games=3, rounds=4, latencies=[0.1, 0.001, 0.001, 0.001], ramped=1,
                      errors=Counter(rate_limited=2), started=0.0, finished=10.0, cpu_finished=5.0)  # fmt: skip
    slow = LoadReport(sessions=1, opened=1, failed=1, games=1, rounds=2, latencies=[0.2, 0.009], ramped=1,
                      errors=Counter(rate_limited=1, unavailable=1), violations=Counter({"round 1": 1}),
                      started=0.5, finished=10.5, cpu_finished=9.5)  # fmt: skip
    summary = merge([fast, slow], started=0.0, finished=11.0, cpu_seconds=16.5).summary()
    assert (summary["sessions"], summary["sessions_opened"], summary["sessions_failed"]) == (3, 3, 1)
    assert (summary["games"], summary["rounds"]) == (4, 6)
    assert summary["errors"] == {"rate_limited": 3, "unavailable": 1}
    assert summary["protocol_violations"] == {"round 1": 1}
    pooled = np.asarray([0.001, 0.001, 0.001, 0.009]) * 1000  # after the ramp: the first sample of each is not
    assert summary["move_latency_ms_after_ramp"]["p50"] == round(float(np.percentile(pooled, 50)), 3) == 1.0
    assert summary["move_latency_ms"]["max"] == 200.0
    assert summary["generator_cpu_percent"] == 150.0  # 16.5 s of CPU in 11 s
    assert summary["generator_cpu_percent_per_process"] == [50.0, 95.0] and summary["processes"] == 2
    shown = format_report(summary)
    assert "generator  150.0 % of one core in 2 processes (50.0, 95.0 % each): near its limit" in shown


def test_errors_of_every_process_reach_the_report(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "3"})
    summary = generate(server.ws_url, 4, processes=2, duration=2.5, pace="max", seed=4).summary()
    with closing(sqlite3.connect(server.data_dir / "rpsquest.db")) as db:
        rounds = db.execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    assert set(summary["errors"]) == {"rate_limited"} and summary["protocol_violations"] == {}, summary
    assert summary["rounds"] == rounds
    unreachable = generate(f"ws://127.0.0.1:{free_port()}/ws", 3, processes=3, games=3).summary()
    assert unreachable["sessions_failed"] == 3 and sum(unreachable["errors"].values()) == 3


def test_a_generator_process_that_dies_fails_the_run() -> None:
    broken = Plan(("ws://127.0.0.1:9/ws",), 0, range(1), None, 1, 1.0, "max", ("logan",), 0, 0.0)  # ramp / 0 sessions
    with pytest.raises(GeneratorFailed, match="generator process 1 exited with status 1"):
        _in_processes([Plan(("ws://127.0.0.1:9/ws",), 1, range(0), None, 0, 0.0, "max", ("logan",), 0, 0.0), broken],
                      None)  # fmt: skip


@pytest.mark.parametrize(
    ("processes", "message"),
    [("0", "must be a whole number of at least 1, not '0'"), ("two", "at least 1, not 'two'"),
     ("3", "--processes 3 is more than --sessions 2")],
)  # fmt: skip
def test_bad_process_counts_are_refused(processes: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["loadtest", "--url", "ws://127.0.0.1:9/ws", "--sessions", "2", "--games", "1", "--processes", processes])
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("processes", [0, 3])
def test_generate_refuses_a_process_count_out_of_range(processes: int) -> None:
    with pytest.raises(ValueError, match=f"between 1 and the number of sessions \\(2\\), not {processes}"):
        generate("ws://127.0.0.1:9/ws", 2, processes=processes, games=1)

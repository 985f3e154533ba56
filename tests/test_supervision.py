"""Process supervision: `rpsquest up` ends its trainer however it is stopped, starts it again when it dies, and one
server holds a data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, ServerProcess, free_port

from server.supervisor import Backoff, Supervisor, describe_exit
from storage.database import prepare
from storage.lifecycle import Lifecycle


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live process, None once it has ended (a zombie has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] == "Z" else (pid, fields[19])


def _trainer_or_none(up: ServerProcess) -> int | None:
    """The pid of the `python -m trainer loop` that `up` runs now, if any."""
    assert up.process is not None
    pid = up.process.pid
    children = " ".join(p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/children")).split()
    for child in children:
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"trainer" in argv and b"loop" in argv and _identity(int(child)) is not None:
            return int(child)
    return None


def _trainer_of(up: ServerProcess) -> int:
    """The pid of the `python -m trainer loop` that `up` started."""
    if (pid := _trainer_or_none(up)) is None:
        raise AssertionError("up runs no training loop")
    return pid


@pytest.fixture
def up(tmp_path: Path, trained_store: Path) -> Iterator[ServerProcess]:
    """`rpsquest up` with the session's trained models (so no cold start)."""
    server = ServerProcess(tmp_path / "data", store=trained_store, command="up")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_up_stops_its_trainer(up: ServerProcess, sig: signal.Signals) -> None:
    trainer = _trainer_of(up)
    identity = _identity(trainer)
    assert identity is not None
    assert up.process is not None
    try:
        up.process.send_signal(sig)
        returncode = up.process.wait(timeout=60)
        assert _identity(trainer) != identity, "the trainer outlived up"
        assert returncode == 0
    finally:
        if _identity(trainer) == identity:
            os.kill(trainer, signal.SIGKILL)


def test_second_server_on_a_data_dir_refuses(up: ServerProcess) -> None:
    assert up.process is not None
    for command in ("up", "serve"):
        argv = [sys.executable, "-m", "server.cli", command, "--data-dir", str(up.data_dir), "--port", str(free_port())]
        second = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"in use by another rpsquest up or serve (pid {up.process.pid})" in second.stderr
    assert up.process.poll() is None
    _trainer_of(up)  # the first one still runs its training loop


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_run() -> None:
    backoff = Backoff(first=5.0, cap=300.0, reset_after=600.0)
    assert [backoff.next_delay(1.0) for _ in range(9)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff.next_delay(600.0) == 5.0
    assert backoff.next_delay(599.0) == 10.0


def test_an_exit_is_described_with_its_signal_and_last_stderr_line() -> None:
    assert describe_exit(-9, "") == "trainer exited with -9 (SIGKILL)"
    assert describe_exit(1, "RuntimeError: boom") == "trainer exited with 1: RuntimeError: boom"


def _restarts(db: Path) -> list[tuple[str | None, str]]:
    """The training runs `up` recorded: one per exit of its trainer."""
    with Lifecycle(db) as lifecycle:
        return lifecycle.training_runs("up")


def test_supervisor_restarts_a_failing_child_until_a_settings_error(tmp_path: Path) -> None:
    """A child that fails twice (exit 1, with a reason on stderr) and then hits a settings error (exit 2)."""
    db = tmp_path / "rpsquest.db"
    prepare(db)
    counter = tmp_path / "starts"
    script = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "print(f'RuntimeError: start {n}', file=sys.stderr)\n"
        "sys.exit(1 if n < 2 else 2)\n"
    )
    supervisor = Supervisor([sys.executable, "-c", script], db, Backoff(first=0.01, cap=0.02, reset_after=60.0))
    supervisor.start()
    supervisor._thread.join(timeout=60)
    assert not supervisor._thread.is_alive(), "the supervisor restarted a child that exited with a settings error"
    supervisor.stop()
    assert counter.read_text() == "xxx"
    assert _restarts(db) == [
        ("failure", "trainer exited with 1: RuntimeError: start 0; restarting in 0 s"),
        ("failure", "trainer exited with 1: RuntimeError: start 1; restarting in 0 s"),
        ("failure", "trainer exited with 2: RuntimeError: start 2; not restarting (a settings or data error)"),
    ]


def _metric(up: ServerProcess, line_start: str) -> float:
    with urllib.request.urlopen(up.http_url + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"/metrics has no {line_start}")


def test_up_restarts_a_killed_trainer(up: ServerProcess) -> None:
    """kill -9 of the training loop: `up` logs why, records a failed run (seen in /metrics) and starts a new one."""
    trainer = _trainer_of(up)
    os.kill(trainer, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while (restarted := _trainer_or_none(up)) in (None, trainer):
        assert time.monotonic() < deadline, "up did not restart its trainer: " + up.log.read_text()[-2000:]
        time.sleep(0.2)
    assert up.process is not None and up.process.poll() is None
    assert _restarts(up.data_dir / "rpsquest.db") == [
        ("failure", "trainer exited with -9 (SIGKILL); restarting in 5 s")
    ]
    assert "trainer exited with -9 (SIGKILL); restarting in 5 s" in up.log.read_text()
    assert _metric(up, 'rpsquest_training_runs_total{outcome="failure"}') == 1.0
    identity = _identity(restarted)
    up.process.send_signal(signal.SIGTERM)  # the restarted trainer still ends with up
    assert up.process.wait(timeout=60) == 0
    assert _identity(restarted) != identity, "the restarted trainer outlived up"

"""Process supervision: `rpsquest up` ends its trainer however it is stopped, and one server holds a data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, ServerProcess, free_port


def _identity(pid: int) -> tuple[int, str] | None:
    """(pid, start time) of a live process, None once it has ended (a zombie has ended)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    return None if fields[0] == "Z" else (pid, fields[19])


def _trainer_of(up: ServerProcess) -> int:
    """The pid of the `python -m trainer loop` that `up` started."""
    assert up.process is not None
    pid = up.process.pid
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"trainer" in argv and b"loop" in argv:
            return int(child)
    raise AssertionError("up runs no training loop")


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

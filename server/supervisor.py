"""`rpsquest up` keeps its training loop running: a trainer that exits is started again after a back-off.

Backoff is the pure schedule; Supervisor is its thin shell around the child process, on a thread of its own
(the main thread serves). Each unexpected exit is one log line and one failed training run in the database
(command `up`), which /metrics exports as `rpsquest_training_runs_total{outcome="failure"}`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

from storage.database import Database
from storage.lifecycle import Lifecycle

FIRST_DELAY = 5.0  # seconds before the first restart
MAX_DELAY = 300.0  # the delay doubles up to this
RESET_AFTER = 600.0  # a trainer that ran this long before exiting starts the schedule again
GIVE_UP = 2  # the trainer's exit status for a settings or data error: starting it again would fail the same way

log = logging.getLogger("rpsquest.supervisor")


class Backoff:
    """Delays before restarts: `first` seconds, doubling up to `cap`; back to `first` after a run of `reset_after`."""

    def __init__(self, first: float = FIRST_DELAY, cap: float = MAX_DELAY, reset_after: float = RESET_AFTER) -> None:
        self.first, self.cap, self.reset_after = first, cap, reset_after
        self.upcoming = first

    def next_delay(self, ran_for: float) -> float:
        """The delay before the next start, for a process that ran `ran_for` seconds before it exited."""
        if ran_for >= self.reset_after:
            self.upcoming = self.first
        delay = self.upcoming
        self.upcoming = min(self.upcoming * 2.0, self.cap)
        return delay


def describe_exit(returncode: int, last_line: str) -> str:
    """`trainer exited with N`, the signal's name when a signal ended it, and its last stderr line if any."""
    text = f"trainer exited with {returncode}"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            text += f" ({signal.Signals(-returncode).name})"
    return f"{text}: {last_line}" if last_line else text


def _forward(stream: IO[bytes], last: list[str]) -> None:
    """Copy the child's stderr to ours, keeping its last non-blank line in `last[0]`."""
    for raw in stream:
        sys.stderr.buffer.write(raw)
        sys.stderr.buffer.flush()
        if line := raw.decode(errors="replace").strip():
            last[0] = line[-500:]


class Supervisor:
    """Runs `argv` until stop(), starting it again after each exit but a settings or data error (status 2)."""

    def __init__(
        self, argv: Sequence[str], database: Database, backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.argv = list(argv)
        self.database = database
        self.backoff = backoff or Backoff()
        self.clock = clock
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # start and stop() never cross: a child started is a child stopped
        self._child: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="trainer-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the child (SIGTERM, then wait for it) and stop starting new ones."""
        with self._lock:
            self._stopping.set()
            if self._child is not None and self._child.poll() is None:
                self._child.terminate()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                started = self.clock()
                # A session of its own: a terminal's Ctrl-C reaches the trainer only through `up`.
                child = subprocess.Popen(self.argv, stderr=subprocess.PIPE, start_new_session=True)
                self._child = child
            assert child.stderr is not None
            last = [""]
            reader = threading.Thread(target=_forward, args=(child.stderr, last), daemon=True)
            reader.start()
            returncode = child.wait()
            reader.join(timeout=5.0)
            if self._stopping.is_set():
                return
            why = describe_exit(returncode, last[0])
            if returncode == GIVE_UP:
                self._record(f"{why}; not restarting (a settings or data error)")
                log.error("%s; not restarting (a settings or data error)", why)
                return
            delay = self.backoff.next_delay(self.clock() - started)
            self._record(f"{why}; restarting in {delay:.0f} s")
            log.warning("%s; restarting in %.0f s", why, delay)
            if self._stopping.wait(delay):
                return

    def _record(self, detail: str) -> None:
        """A failed training run of command `up`; a database that cannot take it is logged, not fatal."""
        try:
            with Lifecycle(self.database) as lifecycle:
                lifecycle.finish_training_run(lifecycle.start_training_run("up"), "failure", detail=detail[:2000])
        except Exception as exc:  # the supervision goes on without the record
            log.error("could not record the trainer's exit: %s: %s", type(exc).__name__, exc)

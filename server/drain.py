"""Draining on SIGTERM: start no new games, let the open rounds of games in play be played, then exit.

A Kubernetes pod being stopped leaves the Service, then gets SIGTERM (charts/rps-quest). uvicorn on its own
would close its listener and every WebSocket (1012) at once. Instead, from SIGTERM on:

- /readyz answers 503 {"status": "draining"} and `start` answers `unavailable`;
- moves and resumes are answered as before;
- once no message is being answered and every game in play on this process's connections has had its open
  round played (or its connection closed), or RPSQUEST_DRAIN_TIMEOUT seconds have passed, uvicorn's own
  graceful shutdown runs: it closes the WebSockets with 1012 (service restart) and the process exits.

Every answered round was committed before it was answered (the storage rule), so a player whose connection
closes resumes the game on another server with its token. `Drain` holds the decisions (no I/O); the server's
WebSocket handler reports to it, and `intercept_sigterm` is the thin shell around uvicorn's signal handler.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from types import FrameType

SHUTTING_DOWN = "the server is shutting down; start again, another server will take it"


class Drain:
    """What a stopping server still waits for (sans I/O)."""

    def __init__(self) -> None:
        self.draining = False
        self.busy = 0  # messages being answered
        self.waiting: dict[str, int] = {}  # game id -> the open round to be played before the exit

    def begin(self, open_rounds: Mapping[str, int]) -> None:
        """SIGTERM arrived; `open_rounds` are the games in play on open connections and their open rounds."""
        self.draining = True
        self.waiting = dict(open_rounds)

    def enter(self) -> None:
        """A message is being answered."""
        self.busy += 1

    def leave(self) -> None:
        """Its answer was sent (or failed)."""
        self.busy -= 1

    def resumed(self, game_id: str, open_round: int) -> None:
        """A resume was answered with `open_round` open: while draining, that round is waited for too."""
        if self.draining:
            self.waiting.setdefault(game_id, open_round)

    def played(self, game_id: str, round_number: int) -> None:
        """A move of `game_id` was answered with the result of `round_number`."""
        if self.waiting.get(game_id, round_number + 1) <= round_number:
            del self.waiting[game_id]

    def gone(self, game_ids: Iterable[str]) -> None:
        """A connection that owned `game_ids` closed: nobody is there to play their open rounds."""
        for game_id in game_ids:
            self.waiting.pop(game_id, None)

    @property
    def done(self) -> bool:
        """Draining, and nothing left to wait for."""
        return self.draining and self.busy == 0 and not self.waiting


def intercept_sigterm(loop: asyncio.AbstractEventLoop, begin: Callable[[Callable[[], None]], None]) -> bool:
    """Have SIGTERM call `begin(stop)` on `loop` in place of the handler installed (uvicorn's); `stop()` then
    hands the signal to that handler (its graceful shutdown). A second SIGTERM goes to it at once.

    False, with nothing changed, off the main thread (no signals there) or when no handler is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return False

    def stop() -> None:
        previous(signal.SIGTERM, None)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, previous)
        loop.call_soon_threadsafe(begin, stop)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True

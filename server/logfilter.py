"""One log line per run of identical records: a logging filter that counts repeats instead of writing them.

A record passes when it is the first of its kind (same logger, level and message text) for
`interval` seconds; identical records within the interval are counted, not written. The count
comes out with the first identical record after the interval, appended to its message, or, if
none comes, in a summary record that `summaries` builds once the interval is over (the server
emits those on a timer and at shutdown). So an error that repeats every few milliseconds (for
example asyncio's "socket.accept() out of system resource", traceback included) costs one
line per interval, and nothing is lost: every occurrence is either written or counted.

`install` puts one filter on every handler of the process (the root logger's, uvicorn's and
logging.lastResort, which asyncio's records reach in a worker process without handlers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_INTERVAL = 60.0
_DECISION = "rpsquest_repeat_decision"  # on a record: this filter's verdict, the same for every handler
_SUMMARY = "rpsquest_repeat_summary"  # on a record: a count this filter built, always let through
_MAX_RUNS = 10_000  # beyond this many kinds of message, runs that ended are forgotten at once

Key = tuple[str, int, str]


@dataclass
class _Run:
    started: float
    suppressed: int = 0


def _note(suppressed: int, seconds: float) -> str:
    return f" [{suppressed} identical message{'s' if suppressed != 1 else ''} suppressed in {seconds:.0f} s]"


class RepeatFilter(logging.Filter):
    """Lets the first of a run of identical records through and counts the rest (see the module)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._runs: dict[Key, _Run] = {}
        self._lock = threading.Lock()  # records come from the event loop and from worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        """True to write `record`; one record reaching several handlers gets the same answer from each."""
        decided = record.__dict__.get(_DECISION)
        if decided is None:
            decided = record.__dict__.get(_SUMMARY, False) or self._admit(record)
            setattr(record, _DECISION, decided)
        return bool(decided)

    def _admit(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        with self._lock:
            now = self._clock()
            run = self._runs.get(key)
            if run is not None and now - run.started < self.interval:
                run.suppressed += 1
                return False
            if run is not None and run.suppressed:
                record.msg, record.args = key[2] + _note(run.suppressed, now - run.started), None
            self._runs[key] = _Run(now)
            if len(self._runs) > _MAX_RUNS:
                self._forget_ended(now)
            return True

    def summaries(self, everything: bool = False) -> list[logging.LogRecord]:
        """A count record for each run whose interval is over (every run, with `everything`) and that
        suppressed records; those runs are forgotten, so the next identical record passes at once."""
        with self._lock:
            now = self._clock()
            ended = [k for k, run in self._runs.items() if everything or now - run.started >= self.interval]
            out = []
            for key in ended:
                run = self._runs.pop(key)
                if run.suppressed:
                    name, level, text = key
                    summary = logging.LogRecord(name, level, "", 0, text + _note(run.suppressed, now - run.started),
                                                None, None)  # fmt: skip
                    setattr(summary, _SUMMARY, True)
                    out.append(summary)
            return out

    def _forget_ended(self, now: float) -> None:
        for key in [k for k, run in self._runs.items() if now - run.started >= self.interval and not run.suppressed]:
            del self._runs[key]


def _handlers() -> Iterable[logging.Handler]:
    named = (x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger))
    for logger in (logging.getLogger(), *named):
        yield from logger.handlers
    if logging.lastResort is not None:
        yield logging.lastResort


_installed: RepeatFilter | None = None


def install(interval: float = DEFAULT_INTERVAL) -> RepeatFilter:
    """Put the process's one RepeatFilter on every handler that exists now; returns it (made on the first call)."""
    global _installed
    if _installed is None:
        _installed = RepeatFilter(interval)
    for handler in _handlers():
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    return _installed


def not_a_server_fault(record: logging.LogRecord) -> bool:
    """Drop uvicorn's traceback for a client's text frame that is not UTF-8: the client's fault, closed with 1007."""
    return not record.getMessage().startswith("Invalid UTF-8 sequence received from client")


def emit(records: Iterable[logging.LogRecord]) -> None:
    """Write records (the filter's summaries) through the handlers of their loggers."""
    for record in records:
        logging.getLogger(record.name).handle(record)

"""server.logfilter: a run of identical log records is written once, with a count; nothing is lost."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import re
import socket
from collections.abc import Iterator

import pytest

from server import logfilter
from server.logfilter import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger of its own that writes to nothing but the handlers a test gives it."""
    made = logging.getLogger("test.logfilter")
    made.propagate = False
    made.setLevel(logging.DEBUG)
    yield made
    made.handlers.clear()


def _stream(
    logger: logging.Logger, repeat: RepeatFilter, fmt: str = "%(levelname)s %(name)s %(message)s"
) -> io.StringIO:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(repeat)
    logger.addHandler(handler)
    return out


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_the_first_of_a_run_passes_and_repeats_are_held_back(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    out = _stream(logger, repeat)
    for _ in range(5):
        logger.warning("disk %s is full", "/data")
        clock.now += 1.0
    assert _lines(out) == ["WARNING test.logfilter disk /data is full"]


def test_records_differ_by_logger_level_and_message_text(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    out = _stream(logger, repeat)
    other = logging.getLogger("test.logfilter.other")  # propagates to `logger`'s handler
    for _ in range(3):
        logger.warning("a")
        logger.error("a")
        logger.warning("b")
        logger.warning("%s", "c")
        logger.warning("c")  # the same text as the line before: the same message
        other.warning("a")
    assert _lines(out) == [
        "WARNING test.logfilter a",
        "ERROR test.logfilter a",
        "WARNING test.logfilter b",
        "WARNING test.logfilter c",
        "WARNING test.logfilter.other a",
    ]


def test_after_the_interval_the_next_repeat_passes_with_the_count(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    out = _stream(logger, repeat)
    for _ in range(4):
        logger.error("accept failed")
        clock.now += 10.0
    clock.now += 30.0  # 70 s after the first
    logger.error("accept failed")
    logger.error("accept failed")  # the first of a new interval passed: this one is held back again
    assert _lines(out) == [
        "ERROR test.logfilter accept failed",
        "ERROR test.logfilter accept failed [3 identical messages suppressed in 70 s]",
    ]


def test_a_summary_comes_out_when_no_repeat_follows(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    out = _stream(logger, repeat)
    logger.warning("once")  # alone: no summary
    logger.warning("twice")
    logger.warning("twice")
    clock.now += 59.0
    assert repeat.summaries() == []  # not over yet
    clock.now += 1.0
    logfilter.emit(repeat.summaries())
    assert repeat.summaries() == []  # each count is written once
    logger.warning("twice")  # the run ended: it passes at once, with no count
    assert _lines(out) == [
        "WARNING test.logfilter once",
        "WARNING test.logfilter twice",
        "WARNING test.logfilter twice [1 identical message suppressed in 60 s]",
        "WARNING test.logfilter twice",
    ]


def test_at_shutdown_every_pending_count_comes_out(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(3600.0, clock)
    out = _stream(logger, repeat)
    for _ in range(20):
        logger.error("manifest unreadable")
    clock.now += 5.0
    logfilter.emit(repeat.summaries(everything=True))
    assert _lines(out) == [
        "ERROR test.logfilter manifest unreadable",
        "ERROR test.logfilter manifest unreadable [19 identical messages suppressed in 5 s]",
    ]


def test_one_record_reaching_several_handlers_is_counted_once(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    first, second = _stream(logger, repeat), _stream(logger, repeat)
    for _ in range(4):
        logger.warning("same")
    clock.now += 60.0
    logger.warning("same")
    for out in (first, second):
        assert _lines(out) == [
            "WARNING test.logfilter same",
            "WARNING test.logfilter same [3 identical messages suppressed in 60 s]",
        ]


def test_a_traceback_is_written_once_per_interval(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(60.0, clock)
    out = _stream(logger, repeat)
    for _ in range(50):
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.exception("socket.accept() out of system resource")
    assert out.getvalue().count("Traceback (most recent call last)") == 1
    assert out.getvalue().count("OSError: [Errno 24]") == 1


def test_every_occurrence_is_written_or_counted(logger: logging.Logger, clock: Clock) -> None:
    repeat = RepeatFilter(10.0, clock)
    out = _stream(logger, repeat, "%(message)s")
    for i in range(300):
        logger.warning("tick")
        clock.now += 0.7 if i % 7 else 3.1
    occurrences_written = len(_lines(out))
    clock.now += 10.0
    logfilter.emit(repeat.summaries())  # the last run's count: a line of its own, not an occurrence
    written = _lines(out)
    assert len(written) == occurrences_written + 1
    counted = sum(int(m.group(1)) for m in (re.search(r"\[(\d+) identical", line) for line in written) if m)
    assert all(line.startswith("tick") for line in written)
    assert occurrences_written < 300 // 5
    assert occurrences_written + counted == 300


def test_interval_zero_writes_every_record(logger: logging.Logger, clock: Clock) -> None:
    out = _stream(logger, RepeatFilter(0.0, clock))
    for _ in range(3):
        logger.warning("each")
    assert _lines(out) == ["WARNING test.logfilter each"] * 3


def test_install_covers_every_handler_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfilter, "_installed", None)
    root_handler, uvicorn_handler = logging.StreamHandler(io.StringIO()), logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [root_handler])
    monkeypatch.setattr(logging.getLogger("uvicorn"), "handlers", [uvicorn_handler])
    assert logging.lastResort is not None
    monkeypatch.setattr(logging.lastResort, "filters", [])
    installed = logfilter.install(5.0)
    assert installed.interval == 5.0
    assert logfilter.install(99.0) is installed  # one filter per process, installed once per handler
    for handler in (root_handler, uvicorn_handler, logging.lastResort):
        assert handler.filters == [installed]


def test_asyncios_accept_error_is_written_once(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """asyncio's own record for EMFILE on accept, through its default exception handler, traceback and all."""
    asyncio_logger = logging.getLogger("asyncio")
    monkeypatch.setattr(asyncio_logger, "propagate", False)
    monkeypatch.setattr(asyncio_logger, "handlers", [])
    out = _stream(asyncio_logger, RepeatFilter(60.0, clock))
    loop = asyncio.new_event_loop()
    try:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            for _ in range(100):  # what BaseSelectorEventLoop._accept_connection reports, attempt after attempt
                try:
                    raise OSError(errno.EMFILE, "Too many open files")
                except OSError as exc:
                    loop.call_exception_handler(
                        {"message": "socket.accept() out of system resource", "exception": exc, "socket": listener}
                    )
    finally:
        loop.close()
    text = out.getvalue()
    assert text.count("socket.accept() out of system resource") == 1
    assert text.count("Traceback (most recent call last)") == 1


def test_a_client_text_frame_that_is_not_utf8_is_not_logged_as_a_server_fault() -> None:
    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, message, None, None)

    assert not logfilter.not_a_server_fault(record("Invalid UTF-8 sequence received from client: 0xff"))
    assert logfilter.not_a_server_fault(record("Exception in ASGI application"))

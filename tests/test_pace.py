"""`Pace`: when a batch runs, on a real event loop and as plain arithmetic."""

from __future__ import annotations

import asyncio

import pytest

from storage.pace import Pace


def test_a_lone_request_never_waits() -> None:
    pace = Pace(0.002)
    assert pace.delay(10.0) == 0.0  # nothing ran yet
    pace.ran(10.0, 1)
    assert pace.delay(10.0001) == 0.0  # the last batch held one request: waiting would gather nothing


def test_while_batches_gather_several_the_next_runs_a_gap_after_the_last() -> None:
    pace = Pace(0.002)
    pace.ran(10.0, 3)
    assert pace.delay(10.0005) == pytest.approx(0.0015)
    assert pace.delay(10.002) == 0.0
    assert pace.delay(11.0) == 0.0  # long after the last batch: at once
    pace.ran(11.0, 1)  # the load went: batches hold one request again
    assert pace.delay(11.0005) == 0.0


def test_schedule_runs_the_batch_at_the_end_of_the_turn_or_after_the_gap() -> None:
    async def scenario() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        pace, ran = Pace(0.05), []
        pace.schedule(loop, lambda: ran.append("lone"))
        await asyncio.sleep(0)
        pace.ran(loop.time(), 2)
        started = loop.time()
        done = loop.create_future()
        pace.schedule(loop, lambda: done.set_result(loop.time()))
        await asyncio.sleep(0)
        assert not done.done()  # the turn ended, the batch still waits for more
        return ran, await done - started

    ran, waited = asyncio.run(scenario())
    assert ran == ["lone"]
    assert waited >= 0.05 - 0.002  # the loop's clock may round a timer's deadline down by its resolution


def test_a_lone_request_runs_at_once_when_nothing_else_waits_to_run_in_its_turn() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        pace, ran = Pace(0.05), []
        pace.schedule(loop, lambda: ran.append("at once"))
        assert ran == ["at once"]  # no other callback this turn: no request could join it, so it does not wait
        loop.call_soon(lambda: None)  # another callback waits to run in this turn: it may ask too
        pace.schedule(loop, lambda: ran.append("end of turn"))
        assert ran == ["at once"]
        await asyncio.sleep(0)
        return ran

    assert asyncio.run(scenario()) == ["at once", "end of turn"]

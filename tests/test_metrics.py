"""server.metrics: the tally of per-round counters, the collector's pause clock."""

from __future__ import annotations

import asyncio
import gc

from prometheus_client import CollectorRegistry, Counter

from server import metrics
from server.metrics import PauseClock, Tally


def _counter() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("t_rounds", "rounds", ["opponent"], registry=registry)


def test_counts_go_in_when_settled_once_per_label_set() -> None:
    registry, rounds = _counter()
    tally = Tally()
    child = rounds.labels("brian")
    original = child.inc
    incs: list[float] = []

    def counted(amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        incs.append(amount)
        original(amount, exemplar)

    child.inc = counted  # type: ignore[method-assign]

    async def scenario() -> float | None:
        for _ in range(5):
            tally.add(rounds, "brian")
        tally.add(rounds, "logan")
        before = registry.get_sample_value("t_rounds_total", {"opponent": "brian"})
        tally.settle()
        return before

    assert asyncio.run(scenario()) == 0.0
    assert registry.get_sample_value("t_rounds_total", {"opponent": "brian"}) == 5
    assert registry.get_sample_value("t_rounds_total", {"opponent": "logan"}) == 1
    assert incs == [5]  # one inc for the five rounds


def test_the_event_loop_settles_a_period_after_the_first_count() -> None:
    registry, rounds = _counter()
    tally = Tally()
    tally.PERIOD = 0.01

    async def scenario() -> None:
        tally.add(rounds, "forrest")
        await asyncio.sleep(0.2)
        tally.add(rounds, "forrest")  # a new period starts
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert registry.get_sample_value("t_rounds_total", {"opponent": "forrest"}) == 2


def _pauses(generation: str) -> tuple[float, float]:
    """(count, sum) of rpsquest_gc_pause_seconds for `generation`."""
    labels = {"generation": generation}
    count = metrics.registry.get_sample_value("rpsquest_gc_pause_seconds_count", labels)
    total = metrics.registry.get_sample_value("rpsquest_gc_pause_seconds_sum", labels)
    return count or 0.0, total or 0.0


def test_each_collection_is_timed_by_generation(collections: list[int]) -> None:
    clock = PauseClock()
    before = {g: _pauses(g) for g in ("0", "1", "2")}
    gc.callbacks.append(clock)  # CPython's own trigger is off (the fixture): only the collections below
    try:
        gc.collect(1)
        gc.collect(1)
        gc.collect(0)
    finally:
        gc.callbacks.remove(clock)
    after = {g: _pauses(g) for g in ("0", "1", "2")}
    assert after["0"][0] == before["0"][0] + 1
    assert after["1"][0] == before["1"][0] + 2
    assert after["1"][1] > before["1"][1]
    assert after["2"] == before["2"]

"""The garbage collector's clock (server/collector.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable, Iterator

import pytest

from server import collector


class _Node:
    """An object in a reference cycle: only a collection frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    """Each test starts with no closed connections counted and leaves nothing frozen behind."""
    collector._closed = 0
    yield
    collector._closed = 0
    gc.unfreeze()


def _frozen(obj: object) -> bool:
    """True when `obj` is tracked but in none of the generations that collections examine."""
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


async def _ticks(count: float) -> None:
    await asyncio.sleep(count * collector.TICK)


def _with_collector(scenario: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        task = asyncio.create_task(collector.collect_forever())
        try:
            await scenario()
        finally:
            task.cancel()

    asyncio.run(run())


def test_each_tick_freezes_what_it_left_alive_and_collects_nothing(collections: list[int]) -> None:
    kept = [[n] for n in range(1000)]
    before = gc.get_freeze_count()
    assert not _frozen(kept[0])
    _with_collector(lambda: _ticks(2.5))
    assert _frozen(kept[0]) and _frozen(kept)
    assert gc.get_freeze_count() >= before + len(kept)
    assert collections == []  # not one object examined on the ticks


def test_a_cycle_waits_for_the_full_collection_every_full_every(
    collections: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "FULL_EVERY", 3.5 * collector.TICK)
    node = _Node()
    alive = weakref.ref(node)
    del node

    async def scenario() -> None:
        await _ticks(1.5)
        assert alive() is not None  # frozen: the ticks do not look for garbage
        await _ticks(3.5)
        assert alive() is None  # the full collection examined the frozen objects too

    _with_collector(scenario)
    assert collections.count(2) == 1 and set(collections) == {2}


def test_closed_connections_bring_the_full_collection_forward(
    collections: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "FULL_AFTER_CLOSED", 3)
    node = _Node()
    alive = weakref.ref(node)
    del node
    for _ in range(2):
        collector.connection_closed()

    async def scenario() -> None:
        await _ticks(1.5)
        assert alive() is not None and collections == []  # two closes: not yet
        collector.connection_closed()
        await _ticks(1.5)
        assert alive() is None and collections == [2]

    _with_collector(scenario)
    assert collector._closed == 0  # counted afresh from the full collection


def test_install_freezes_what_start_up_built_and_leaves_cpythons_trigger_as_backstop() -> None:
    thresholds = gc.get_threshold()
    try:
        collector.install()
        assert gc.get_threshold() == collector.BACKSTOP
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*thresholds)

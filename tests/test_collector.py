"""The garbage collector's clock (server/collector.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from server import collector


class _Node:
    """An object in a reference cycle: only a collection frees it."""

    def __init__(self) -> None:
        self.me = self


def _run_collector(seconds: float) -> None:
    async def scenario() -> None:
        task = asyncio.create_task(collector.collect_forever())
        await asyncio.sleep(seconds)
        task.cancel()

    asyncio.run(scenario())


def test_the_loop_frees_a_cycle_within_a_tick_or_two_without_cpythons_trigger(collections: list[int]) -> None:
    node = _Node()
    alive = weakref.ref(node)
    del node
    assert alive() is not None  # a cycle: reference counting alone never frees it
    _run_collector(3.5 * collector.TICK)
    assert alive() is None
    assert collections and set(collections) == {1}  # the young and middle generations together, never a full one


def test_the_loop_collects_in_full_every_full_every_seconds(
    collections: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collector, "FULL_EVERY", 2.5 * collector.TICK)
    _run_collector(6.5 * collector.TICK)
    assert 2 in collections and 1 in collections
    assert collections.count(2) <= 3


def test_install_freezes_what_start_up_built_and_leaves_cpythons_trigger_as_backstop() -> None:
    thresholds = gc.get_threshold()
    try:
        collector.install()
        assert gc.get_threshold() == collector.BACKSTOP
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)

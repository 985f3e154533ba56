"""When a batch of requests runs: at once for a lone request, a moment after the last batch on a busy loop.

A batch (a group commit, one model call for many games) costs a fixed part and a part per request. At
human pace a busy event loop gathers two or three requests a turn, so the fixed part is paid for every
few rounds. `Pace` lets the next batch run GAP after the last one while batches gather more than one
request: more requests join each batch, for at most GAP of latency. A request that arrives alone (one
player, a quiet server) runs at the end of its turn, where the requests of the same turn join it; and when
nothing else waits to run in that turn, so that none could, it runs at once, saving its caller the turns of
the loop to the batch and back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Pace:
    """Schedules a batch GAP after the previous one while batches hold more than one request."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self._last = 0.0  # the event loop's time of the last batch
        self._size = 0  # the requests it held

    def delay(self, now: float) -> float:
        """Seconds the batch whose first request came at `now` waits for more."""
        if self._size <= 1:
            return 0.0
        return max(0.0, self._last + self.gap - now)

    def ran(self, now: float, size: int) -> None:
        """A batch of `size` requests ran at `now`."""
        self._last, self._size = now, size

    def schedule(self, loop: asyncio.AbstractEventLoop, batch: Callable[[], object]) -> None:
        """Run `batch` after `delay` when batches gather; otherwise at once if nothing else waits to run in
        this turn of the loop, or at its end. The caller queues its request before it schedules."""
        wait = self.delay(loop.time())
        if wait > 0:
            loop.call_later(wait, batch)
        elif alone(loop):
            batch()
        else:
            loop.call_soon(batch)


def alone(loop: asyncio.AbstractEventLoop) -> bool:
    """True when no other callback waits to run in this turn of `loop` (an asyncio loop's queue of ready
    callbacks is empty); False for a loop that does not show it."""
    ready = getattr(loop, "_ready", None)
    return ready is not None and not ready

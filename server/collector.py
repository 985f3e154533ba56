"""Python's garbage collector on a clock, so that no pause grows with the number of sessions.

CPython starts a young collection when allocations less deallocations pass a threshold, and collects the
middle generation every so many young collections. A server at human pace frees about as much as it
allocates, because a round's objects live until the player's next move, seconds later: the count crawls,
the young generation fills with every round played since the last collection, and the middle one with
twenty such collections. With 3,750 human-paced sessions a worker (7,500 on two), young collections
examined 50,000 to 190,000 objects (20-200 ms) and middle ones 600,000 (0.4-0.6 s): a move's p99 was
0.56-0.98 s.

A round leaves no garbage that only the collector can free (none in 79,315 rounds, measured): reference
counting frees all of it. Reference cycles come from connections, about 30 objects for each closed
WebSocket connection and 7 for each HTTP one. So the event loop does not collect on its ticks: every TICK
seconds it freezes what the tick left alive (`gc.freeze`, a constant-time move into the generation that
collections skip), which keeps the young generation to one tick's objects and costs no examination at all.
Examining each tick's survivors once, as this clock did before, took 4-7 % of a worker's CPU at 10,000
sessions. Everything is collected in full (unfrozen, examined, frozen again) every FULL_EVERY seconds, and
sooner once FULL_AFTER_CLOSED connections have closed since the last full collection: that bounds the cycles
waiting to be freed by the connections that made them, whatever the churn. A full collection examines every
live object, about 0.5-1 s with 3,750 sessions a worker, which is why it is not triggered by growth as
CPython's own is: at that rate it ran nine times in a 35 s run and put p99 back at 0.77 s. CPython's own
trigger stays, as a backstop for a burst of allocations within one tick; it never reaches the old
generation.
"""

from __future__ import annotations

import asyncio
import gc

TICK = 0.1  # seconds between freezes of what the young generation holds
FULL_EVERY = 600.0  # seconds between full collections ...
FULL_AFTER_CLOSED = 10_000  # ... or this many closed connections, whichever comes first
BACKSTOP = (50_000, 20, 1 << 30)  # CPython's thresholds: young, middle, and (never) old

_closed = 0  # connections closed since the last full collection


def install() -> None:
    """Collect what start-up left, freeze what survives and leave CPython's own trigger as the backstop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BACKSTOP)


def connection_closed() -> None:
    """Count a closed connection: the source of the reference cycles a server leaves."""
    global _closed
    _closed += 1


def collect_all() -> None:
    """Examine every object, frozen ones included, free the garbage and freeze what is alive again."""
    global _closed
    _closed = 0
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def collect_forever() -> None:
    """Freeze what each TICK left alive; collect in full every FULL_EVERY or after FULL_AFTER_CLOSED closes."""
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(TICK)
        if loop.time() - last_full >= FULL_EVERY or _closed >= FULL_AFTER_CLOSED:
            collect_all()
            last_full = loop.time()
        else:
            gc.freeze()

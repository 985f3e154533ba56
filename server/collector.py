"""Python's garbage collector on a clock, so that no pause grows with the number of sessions.

CPython starts a young collection when allocations less deallocations pass a threshold, and collects the
middle generation every so many young collections. A server at human pace frees about as much as it
allocates, because a round's objects live until the player's next move, seconds later: the count crawls,
the young generation fills with every round played since the last collection, and the middle one with
twenty such collections. With 3,750 human-paced sessions a worker (7,500 on two), young collections
examined 50,000 to 190,000 objects (20-200 ms) and middle ones 600,000 (0.4-0.6 s): a move's p99 was
0.56-0.98 s.

Here the event loop collects the young and middle generations together every TICK seconds. They then hold
what one tick's rounds left alive, so a pause lasts milliseconds, and each object is examined once before
it joins the old generation. The old generation (every live game and connection) is collected in full
every FULL_EVERY seconds, to free reference cycles among objects that were alive at a tick: few, about six
objects for each closed connection (measured after 1,000 human-paced sessions). A full collection examines
every object, about 0.5-1 s with 3,750 sessions a worker, which is why it is not triggered by growth as
CPython's own is: at that rate it ran nine times in a 35 s run and put p99 back at 0.77 s. CPython's own
trigger stays, as a backstop for a burst of allocations within one tick; it never reaches the old
generation.
"""

from __future__ import annotations

import asyncio
import gc

TICK = 0.1  # seconds between collections of the two younger generations
FULL_EVERY = 600.0  # seconds between full collections
BACKSTOP = (50_000, 20, 1 << 30)  # CPython's thresholds: young, middle, and (never) old


def install() -> None:
    """Collect what start-up left, freeze what survives (it lives as long as the process: no collection
    need examine it again) and leave CPython's own trigger as the backstop."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*BACKSTOP)


async def collect_forever() -> None:
    """Collect the two younger generations every TICK, and all three once FULL_EVERY has passed."""
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(TICK)
        if loop.time() - last_full >= FULL_EVERY:
            gc.collect(2)
            last_full = loop.time()
        else:
            gc.collect(1)

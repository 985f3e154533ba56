"""The server's random source: the operating system's CSPRNG, read in blocks.

`random.SystemRandom` makes one getrandom() system call per draw; a round needs two
(the bot's move and the nonce of its commitment), which cost more than the rest of the
draw. `Entropy` reads os.urandom a block at a time and hands out its bytes, so draws
stay as unpredictable as os.urandom's at a fraction of the cost. A forked child drops
the block it inherited (it must never repeat its parent's bytes). Use it from one
thread (the event loop's).
"""

from __future__ import annotations

import os
import random
import weakref

BLOCK = 4096
_live: weakref.WeakSet[Entropy] = weakref.WeakSet()


class Entropy(random.SystemRandom):
    """A `random.Random` whose every bit comes from os.urandom, read BLOCK bytes at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._block = b""
        self._used = 0
        _live.add(self)

    def _take(self, n: int) -> bytes:
        if n > BLOCK:
            return os.urandom(n)
        if self._used + n > len(self._block):
            self._block, self._used = os.urandom(BLOCK), 0
        start, self._used = self._used, self._used + n
        return self._block[start : self._used]

    def _forget(self) -> None:
        self._block, self._used = b"", 0

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (int.from_bytes(self._take(7)) >> 3) * 2.0**-53

    def getrandbits(self, k: int) -> int:
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        size = (k + 7) // 8
        return int.from_bytes(self._take(size)) >> (size * 8 - k)

    def randbytes(self, n: int) -> bytes:
        return self._take(n)

    def token_hex(self, n: int) -> str:
        """`n` random bytes as hex, like secrets.token_hex."""
        return self._take(n).hex()


def _after_fork() -> None:
    for source in list(_live):
        source._forget()


os.register_at_fork(after_in_child=_after_fork)

"""Time-ordered game ids: 16 URL-safe characters that sort by creation time (as UUIDv7 does).

An id is 96 bits: 48 bits of milliseconds since the Unix epoch, then 48 random bits, written as 16 digits
of an alphabet of 64 URL-safe characters in ASCII order, so that ids sort as text in the order they were made.
Within one millisecond (or should the clock step back) the next id of a process is the last one plus one:
one process's ids are unique and increasing; two processes' differ by their random bits. New ids append at
the right edge of the indexes keyed on them (the `rounds` primary key) instead of landing on random pages.
"""

from __future__ import annotations

import secrets
import time

ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"  # URL-safe, in ASCII order
LENGTH = 16  # digits of 6 bits: 96 bits
RANDOM_BITS = 48


def encode(value: int) -> str:
    """`value` (< 2**96) as LENGTH digits of ALPHABET, most significant first."""
    digits = []
    for _ in range(LENGTH):
        value, digit = divmod(value, 64)
        digits.append(ALPHABET[digit])
    return "".join(reversed(digits))


def millis(game_id: str) -> int:
    """The millisecond an id was made in (Unix epoch)."""
    value = 0
    for char in game_id:
        value = value * 64 + ALPHABET.index(char)
    return value >> RANDOM_BITS


class GameIds:
    """A process's source of ids: `next()` is always greater than every id it gave before."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, now: float | None = None) -> str:
        ms = int((time.time() if now is None else now) * 1000)
        value = (ms << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)
        self._last = value if value > self._last else self._last + 1
        return encode(self._last)

"""The server's buffered random source: uniform draws, every bit used, no bytes repeated (not even by a fork)."""

from __future__ import annotations

import os

import pytest

from server.entropy import BLOCK, Entropy


def test_floats_are_uniform_in_the_unit_interval() -> None:
    rng = Entropy()
    draws = [rng.random() for _ in range(20_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert 0.48 < sum(draws) / len(draws) < 0.52
    assert sum(d < 0.1 for d in draws) / len(draws) == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("bits", [1, 3, 8, 13, 64, 100])
def test_getrandbits_covers_the_whole_range(bits: int) -> None:
    rng = Entropy()
    draws = [rng.getrandbits(bits) for _ in range(2_000)]
    assert all(0 <= d < 2**bits for d in draws)
    assert max(draws).bit_length() == bits  # the top bit is set sometimes: no bit is wasted or stuck
    assert min(draws) < 2 ** (bits - 1)


def test_library_draws_use_it() -> None:
    rng = Entropy()
    assert {rng.choices((0, 1, 2), weights=(0.0, 1.0, 0.0))[0] for _ in range(200)} == {1}
    assert {rng.randrange(3) for _ in range(300)} == {0, 1, 2}


def test_bytes_are_never_handed_out_twice_across_blocks() -> None:
    rng = Entropy()
    tokens = [rng.token_hex(16) for _ in range(3 * BLOCK // 16 + 5)]  # crosses several block refills
    assert len(set(tokens)) == len(tokens)
    assert all(len(t) == 32 for t in tokens)
    assert len(rng.randbytes(BLOCK + 1)) == BLOCK + 1


def test_a_forked_child_does_not_repeat_its_parents_bytes() -> None:
    rng = Entropy()
    rng.randbytes(8)  # a block is buffered, with unread bytes the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next bytes and leave at once
        os.write(write, rng.randbytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != rng.randbytes(32)

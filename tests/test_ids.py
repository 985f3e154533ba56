"""Time-ordered game ids (storage/ids.py): they sort by creation time and stay unique under many per millisecond."""

from __future__ import annotations

import re
import secrets

from engine.rules import round_values
from storage.ids import LENGTH, GameIds, millis


def test_ids_sort_by_creation_time_and_give_back_their_millisecond() -> None:
    ids = GameIds()
    times = sorted(1_700_000_000.0 + secrets.randbelow(10**9) / 1000 for _ in range(2_000))
    made = [ids.next(t) for t in times]
    assert sorted(made) == made  # as text: the order they were made in
    assert [millis(i) for i in made] == [int(t * 1000) for t in times]
    assert all(re.fullmatch(f"[A-Za-z0-9_-]{{{LENGTH}}}", i) for i in made)  # URL-safe, like token_urlsafe(12)


def test_many_ids_in_one_millisecond_or_after_the_clock_stepped_back_stay_unique_and_increasing() -> None:
    ids = GameIds()
    now = 1_800_000_000.123
    made = [ids.next(now) for _ in range(50_000)] + [ids.next(now - 5.0) for _ in range(1_000)]
    assert len(set(made)) == len(made) and sorted(made) == made
    assert {millis(i) for i in made[:1_000]} == {int(now * 1000)}


def test_two_sources_in_the_same_millisecond_differ_and_rules_take_any_id() -> None:
    a, b = GameIds(), GameIds()
    first, second = a.next(1_800_000_000.0), b.next(1_800_000_000.0)
    assert first != second and millis(first) == millis(second)
    assert all(v > 0 for v in round_values(first, 1))  # round values depend only on the id string

"""engine.openings against game.md, Openings (rounds 1-3)."""

from __future__ import annotations

import math
import random
from collections import Counter

from engine.openings import OPENING_BY_NAME, OPENING_ROUNDS, OPENINGS, draw_opening
from engine.rules import round_values

# game.md, Openings table: name, weight, ranks for rounds 1, 2, 3.
SPEC_OPENINGS: list[tuple[str, int, str]] = [
    ("crescendo", 14, "LMH"),
    ("denouement", 12, "HML"),
    ("paper-dolls", 12, "LMM"),
    ("fistful-of-dollars", 10, "HLL"),
    ("scissor-sandwich", 8, "LML"),
    ("bureaucrat", 6, "LLL"),
    ("avalanche", 8, "HHH"),
    ("toolbox", 6, "MMM"),
    ("razor", 12, "MLH"),
    ("switchblade", 12, "MHL"),
]


def _by_rank(values: tuple[int, int, int], rank: str) -> int:
    """The move holding value rank H, M or L, computed by sorting (independent of the engine)."""
    order = sorted(range(3), key=lambda m: values[m], reverse=True)
    return order["HML".index(rank)]


def test_openings_table_matches_spec() -> None:
    assert OPENING_ROUNDS == 3
    assert [(o.name, o.weight, o.ranks) for o in OPENINGS] == SPEC_OPENINGS
    assert sum(o.weight for o in OPENINGS) == 100
    assert set(OPENING_BY_NAME) == {name for name, _, _ in SPEC_OPENINGS}
    for o in OPENINGS:
        assert OPENING_BY_NAME[o.name] is o


def test_opening_moves_resolve_to_the_named_rank() -> None:
    rng = random.Random(1)
    for _ in range(300):
        game_id = f"g-{rng.getrandbits(40):010x}"
        for n in range(1, OPENING_ROUNDS + 1):
            values = round_values(game_id, n)
            for name, _, ranks in SPEC_OPENINGS:
                move = OPENING_BY_NAME[name].move(n, values)
                assert move == _by_rank(values, ranks[n - 1]), (name, game_id, n, values)


def test_opening_moves_hand_example() -> None:
    # demo rounds 1-3: (1.6, 1.0, 1.1), (1.5, 2.0, 1.0), (1.0, 1.5, 2.0)
    values = [round_values("demo", n) for n in (1, 2, 3)]
    crescendo = OPENING_BY_NAME["crescendo"]  # L M H
    assert [crescendo.move(n, values[n - 1]) for n in (1, 2, 3)] == [1, 0, 2]
    switchblade = OPENING_BY_NAME["switchblade"]  # M H L
    assert [switchblade.move(n, values[n - 1]) for n in (1, 2, 3)] == [2, 1, 0]


def test_draw_opening_frequencies_follow_weights() -> None:
    draws = 20_000
    rng = random.Random(12345)
    counts = Counter(draw_opening(rng).name for _ in range(draws))
    assert set(counts) == {name for name, _, _ in SPEC_OPENINGS}
    for name, weight, _ in SPEC_OPENINGS:
        p = weight / 100
        sigma = math.sqrt(draws * p * (1 - p))
        assert abs(counts[name] - draws * p) < 5 * sigma, (name, counts[name], draws * p)


def test_draw_opening_uses_only_the_given_random_source() -> None:
    a = [draw_opening(random.Random(s)).name for s in range(50)]
    b = [draw_opening(random.Random(s)).name for s in range(50)]
    assert a == b
    assert len(set(a)) > 3

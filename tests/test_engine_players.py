"""engine.players: a reproducible population of simulated players with human-like habits."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

from engine.players import Persona, SimulatedPlayer, population
from engine.rules import LOSE, WIN, Game, Round, hunter, outcome, ranked

KINDS = {"habit", "greedy", "cycler", "favourite", "counter", "mixed"}


def _play(player: SimulatedPlayer, game_id: str, bot_rng: random.Random) -> list[Round]:
    """One game of `player` against a uniformly random bot."""
    game = Game(game_id)
    while not game.over:
        number = len(game.rounds) + 1
        game.play(player.move(game.rounds, game.values(number)), bot_rng.randrange(3))
    return game.rounds


def _simulate(seed: int, size: int) -> list[tuple[Persona, list[Round]]]:
    bot_rng = random.Random(seed + 1_000_000)
    return [(p.persona, _play(p, f"sim-{seed}-{i}", bot_rng)) for i, p in enumerate(population(seed, size))]


def test_population_is_reproducible_from_seed() -> None:
    a = population(42, 30)
    b = population(42, 30)
    assert [p.persona for p in a] == [p.persona for p in b]
    assert [[r.player for r in rounds] for _, rounds in _simulate(42, 30)] == [
        [r.player for r in rounds] for _, rounds in _simulate(42, 30)
    ]


def test_different_seeds_differ() -> None:
    a = [p.persona for p in population(1, 20)]
    b = [p.persona for p in population(2, 20)]
    assert a != b
    assert all(x != y for x, y in zip(a, b, strict=True))
    moves_a = [[r.player for r in rounds] for _, rounds in _simulate(1, 20)]
    moves_b = [[r.player for r in rounds] for _, rounds in _simulate(2, 20)]
    assert moves_a != moves_b


def test_each_player_has_its_own_random_source() -> None:
    """A player's moves do not depend on how the other players' moves are interleaved with its own."""
    values = (16, 10, 11)
    first = population(7, 3)
    alone = [first[0].move((), values) for _ in range(50)]
    second = population(7, 3)
    interleaved = []
    for _ in range(50):
        interleaved.append(second[0].move((), values))
        second[1].move((), values)
        second[2].move((), values)
    assert alone == interleaved


def test_distributions_are_valid() -> None:
    for persona, rounds in _simulate(3, 100):
        player = SimulatedPlayer(persona, random.Random(0))
        for i, r in enumerate(rounds):
            p = player.distribution(rounds[:i], r.values)
            assert len(p) == 3
            assert all(q >= persona.noise / 3 - 1e-12 for q in p)
            assert all(q > 0 for q in p)
            assert abs(sum(p) - 1.0) < 1e-9
        assert 0.0 <= persona.noise <= 1.0
        assert persona.favourite in (0, 1, 2)
        assert persona.cycle in (1, 2)
        for row in persona.shift:
            assert abs(sum(row) - 1.0) < 1e-9
            assert all(q > 0 for q in row)


def test_population_mixes_all_kinds() -> None:
    kinds = Counter(p.persona.name for p in population(5, 400))
    assert set(kinds) == KINDS
    assert kinds["habit"] > kinds["favourite"]


def test_habit_personas_repeat_more_after_a_loss_than_after_a_win() -> None:
    stay = {WIN: 0, LOSE: 0}
    seen = {WIN: 0, LOSE: 0}
    for persona, rounds in _simulate(11, 400):
        if persona.name != "habit":
            continue
        for before, after in pairwise(rounds):
            result = outcome(before.player, before.bot)
            if result in stay:
                seen[result] += 1
                stay[result] += after.player == before.player
    assert min(seen.values()) > 300
    after_win, after_loss = stay[WIN] / seen[WIN], stay[LOSE] / seen[LOSE]
    assert after_loss > after_win + 0.1, (after_loss, after_win)


def test_greedy_personas_favour_the_high_value_move() -> None:
    high = total = 0
    for persona, rounds in _simulate(12, 300):
        if persona.name == "greedy":
            high += sum(r.player == ranked(r.values)[0] for r in rounds)
            total += len(rounds)
    assert total > 300
    assert high / total > 0.45


def test_cyclers_cycle_and_counters_counter() -> None:
    cycled = cycle_total = countered = counter_total = 0
    for persona, rounds in _simulate(13, 400):
        for before, after in pairwise(rounds):
            if persona.name == "cycler":
                cycled += after.player == (before.player + persona.cycle) % 3
                cycle_total += 1
            elif persona.name == "counter":
                countered += after.player == hunter(before.bot)
                counter_total += 1
    assert cycle_total > 300 and counter_total > 300
    assert cycled / cycle_total > 0.45
    assert countered / counter_total > 0.45

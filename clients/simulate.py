"""`rpsquest simulate`: simulated players play real games through the protocol (tag `sim`)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from clients.client import Client, ProtocolViolation, Refused
from engine.opponents import OPPONENTS
from engine.players import SimulatedPlayer, population


@dataclass
class SimulationReport:
    games: int = 0
    rounds: int = 0
    winners: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)


async def play_game(client: Client, player: SimulatedPlayer, opponent: str, tag: str, report: SimulationReport) -> None:
    """One whole game by `player` against `opponent`, checked round by round."""
    try:
        game = await client.start(opponent, tag=tag)
    except Refused as exc:
        report.errors[exc.code] += 1
        return
    while game.open_round is not None:
        move = player.move(game.rounds, game.values())
        played, answer, _ = await client.move(game, move)
        if played is None:
            report.errors[answer["code"]] += 1
            return
        report.rounds += 1
    report.games += 1
    assert game.winner is not None
    report.winners[game.winner] += 1


async def simulate(
    url: str, games: int, concurrency: int = 8, seed: int = 0, tag: str = "sim", rate: float = 25.0
) -> SimulationReport:
    """Play `games` games with `concurrency` connections, each sending at most `rate` messages a second."""
    report = SimulationReport()
    players = population(seed, games)
    rng = random.Random(seed)
    opponents = [OPPONENTS[rng.randrange(len(OPPONENTS))].id for _ in range(games)]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(games):
        queue.put_nowait(i)

    async def worker() -> None:
        client = await Client.open(url, rate)
        try:
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await play_game(client, players[i], opponents[i], tag, report)
                except ProtocolViolation as exc:
                    report.violations.append(str(exc))
        finally:
            await client.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, games))))
    return report

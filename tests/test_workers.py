"""Several worker processes on one port (RPSQUEST_WORKERS=2), against a real server over real WebSockets."""

from __future__ import annotations

import asyncio
import random
import re
import time
import urllib.request
from collections.abc import Callable

from conftest import ServerProcess

from clients.client import Client, ClientGame
from server.metrics import Tally


def _metric(server: ServerProcess, pattern: str) -> float:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(pattern + r" ([0-9.e+]+)\n", text)
    assert found is not None, pattern
    return float(found.group(1))


async def _play_one_round_per_connection(url: str, opponent: str, seed: int) -> ClientGame:
    """A whole game where every round comes over a new connection (resume, then move): either worker takes each."""
    rng = random.Random(seed)
    first = await Client.open(url)
    game = await first.start(opponent, tag="sim")
    await first.close()
    while game.open_round is not None:
        client = await Client.open(url)
        answer = await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
        assert answer["type"] == "game", answer
        assert len(answer["history"]) == len(game.rounds) and answer["next"]["commit"] == game.commit
        played, answer, _ = await client.move(game, rng.randrange(3))  # checks the reveal against the commit
        assert played is not None, answer
        await client.close()
    return game


def test_any_worker_plays_any_game_and_metrics_add_up(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_WORKERS": "2"})

    async def scenario() -> list[ClientGame]:
        return list(
            await asyncio.gather(*(_play_one_round_per_connection(server.ws_url, "forrest", s) for s in range(4)))
        )

    games = asyncio.run(scenario())
    assert all(g.winner is not None for g in games)
    rounds = sum(len(g.rounds) for g in games)
    counted = r'rpsquest_rounds_total\{opponent="forrest",tag="sim"\}'
    deadline = time.monotonic() + 10 * Tally.PERIOD  # a worker adds its tally of rounds at most a period later
    while _metric(server, counted) < rounds and time.monotonic() < deadline:
        time.sleep(Tally.PERIOD / 4)
    for _ in range(6):  # each scrape is a new connection, answered by either worker: each shows the sum of both
        assert _metric(server, counted) == rounds
        assert _metric(server, r'rpsquest_games_started_total\{opponent="forrest",tag="sim"\}') == 4
        assert _metric(server, r"rpsquest_ws_connections") == 0


def test_two_connections_racing_on_one_round_get_one_answer(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_WORKERS": "2"})

    async def scenario() -> None:
        owner = await Client.open(server.ws_url)
        game = await owner.start("brian", tag="sim")
        for move in (0, 1, 2):
            await owner.move(game, move)
        others = [await Client.open(server.ws_url) for _ in range(3)]
        for other in others:
            resumed = await other.request({"type": "resume", "game_id": game.game_id, "token": game.token})
            assert len(resumed["history"]) == 3
        players = [owner, *others]
        moves = ("rock", "paper", "scissors", "rock")
        message = {"type": "move", "game_id": game.game_id, "round": 4}
        asked = (c.request({**message, "move": m}) for c, m in zip(players, moves, strict=True))
        answers = await asyncio.gather(*asked)
        assert all(a["type"] == "result" for a in answers), answers
        assert len({(a["player_move"], a["bot_move"], a["nonce"]) for a in answers}) == 1  # one round was played
        for c in players:
            await c.close()

    for _ in range(3):
        asyncio.run(scenario())

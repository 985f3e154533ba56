"""kill -9 at any moment loses no answered round: restart (or move to another replica) and resume every game."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ServerProcess
from websockets.exceptions import ConnectionClosed

from clients.client import Client, ClientGame, check_result
from engine.rules import MOVE_INDEX
from storage.pgcluster import PostgresCluster

Answers = dict[str, list[dict[str, Any]]]  # game id -> the results the server answered, in order


async def _play_half_games(url: str, count: int) -> tuple[list[ClientGame], Answers]:
    rng = random.Random(5)
    clients = [await Client.open(url, rate=25) for _ in range(4)]
    games: list[ClientGame] = []
    answers: Answers = {}
    for i in range(count):
        client = clients[i % len(clients)]
        game = await client.start(("brian", "forrest", "logan")[i % 3], player=f"P{i}")
        answers[game.game_id] = []
        for _ in range(rng.randrange(0, 6)):
            played, answer, _ = await client.move(game, rng.randrange(3))
            assert played is not None
            answers[game.game_id].append(answer)
        games.append(game)
    return games, answers


async def _in_flight(url: str, game: ClientGame, answered: list[dict[str, Any]]) -> None:
    """Keep moving on `game` until the server dies under us."""
    client = await Client.open(url, rate=25)
    await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
    rng = random.Random(9)
    try:
        while game.open_round is not None:
            played, answer, _ = await client.move(game, rng.randrange(3))
            assert played is not None
            answered.append(answer)
    except ConnectionClosed:
        return


async def _kill_while_playing(server: ServerProcess, games: list[ClientGame], answers: Answers) -> None:
    task = asyncio.create_task(_in_flight(server.ws_url, games[0], answers[games[0].game_id]))
    await asyncio.sleep(0.15)
    server.kill()
    await task


async def _resume_and_finish(url: str, games: list[ClientGame], answers: Answers) -> list[dict[str, Any]]:
    """Resume every game at `url`, check that every answered round is there as answered, and finish it."""
    client = await Client.open(url, rate=25)
    states = []
    for game in games:
        state = await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
        states.append(state)
        assert state["type"] == "game", state
        answered = answers[game.game_id]
        assert state["history"][: len(answered)] == answered  # every answered round survived, unchanged
        if len(state["history"]) > len(answered):  # committed just before the kill, never answered
            assert game is games[0] and len(state["history"]) == len(answered) + 1
            late = state["history"][-1]
            check_result(game, late, MOVE_INDEX[late["player_move"]])
        if game.open_round is not None:
            assert state["next"]["commit"] == game.commit  # the same committed move after the restart
            rng = random.Random(game.game_id)
            while game.open_round is not None:
                played, answer, _ = await client.move(game, rng.randrange(3))
                assert played is not None, answer
    await client.close()
    return states


def test_kill_9_then_resume_every_game(server_factory: Callable[..., ServerProcess], tmp_path: Path) -> None:
    data_dir = tmp_path / "durable"
    server = server_factory(data_dir=data_dir)
    games, answers = asyncio.run(_play_half_games(server.ws_url, 24))
    asyncio.run(_kill_while_playing(server, games, answers))
    restarted = server_factory(data_dir=data_dir)
    states = asyncio.run(_resume_and_finish(restarted.ws_url, games, answers))
    assert len(states) == 24
    assert len(answers[games[0].game_id]) >= 1  # the kill really came in the middle of play
    assert all(g.winner is not None for g in games)


def test_kill_9_on_one_replica_then_another_finishes_every_game(
    server_factory: Callable[..., ServerProcess], postgres: PostgresCluster
) -> None:
    """Two replicas share one PostgreSQL: A dies mid-game (kill -9); B, which has never seen these games,
    rebuilds each from the database and finishes it, with no answered round lost or changed."""
    env = {"RPSQUEST_DATABASE_URL": postgres.create_database()}
    a, b = server_factory(env), server_factory(env)
    games, answers = asyncio.run(_play_half_games(a.ws_url, 24))
    asyncio.run(_kill_while_playing(a, games, answers))
    states = asyncio.run(_resume_and_finish(b.ws_url, games, answers))
    assert len(states) == 24
    assert len(answers[games[0].game_id]) >= 1
    assert all(g.winner is not None for g in games)

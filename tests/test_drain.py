"""Draining on SIGTERM (server/drain.py): the decisions alone, then a real server stopped in the middle of play."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess
from websockets.exceptions import ConnectionClosed

from clients.client import Client, ClientGame, Refused
from inference.settings import Settings, SettingsError
from server.drain import SHUTTING_DOWN, Drain

CLOSE_SERVICE_RESTART = 1012

# -- the decisions ------------------------------------------------------------------------------------------


def test_a_drain_waits_for_the_open_rounds_and_the_messages_being_answered() -> None:
    drain = Drain()
    assert not drain.draining and not drain.done
    drain.begin({"a": 3, "b": 1})
    drain.enter()
    drain.played("a", 2)  # a repeated move's stored result: round 3 is still open
    drain.played("a", 3)
    assert drain.waiting == {"b": 1}
    drain.gone(["b", "x"])
    assert not drain.done  # a message is still being answered
    drain.leave()
    assert drain.done


def test_a_game_resumed_while_draining_is_waited_for() -> None:
    drain = Drain()
    drain.resumed("a", 4)  # not draining yet: counted when the drain begins, if its connection is open
    assert drain.waiting == {}
    drain.begin({})
    assert drain.done
    drain.resumed("a", 4)
    assert not drain.done
    drain.played("a", 4)
    assert drain.done


def test_the_setting_is_checked_and_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPSQUEST_DRAIN_TIMEOUT", "-1")
    with pytest.raises(SettingsError, match="RPSQUEST_DRAIN_TIMEOUT"):
        Settings.from_env()
    monkeypatch.setenv("RPSQUEST_DRAIN_TIMEOUT", "0")
    assert Settings.from_env().drain_timeout == 0.0
    root = Path(__file__).resolve().parent.parent
    for doc in ("README.md", "docs/protocol.md"):
        assert "RPSQUEST_DRAIN_TIMEOUT" in (root / doc).read_text()
    assert SHUTTING_DOWN in (root / "docs/protocol.md").read_text()


# -- a real server ------------------------------------------------------------------------------------------


def _readyz(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(server.http_url + "/readyz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def _draining(server: ServerProcess) -> dict[str, Any]:
    """SIGTERM the server, then /readyz once the signal has been handled."""
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    for _ in range(200):
        status, body = await asyncio.to_thread(_readyz, server)
        if status != 200:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError("/readyz did not change after SIGTERM")


async def _closed_code(client: Client) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        await client.receive()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def _play_through_sigterm(server: ServerProcess) -> tuple[ClientGame, list[dict[str, Any]], int]:
    """Two rounds, SIGTERM, a refused start, the open round played: the answers and the close code."""
    player = await Client.open(server.ws_url)
    game = await player.start("brian", player="Drained")
    answers = []
    for move in (0, 1):
        played, answer, _ = await player.move(game, move)
        assert played is not None, answer
        answers.append(answer)
    assert await _draining(server) == {"status": "draining"}
    newcomer = await Client.open(server.ws_url)  # the listener is still open while draining
    with pytest.raises(Refused) as refused:
        await newcomer.start("brian")
    assert str(refused.value) == f"unavailable: {SHUTTING_DOWN}"
    played, answer, _ = await player.move(game, 2)  # the open round of a game in play is still answered
    assert played is not None, answer
    answers.append(answer)
    code = await _closed_code(player)  # that was the last open round: the drain is over
    assert await _closed_code(newcomer) == code
    return game, answers, code


async def _resume_and_finish(url: str, game: ClientGame, answers: list[dict[str, Any]]) -> None:
    client = await Client.open(url)
    state = await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
    assert state["type"] == "game", state
    assert state["history"] == answers  # every answered round was committed, as answered
    assert state["next"]["commit"] == game.commit
    while game.open_round is not None:
        played, answer, _ = await client.move(game, game.open_round % 3)
        assert played is not None, answer
    await client.close()


def test_sigterm_drains_then_another_server_finishes_the_game(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "drained"
    server = server_factory({"RPSQUEST_DRAIN_TIMEOUT": "120"}, data_dir=data_dir)
    game, answers, code = asyncio.run(_play_through_sigterm(server))
    assert code == CLOSE_SERVICE_RESTART
    assert server.process is not None
    assert server.process.wait(timeout=60) == 0
    assert "drain timeout" not in server.log.read_text()  # it ended because the open round was played
    successor = server_factory(data_dir=data_dir)  # the same database: the first one has let go of it
    asyncio.run(_resume_and_finish(successor.ws_url, game, answers))
    assert game.winner is not None


async def _idle_through_sigterm(server: ServerProcess) -> int:
    idle = await Client.open(server.ws_url)
    game = await idle.start("logan")
    played, answer, _ = await idle.move(game, 0)
    assert played is not None, answer
    assert await _draining(server) == {"status": "draining"}
    return await _closed_code(idle)  # never plays its open round: the drain timeout closes it


def test_a_drain_ends_at_its_timeout(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_DRAIN_TIMEOUT": "1"})
    assert asyncio.run(_idle_through_sigterm(server)) == CLOSE_SERVICE_RESTART
    assert server.process is not None
    assert server.process.wait(timeout=60) == 0
    assert "drain timeout: 1 open rounds were not played" in server.log.read_text()

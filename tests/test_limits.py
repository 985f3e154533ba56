"""Games stay bounded: caps on live games per connection and per process, expiry of unplayed games,
eviction of idle ones (unit tests of the session and the game service, then a real server process)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from conftest import ROOT, ServerProcess
from test_games import VERSIONS, Clock, FakePredictors, FakeStorage, expect_error, play_to_end
from websockets.asyncio.client import ClientConnection, connect

import server.games as games_module
from engine.fairplay import verify
from engine.rules import MOVE_INDEX
from inference.settings import Settings, SettingsError
from server.games import GameService
from server.session import Session

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The wall clock the game service sees."""
    fake = Clock(1_000_000.0)
    monkeypatch.setattr(games_module, "time", SimpleNamespace(time=fake.time))
    yield fake


# -- the session and the game service, without a server -----------------------------------------


def test_session_counts_the_open_games_the_process_holds() -> None:
    session = Session(rate_limit=0, max_games=2)
    session.take("a")
    session.take("b")
    assert not session.has_room({"a", "b"})
    assert session.has_room({"a"})  # b ended or left memory: its slot is free
    session.take("c")
    session.take("done", playing=False)  # a finished game resumed: may be replayed, does not count
    assert session.owned == {"a", "b", "c", "done"}
    assert not session.has_room({"a", "c", "done"})


def test_service_refuses_starts_at_its_cap_and_serves_loaded_games_beyond_it(clock: Clock) -> None:
    storage = FakeStorage()
    service = GameService(storage, max_live=2, idle=300.0)

    async def scenario() -> None:
        old = await service.start("brian", None, None)
        await service.move(old.game_id, 1, "rock")
        clock.now += 301
        await service.sweep(clock.now)  # idle: leaves memory, stays in the database
        assert service.live == {}
        first = await service.start("brian", None, None)
        await service.start("logan", None, None)
        refused = await expect_error("too_many_games", service.start("forrest", None, None))
        assert refused.game_id is None and len(storage.games) == 3
        # A game in the database is still served while memory is full, without being kept there.
        resumed = await service.resume(old.game_id, old.token or "")
        result = await service.move(old.game_id, 2, "paper")
        assert resumed.next is not None and result.round == 2 and old.game_id not in service.live
        assert len(storage.games[old.game_id].rounds) == 2
        await play_to_end(service, first)  # a finished game frees its place
        await service.start("forrest", None, None)

    run(scenario())


def test_an_evicted_game_gets_the_shadows_of_its_open_round_again(clock: Clock) -> None:
    storage, predictors = FakeStorage(), FakePredictors()
    service = GameService(storage, predictors, ab_split=0.0)

    async def scenario() -> str:
        game = await service.start("brian", None, None)
        for n in range(1, 5):
            await service.move(game.game_id, n, "rock")
            await asyncio.sleep(0)  # round 5 is decided with the model, its shadows predicted at the end of the turn
        service.live.clear()  # evicted between the decision and the move
        await service.move(game.game_id, 5, "rock")
        return game.game_id

    fifth = storage.games[run(scenario())].rounds[4].decision
    assert set(fifth.models) == set(VERSIONS)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RPSQUEST_MAX_GAMES_PER_CONNECTION", "0"),
        ("RPSQUEST_MAX_LIVE_GAMES", "-1"),
        ("RPSQUEST_MAX_LIVE_GAMES", "many"),
        ("RPSQUEST_GAME_IDLE", "0"),
        ("RPSQUEST_GAME_IDLE", "3600"),
    ],
)
def test_unusable_limits_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env()


# -- a real server ------------------------------------------------------------------------------------


async def _open(server: ServerProcess) -> ClientConnection:
    connection = await connect(server.ws_url, compression=None)
    assert json.loads(await connection.recv())["type"] == "welcome"
    return connection


async def _ask(connection: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await connection.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(await connection.recv())
    return answer


async def _start(connection: ClientConnection) -> dict[str, Any]:
    return await _ask(connection, {"type": "start", "opponent": "logan", "tag": "sim"})


async def _finish(connection: ClientConnection, game: dict[str, Any]) -> None:
    step = game["next"]
    while step is not None:
        answer = await _ask(connection, {"type": "move", "game_id": game["game_id"], "round": step["round"],
                                         "move": "paper"})  # fmt: skip
        assert answer["type"] == "result", answer
        step = answer["next"]


def _metric(server: ServerProcess, line_start: str) -> float:
    with urllib.request.urlopen(server.http_url + "/metrics") as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(line_start))


def _wait_for(server: ServerProcess, line_start: str, at_least: float, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _metric(server, line_start) < at_least:
        assert time.monotonic() < deadline, f"{line_start} stayed below {at_least}"
        time.sleep(0.2)


def test_the_error_code_is_documented() -> None:
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    assert "| `too_many_games` |" in protocol
    for variable in ("RPSQUEST_MAX_GAMES_PER_CONNECTION", "RPSQUEST_MAX_LIVE_GAMES", "RPSQUEST_GAME_IDLE"):
        assert f"| `{variable}` |" in protocol
        assert variable in (ROOT / "README.md").read_text()


def test_5000_starts_on_one_connection_are_capped(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_MAX_GAMES_PER_CONNECTION": "3"})
    starts = 5000

    async def scenario() -> None:
        connection = await _open(server)

        async def send_all() -> None:
            for _ in range(starts):
                await connection.send('{"type":"start","opponent":"brian","tag":"sim"}')

        sent = asyncio.create_task(send_all())
        answers = [json.loads(await connection.recv()) for _ in range(starts)]
        await sent
        assert [a["type"] for a in answers[:3]] == ["game"] * 3
        refusals = answers[3:]
        assert {a["type"] for a in refusals} == {"error"}
        assert {a["code"] for a in refusals} == {"too_many_games"}
        assert not any("game_id" in a for a in refusals)
        first, second, third = answers[:3]

        # Still open, and not a bad-message run: the games play on; a finished one frees a slot.
        other = await _open(server)
        elsewhere = await _start(other)  # the cap is the connection's own
        assert elsewhere["type"] == "game"
        await _finish(connection, first)
        fourth = await _start(connection)
        assert fourth["type"] == "game"
        assert (await _start(connection))["code"] == "too_many_games"
        # Resuming an open game takes a slot too; a finished one does not.
        take_over = {"type": "resume", "game_id": elsewhere["game_id"], "token": elsewhere["token"]}
        taken = await _ask(connection, take_over)
        assert (taken["code"], taken["game_id"]) == ("too_many_games", elsewhere["game_id"])
        replay = await _ask(connection, {"type": "resume", "game_id": first["game_id"], "token": first["token"]})
        assert replay["type"] == "game" and replay["over"]
        await _finish(connection, second)
        resumed = await _ask(
            connection, {"type": "resume", "game_id": elsewhere["game_id"], "token": elsewhere["token"]}
        )
        assert resumed["type"] == "game"
        played = await _ask(connection, {"type": "move", "game_id": third["game_id"], "round": 1, "move": "rock"})
        assert played["type"] == "result"
        await connection.close()
        await other.close()

    run(scenario())
    assert _metric(server, 'rpsquest_games_refused_total{cap="connection"}') == starts - 3 + 2
    assert _metric(server, 'rpsquest_ws_errors_total{code="too_many_games"}') == starts - 3 + 2


def test_the_process_caps_its_live_games(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory(
        {"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_MAX_GAMES_PER_CONNECTION": "3", "RPSQUEST_MAX_LIVE_GAMES": "4"}
    )

    async def scenario() -> None:
        one, two, three = await _open(server), await _open(server), await _open(server)
        games = [await _start(one) for _ in range(3)] + [await _start(two)]
        assert [g["type"] for g in games] == ["game"] * 4
        for connection in (two, three):  # below their own cap, but the process holds 4
            refused = await _start(connection)
            assert refused["code"] == "too_many_games" and "game_id" not in refused
        played = await _ask(one, {"type": "move", "game_id": games[0]["game_id"], "round": 1, "move": "rock"})
        assert played["type"] == "result"  # games already started play on
        await _finish(two, games[3])
        assert (await _start(three))["type"] == "game"
        for connection in (one, two, three):
            await connection.close()

    run(scenario())
    assert _metric(server, 'rpsquest_games_refused_total{cap="server"}') == 2


def test_unplayed_games_expire_and_idle_games_resume_after_eviction(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory(
        {"RPSQUEST_RATE_LIMIT": "0", "RPSQUEST_MAX_GAMES_PER_CONNECTION": "2", "RPSQUEST_GAME_IDLE": "2"}
    )

    async def scenario() -> None:
        connection = await _open(server)
        unplayed = await _start(connection)
        kept = await _start(connection)
        first = await _ask(connection, {"type": "move", "game_id": kept["game_id"], "round": 1, "move": "rock"})
        assert first["type"] == "result"
        assert (await _start(connection))["code"] == "too_many_games"

        await asyncio.to_thread(_wait_for, server, "rpsquest_games_expired_total", 1)
        await asyncio.to_thread(_wait_for, server, "rpsquest_games_evicted_total", 1)
        # The unplayed game is gone everywhere; the played one was only dropped from memory.
        gone = await _ask(connection, {"type": "move", "game_id": unplayed["game_id"], "round": 1, "move": "rock"})
        assert gone["code"] == "unknown_game"
        other = await _open(server)
        gone = await _ask(other, {"type": "resume", "game_id": unplayed["game_id"], "token": unplayed["token"]})
        assert gone["code"] == "unknown_game"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{server.http_url}/api/games/{unplayed['game_id']}")
        assert missing.value.code == 404
        assert [(await _start(connection))["type"] for _ in range(2)] == ["game", "game"]  # both slots are free

        second = await _ask(connection, {"type": "move", "game_id": kept["game_id"], "round": 2, "move": "paper"})
        assert second["type"] == "result" and second["round"] == 2
        opened = first["next"]
        assert verify(kept["game_id"], 2, MOVE_INDEX[second["bot_move"]], second["nonce"], opened["commit"])
        resumed = await _ask(other, {"type": "resume", "game_id": kept["game_id"], "token": kept["token"]})
        assert resumed["history"] == [first, second] and resumed["next"] == second["next"]
        with urllib.request.urlopen(f"{server.http_url}/api/games/{kept['game_id']}") as response:
            record = json.loads(response.read())
        assert len(record["rounds"]) == 2 and not record["abandoned"]
        await connection.close()
        await other.close()

    run(scenario())

"""The WebSocket protocol against a real server process over real WebSockets (games and resumes on each
storage backend)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from conftest import ServerProcess
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients.client import Client, ClientGame
from engine.fairplay import verify
from engine.rules import MOVE_INDEX, MOVES

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def raw(url: str) -> ClientConnection:
    connection = await connect(url, compression=None)
    welcome = json.loads(await connection.recv())
    assert welcome["type"] == "welcome"
    return connection


async def ask(connection: ClientConnection, message: dict[str, Any] | str) -> dict[str, Any]:
    await connection.send(message if isinstance(message, str) else json.dumps(message))
    answer: dict[str, Any] = json.loads(await connection.recv())
    return answer


async def play_to_end(client: Client, game: ClientGame, seed: int = 0) -> None:
    rng = random.Random(seed)
    while game.open_round is not None:
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer


def test_welcome_lists_the_three_opponents(live_server: ServerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        connection = await connect(live_server.ws_url)
        welcome: dict[str, Any] = json.loads(await connection.recv())
        await connection.close()
        return welcome

    welcome = run(scenario())
    assert welcome == {
        "type": "welcome",
        "protocol": 1,
        "opponents": [
            {"id": "brian", "name": "Brian", "family": "mlp"},
            {"id": "forrest", "name": "Forrest", "family": "xgboost"},
            {"id": "logan", "name": "Logan", "family": "logistic"},
        ],
    }


def test_whole_game_follows_the_rules(any_server: ServerProcess) -> None:
    async def scenario() -> ClientGame:
        client = await Client.open(any_server.ws_url)
        game = await client.start("brian", player="Ann", tag="sim")
        await play_to_end(client, game)
        await client.close()
        return game

    game = run(scenario())  # every answer is checked by the client against the rules
    assert game.winner in ("player", "bot", "tie")
    assert 5 <= len(game.rounds) <= 20
    assert game.final is not None and game.final["next"] is None
    insight = game.final["insight"]
    assert insight["alias"] in ("Production", "B") and insight["version"]


def test_insight_is_blind_until_the_last_round(live_server: ServerProcess) -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = await Client.open(live_server.ws_url)
        game = await client.start("logan")
        answers = []
        while game.open_round is not None:
            _, answer, _ = await client.move(game, MOVE_INDEX["paper"])
            answers.append(answer)
        await client.close()
        return answers

    answers = run(scenario())
    for answer in answers:
        insight = answer["insight"]
        assert insight["family"] == "logistic"
        assert abs(sum(insight["probs"].values()) - 1.0) < 1e-3
        assert set(insight["ev"]) == set(MOVES)
        assert ("alias" in insight) == answer["over"] and ("version" in insight) == answer["over"]
    # rounds 1-3 are the in-game predictor's alone (the models start at round 4), later rounds the blend
    assert [a["insight"]["source"] for a in answers[:3]] == ["online"] * 3
    assert {a["insight"]["source"] for a in answers[3:]} == {"model"}


def test_start_errors(live_server: ServerProcess) -> None:
    async def scenario() -> list[dict[str, Any]]:
        connection = await raw(live_server.ws_url)
        answers = [
            await ask(connection, {"type": "start", "opponent": "zed"}),
            await ask(connection, {"type": "start", "opponent": "brian", "player": "<b>bold</b>"}),
            await ask(connection, {"type": "start", "opponent": "brian", "player": ""}),
            await ask(connection, {"type": "start", "opponent": "brian", "player": "x" * 25}),
            await ask(connection, {"type": "start", "opponent": "brian", "player": "   "}),
            await ask(connection, {"type": "start", "opponent": "brian", "tag": "human"}),
            await ask(connection, {"type": "start", "opponent": "brian", "player": "Zoë_2 -x"}),
            await ask(connection, {"type": "start", "opponent": "brian", "key": "x" * 15}),
            await ask(connection, {"type": "start", "opponent": "brian", "key": "x" * 65}),
            await ask(connection, {"type": "start", "opponent": "brian", "key": "a/b+c=" * 4}),
            await ask(connection, {"type": "start", "opponent": "brian", "key": 12345678901234567}),
            await ask(connection, {"type": "start", "opponent": "brian", "key": "Zz09_-" * 3}),
        ]
        await connection.close()
        return answers

    answers = run(scenario())
    assert answers[0]["type"] == "error" and answers[0]["code"] == "unknown_opponent"
    assert [a["code"] for a in answers[1:6]] == ["bad_message"] * 5
    assert answers[6]["type"] == "game" and "remembered" not in answers[6]
    assert [a["code"] for a in answers[7:11]] == ["bad_message"] * 4
    assert answers[11]["type"] == "game" and answers[11]["remembered"] == 0


def test_bad_frames_get_errors_and_change_nothing(live_server: ServerProcess) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        connection = await raw(live_server.ws_url)
        game = await ask(connection, {"type": "start", "opponent": "forrest"})
        game_id = game["game_id"]
        answers = [
            await ask(connection, "{not json"),
            await ask(connection, "[1, 2]"),
            await ask(connection, {"type": "dance"}),
            await ask(connection, {"opponent": "brian"}),
            await ask(connection, {"type": "move", "game_id": game_id, "round": 1, "move": "lizard"}),
            await ask(connection, {"type": "move", "game_id": game_id, "round": 0, "move": "rock"}),
            await ask(connection, {"type": "move", "game_id": game_id, "move": "rock"}),
            await ask(connection, {"type": "move", "game_id": game_id, "round": 2, "move": "rock"}),
            await ask(connection, {"type": "move", "game_id": "nope", "round": 1, "move": "rock"}),
        ]
        await connection.send(b'{"type":"start","opponent":"brian"}')
        answers.append(json.loads(await connection.recv()))
        resumed = await ask(connection, {"type": "resume", "game_id": game_id, "token": game["token"]})
        await connection.close()
        return answers, {"game": game, "resumed": resumed}

    answers, games = run(scenario())
    codes = [a["code"] for a in answers]
    assert codes == [
        "bad_json",
        "bad_message",
        "bad_message",
        "bad_message",
        "bad_message",
        "bad_message",
        "bad_message",
        "wrong_round",
        "unknown_game",
        "bad_message",
    ]
    assert all(a["type"] == "error" and a["message"] for a in answers)
    assert answers[7]["game_id"] == games["game"]["game_id"]
    assert games["resumed"]["history"] == [] and games["resumed"]["next"] == games["game"]["next"]


def test_retry_returns_the_stored_result(any_server: ServerProcess) -> None:
    async def scenario() -> tuple[str, str, str, dict[str, Any]]:
        connection = await raw(any_server.ws_url)
        game = await ask(connection, {"type": "start", "opponent": "brian"})
        move = {"type": "move", "game_id": game["game_id"], "round": 1, "move": "rock"}
        await connection.send(json.dumps(move))
        first = str(await connection.recv())
        await connection.send(json.dumps(move))
        again = str(await connection.recv())
        await connection.send(json.dumps({**move, "move": "scissors"}))
        other = str(await connection.recv())
        state = await ask(connection, {"type": "resume", "game_id": game["game_id"], "token": game["token"]})
        await connection.close()
        return first, again, other, state

    first, again, other, state = run(scenario())
    assert first == again == other
    assert len(state["history"]) == 1 and state["next"]["round"] == 2
    assert state["score"] == json.loads(first)["score"]


def test_resume_from_another_connection_and_ownership(any_server: ServerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        a = await Client.open(any_server.ws_url)
        game = await a.start("forrest")
        results = []
        for choice in (0, 1, 2):
            _, answer, _ = await a.move(game, choice)
            results.append(answer)
        b = await raw(any_server.ws_url)
        out: dict[str, Any] = {}
        move = {"type": "move", "game_id": game.game_id, "round": game.open_round, "move": "rock"}
        out["not_yours"] = await ask(b, move)
        out["bad_token"] = await ask(b, {"type": "resume", "game_id": game.game_id, "token": "wrong"})
        out["unknown"] = await ask(b, {"type": "resume", "game_id": "nope", "token": "x"})
        out["resumed"] = await ask(b, {"type": "resume", "game_id": game.game_id, "token": game.token})
        out["moved"] = await ask(b, move)
        out["results"] = results
        out["commit"] = game.commit
        out["first_again"] = await a.request({**move, "round": game.open_round})  # A still owns it: a retry
        await a.close()
        await b.close()
        return out

    out = run(scenario())
    assert out["not_yours"]["code"] == "not_yours"
    assert out["bad_token"]["code"] == "bad_token"
    assert out["unknown"]["code"] == "unknown_game"
    resumed = out["resumed"]
    assert resumed["type"] == "game" and "token" not in resumed
    assert resumed["history"] == out["results"]
    assert resumed["next"]["round"] == 4 and resumed["next"]["commit"] == out["commit"]
    moved = out["moved"]
    assert moved["type"] == "result" and moved["round"] == 4
    assert verify(moved["game_id"], 4, MOVE_INDEX[moved["bot_move"]], moved["nonce"], out["commit"])
    assert out["first_again"] == moved


def test_finished_game_refuses_moves_but_replays_results(any_server: ServerProcess) -> None:
    async def scenario() -> tuple[ClientGame, dict[str, Any], dict[str, Any], dict[str, Any]]:
        client = await Client.open(any_server.ws_url)
        game = await client.start("logan")
        await play_to_end(client, game, seed=3)
        last = len(game.rounds)
        over = await client.request({"type": "move", "game_id": game.game_id, "round": last + 1, "move": "rock"})
        replay = await client.request({"type": "move", "game_id": game.game_id, "round": last, "move": "rock"})
        resumed = await client.request({"type": "resume", "game_id": game.game_id, "token": game.token})
        await client.close()
        return game, over, replay, resumed

    game, over, replay, resumed = run(scenario())
    assert over["code"] == "game_over"
    assert replay == game.final
    assert resumed["over"] is True and resumed["next"] is None and resumed["winner"] == game.winner
    assert len(resumed["history"]) == len(game.rounds)


def test_twenty_bad_messages_close_with_1008(live_server: ServerProcess) -> None:
    async def scenario() -> tuple[int, int | None]:
        connection = await raw(live_server.ws_url)
        for _ in range(19):
            assert (await ask(connection, "nope"))["code"] == "bad_json"
        assert (await ask(connection, {"type": "start", "opponent": "brian"}))["type"] == "game"  # resets the run
        answered = 0
        try:
            for _ in range(25):
                await ask(connection, "nope")
                answered += 1
        except ConnectionClosed:
            pass
        await connection.wait_closed()
        return answered, connection.close_code

    answered, code = run(scenario())
    assert answered == 20
    assert code == 1008


def test_oversize_frame_closes_with_1009(live_server: ServerProcess) -> None:
    async def scenario() -> int | None:
        connection = await raw(live_server.ws_url)
        await connection.send(json.dumps({"type": "start", "opponent": "brian", "player": "x" * 5000}))
        with pytest.raises(ConnectionClosed):
            await connection.recv()
        return connection.close_code

    assert run(scenario()) == 1009


def test_frame_of_exactly_4_kib_is_accepted(live_server: ServerProcess) -> None:
    async def scenario() -> dict[str, Any]:
        connection = await raw(live_server.ws_url)
        message = json.dumps({"type": "start", "opponent": "brian", "pad": ""})
        padded = message.replace('"pad": ""', '"pad": "' + "x" * (4096 - len(message)) + '"')
        assert len(padded.encode()) == 4096
        answer = await ask(connection, padded)
        await connection.close()
        return answer

    assert run(scenario())["type"] == "game"


def test_rate_limit(live_server: ServerProcess) -> None:
    async def scenario() -> list[dict[str, Any]]:
        connection = await raw(live_server.ws_url)
        game = await ask(connection, {"type": "start", "opponent": "brian"})
        resume = json.dumps({"type": "resume", "game_id": game["game_id"], "token": game["token"]})
        for _ in range(40):
            await connection.send(resume)
        answers = [json.loads(await connection.recv()) for _ in range(40)]
        await connection.close()
        return answers

    answers = run(scenario())  # 41 messages well within a second: 30 are served
    assert [a["type"] for a in answers[:29]] == ["game"] * 29
    assert [a.get("code") for a in answers[29:]] == ["rate_limited"] * 11


def test_idle_connection_is_closed(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_IDLE_TIMEOUT": "1.5"})

    async def scenario() -> tuple[int | None, bool]:
        # A peer that never answers pings: its connection is closed within the idle timeout.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)  # until the server closes the socket
        writer.close()
        close_at = data.rfind(b"\x88")
        code = int.from_bytes(data[close_at + 2 : close_at + 4], "big") if close_at >= 0 else None
        # A live peer (answering pings) stays open through the same time.
        connection = await raw(server.ws_url)
        await asyncio.sleep(3.0)
        answer = await ask(connection, {"type": "start", "opponent": "brian"})
        await connection.close()
        return code, answer["type"] == "game"

    code, alive = run(scenario())
    assert code == 1011
    assert alive


async def _pings_while(url: str, talk: bool, seconds: float) -> int:
    """Pings a sans-I/O client received (and answered) in `seconds`, sending a message every 0.2 s if `talk`."""
    from websockets.client import ClientProtocol
    from websockets.frames import Opcode
    from websockets.uri import parse_uri

    uri = parse_uri(url)
    protocol = ClientProtocol(uri)
    reader, writer = await asyncio.open_connection(uri.host, uri.port)
    protocol.send_request(protocol.connect())
    pings = 0

    async def pump() -> None:
        nonlocal pings
        while data := await reader.read(65536):
            protocol.receive_data(data)
            pings += sum(1 for e in protocol.events_received() if getattr(e, "opcode", None) == Opcode.PING)
            writer.write(b"".join(protocol.data_to_send()))  # the pongs

    pumping = asyncio.create_task(pump())
    writer.write(b"".join(protocol.data_to_send()))
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        await asyncio.sleep(0.2)
        if talk:
            protocol.send_text(json.dumps({"type": "start", "opponent": "logan"}).encode())
            writer.write(b"".join(protocol.data_to_send()))
    pumping.cancel()
    writer.close()
    return pings


def test_only_quiet_connections_are_pinged(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_IDLE_TIMEOUT": "1.5"})  # a ping every 0.5 s of quiet

    async def scenario() -> tuple[int, int]:
        return await asyncio.gather(_pings_while(server.ws_url, False, 2.5), _pings_while(server.ws_url, True, 2.5))

    quiet, talking = run(scenario())
    assert quiet >= 3
    assert talking == 0


def test_simulated_run_of_1000_games_has_no_protocol_errors(live_server: ServerProcess) -> None:
    from clients.simulate import simulate

    report = run(simulate(live_server.ws_url, games=1000, concurrency=64, seed=11))
    assert report.violations == []
    assert dict(report.errors) == {}
    assert report.games == 1000
    assert sum(report.winners.values()) == 1000

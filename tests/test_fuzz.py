"""Hostile clients against a real server: every frame and body gets its documented answer, never `internal`.

The strategies and oracles are in fuzzing.py. Runs are derandomized (the same frames every run) and
bounded: about 10,500 WebSocket frames and 1,500 /api/predict bodies.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess
from fuzzing import (
    MAX_BAD_IN_ROW,
    MOVES,
    PREDICT_MAX_BODY,
    Connection,
    Expect,
    Frame,
    GameState,
    Resolver,
    WsOracle,
    frames,
    parse_json,
    predict_bodies,
    predict_status,
    weighted,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from clients.client import Client
from server.messages import BadMessage, decode

TOKEN = "fuzz-admin-token"
MAX_GAMES = 3  # games in play per connection: low, so that the fuzz reaches the cap
WS_BATCHES, FRAMES_PER_BATCH = 250, 42
PREDICT_BATCHES, BODIES_PER_BATCH = 60, 25


def fuzz_settings(batches: int) -> settings:
    """Reproducible and bounded: fixed draws, no deadline, no example database, no shrinking."""
    return settings(
        max_examples=batches,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, trained_store: Path) -> Iterator[ServerProcess]:
    """One server for the module: no rate limit, an admin token, a low cap on games per connection."""
    env = {
        "RPSQUEST_RATE_LIMIT": "0",
        "RPSQUEST_ADMIN_TOKEN": TOKEN,
        "RPSQUEST_MAX_GAMES_PER_CONNECTION": str(MAX_GAMES),
    }
    process = ServerProcess(tmp_path_factory.mktemp("fuzz"), env, trained_store)
    process.start()
    yield process
    process.stop()


def assert_no_server_fault(server: ServerProcess) -> None:
    """The log holds no traceback and no internal error, and no `internal` answer was counted."""
    log = server.log.read_text()
    assert "Traceback" not in log and "internal" not in log, log[-3000:]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    assert 'code="internal"' not in conn.getresponse().read().decode()
    conn.close()


# -- WebSocket -------------------------------------------------------------------------------------------------


@dataclass
class World:
    """Every game the fuzz knows of (the server's view of them) and what was sent and expected."""

    games: dict[str, GameState]
    done: str
    sent: int = 0
    seen: Counter[Expect] = field(default_factory=Counter)


async def _open(url: str) -> tuple[ClientConnection, Connection]:
    ws = await connect(url, compression=None, open_timeout=10)
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
    return ws, Connection()


async def _closed(ws: ClientConnection, what: str) -> int | None:
    """The close code the server sends next (any other message fails the test)."""
    try:
        extra = await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed:
        return ws.close_code
    raise AssertionError(f"{what}: expected a close, got {extra!r:.300}")


def _learn(world: World, connection: Connection, answer: dict[str, Any]) -> None:
    """Update the known state from a successful answer."""
    game_id = answer["game_id"]
    if answer["type"] == "game":
        if "token" in answer:  # a start
            world.games[game_id] = GameState(answer["token"], 0, answer["next"]["round"])
        connection.owned.add(game_id)
        if world.games[game_id].open is not None:
            connection.playing.add(game_id)
        return
    game = world.games[game_id]
    if answer["round"] == game.open:  # played now, not a stored result sent again
        game.played += 1
        game.open = answer["next"]["round"] if answer["next"] else None


async def fuzz_batch(url: str, world: World, batch: list[Frame]) -> None:
    oracle = WsOracle(world.games, MAX_GAMES)
    ws, connection = await _open(url)
    for frame in batch:
        data, text = Resolver(world.games, world.done, connection).wire(frame)
        expected = oracle.expect(connection, data, text)
        what = f"frame {data!r:.300} (text={text})"
        await ws.send(data, text=text)
        world.sent += 1
        world.seen[expected] += 1
        if isinstance(expected, int):
            assert await _closed(ws, what) == expected, what
            ws, connection = await _open(url)
            continue
        answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if expected in ("game", "result"):
            assert answer["type"] == expected, f"{what}: expected {expected}, got {answer}"
            _learn(world, connection, answer)
            connection.bad_in_row = 0
            continue
        assert answer["type"] == "error" and answer["code"] == expected and answer["message"], (
            f"{what}: expected {expected}, got {answer}"
        )
        if expected == "too_many_games":  # a cap's refusal is not a bad message
            continue
        connection.bad_in_row += 1
        if connection.bad_in_row == MAX_BAD_IN_ROW:
            assert await _closed(ws, what) == 1008
            world.seen[1008] += 1
            ws, connection = await _open(url)
    await ws.close()


async def _play(url: str, seed: int) -> tuple[str, str, int]:
    """A whole game by the checking client: (id, token, rounds)."""
    client = await Client.open(url)
    game = await client.start("forrest", tag="loadtest")
    rng = random.Random(seed)
    while game.open_round is not None:
        played, answer, _ = await client.move(game, rng.randrange(3))
        assert played is not None, answer
    await client.close()
    assert game.token is not None and game.winner is not None
    return game.game_id, game.token, len(game.rounds)


async def _open_game(url: str) -> tuple[str, str]:
    client = await Client.open(url)
    game = await client.start("brian", tag="loadtest")
    await client.close()
    assert game.token is not None
    return game.game_id, game.token


def test_hostile_frames_get_their_documented_answers(server: ServerProcess) -> None:
    done, done_token, rounds = asyncio.run(_play(server.ws_url, seed=1))
    other, other_token = asyncio.run(_open_game(server.ws_url))
    world = World({done: GameState(done_token, rounds, None), other: GameState(other_token, 0, 1)}, done)

    @fuzz_settings(WS_BATCHES)
    @given(st.lists(frames, min_size=FRAMES_PER_BATCH, max_size=FRAMES_PER_BATCH))
    def fuzz(batch: list[Frame]) -> None:
        asyncio.run(fuzz_batch(server.ws_url, world, batch))

    fuzz()
    assert world.sent >= 10_000
    documented = {"bad_json", "bad_message", "unknown_opponent", "unknown_game", "bad_token", "not_yours",
                  "wrong_round", "game_over", "too_many_games", "game", "result", 1007, 1008, 1009}  # fmt: skip
    assert documented <= set(world.seen), world.seen  # every path was taken
    assert asyncio.run(_play(server.ws_url, seed=2))[2] > 0  # a normal game still plays to the end
    assert_no_server_fault(server)


@pytest.mark.parametrize(
    "text",
    ["[1", "[1, 2]", '{"type":"move","round":0, x', '{"type":"start","opponent":"brian","x":1e999}', "1e999",
     '{"type":"start","x":"\\ud800"}', "[" * 1200, '{"a":' * 1000 + "1" + "}" * 1000, '"\\u0000"', "\ufeff{}"],
)  # fmt: skip
def test_decode_calls_text_bad_json_exactly_when_it_is_not_json(text: str) -> None:
    try:
        decode(text)
        code = "ok"
    except BadMessage as exc:
        code = exc.code
    assert (code == "bad_json") == (not parse_json(text)[0])


def test_deeply_nested_frame_is_bad_json_and_the_connection_goes_on(server: ServerProcess) -> None:
    async def scenario() -> list[dict[str, Any]]:
        ws, _ = await _open(server.ws_url)
        answers = []
        deep = "[" * 1500 + "]" * 1500
        for frame in ("[" * 2000 + "]" * 2000, '{"type":"start","opponent":"brian","x":' + deep + "}",
                      '{"type":"start","opponent":"brian"}'):  # fmt: skip
            await ws.send(frame)
            answers.append(json.loads(await ws.recv()))
        await ws.close()
        return answers

    answers = asyncio.run(scenario())
    assert [a.get("code") for a in answers[:2]] == ["bad_json", "bad_json"] and answers[2]["type"] == "game"
    assert_no_server_fault(server)


# -- /api/predict ----------------------------------------------------------------------------------------------


class Admin:
    """A keep-alive HTTP connection that reconnects when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def predict(self, body: bytes, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            try:
                self.conn.request("POST", "/api/predict", body, headers)
                response = self.conn.getresponse()
                raw = response.read()
                answer: dict[str, Any] = json.loads(raw) if parse_json(raw)[0] else {"not JSON": raw[:200]}
                if response.getheader("connection", "").lower() == "close":
                    self.conn.close()
                return response.status, answer
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def check_predict(status: int, answer: dict[str, Any], expected: int, what: str) -> None:
    assert status == expected, f"{what}: expected {expected}, got {status} {answer}"
    if status == 200:
        assert answer["bot_move"] in MOVES and abs(sum(answer["probs"].values()) - 1) < 1e-4, what
    else:
        assert answer["error"] == ("bad_request" if status == 400 else "forbidden") and answer["message"], what


def test_hostile_predict_bodies_get_400_never_500(server: ServerProcess) -> None:
    admin = Admin(server.port)
    seen: Counter[int] = Counter()
    tokens = weighted((9, st.just(TOKEN)), (1, st.sampled_from((None, "wrong", TOKEN + "x"))))

    @fuzz_settings(PREDICT_BATCHES)
    @given(st.lists(st.tuples(predict_bodies, tokens), min_size=BODIES_PER_BATCH, max_size=BODIES_PER_BATCH))
    def fuzz(batch: list[tuple[bytes, str | None]]) -> None:
        for body, token in batch:
            expected = predict_status(body) if token == TOKEN else 403
            status, answer = admin.predict(body, token)
            check_predict(status, answer, expected, f"body {body!r:.300}")
            seen[status] += 1

    fuzz()
    assert sum(seen.values()) >= 1_500 and seen[200] >= 100 and seen[400] >= 500 and seen[403] >= 50, seen
    assert_no_server_fault(server)


def _draws(n: int) -> list[dict[str, str]]:
    return [{"player": "rock", "bot": "rock"}] * n


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"family": "mlp", "history": [], "values": {"rock": 2.0, "paper": 2.0, "scissors": 2.0}}, 400),
        ({"family": "mlp", "history": [], "values": {"rock": 1.0, "paper": 1.5, "scissors": 2.0}}, 200),
        ({"family": "mlp", "history": [], "values": {"rock": 1.0, "paper": 2.0, "scissors": 1.5}}, 400),
        ({"family": "mlp", "history": [], "values": {"rock": 1.0, "paper": 1.55, "scissors": 2.05}}, 400),
        ({"family": "mlp", "history": _draws(19)}, 200),  # 9.5 : 9.5, round 20 is open
        ({"family": "mlp", "history": _draws(20)}, 400),  # longer than any game
        ({"family": "mlp", "history": [{"player": "paper", "bot": "rock"}] * 10}, 400),  # 10.0: over
        ({"family": "mlp", "history": [{"player": "paper", "bot": "rock"}] * 11}, 400),  # goes on after the end
        ({"family": "mlp", "history": [], "score": {"player": 9.9, "bot": 0}}, 200),
        ({"family": "mlp", "history": [], "score": {"player": 10.0, "bot": 0}}, 400),
        ({"family": "mlp", "history": [], "score": {"player": 1.25, "bot": 0}}, 400),
        ({"family": "mlp", "history": [], "score": {"player": -0.1, "bot": 0}}, 400),
        ({"family": "mlp", "alias": "C", "history": []}, 400),
        ({"family": "svm", "history": []}, 400),
    ],
)
def test_predict_bounds(server: ServerProcess, body: dict[str, Any], status: int) -> None:
    raw = json.dumps(body).encode()
    assert predict_status(raw) == status  # the oracle agrees with the table
    check_predict(*Admin(server.port).predict(raw), status, str(body))


def test_predict_body_size_bound(server: ServerProcess) -> None:
    admin = Admin(server.port)
    for size, status in ((PREDICT_MAX_BODY, 200), (PREDICT_MAX_BODY + 1, 400), (4 * 1024 * 1024, 400)):
        body = b'{"family":"mlp","history":[]' + b" " * (size - 29) + b"}"
        assert len(body) == size
        check_predict(*admin.predict(body), status, f"{size} bytes")
    assert_no_server_fault(server)

"""A checking client of the WebSocket protocol: simulated players, the load tester and tests use it.

Every answer is checked against the rules (round values, the commitment, outcome,
points, score, end of game); what does not match is recorded as a violation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from clients.connection import Connection, UnexpectedFrame
from engine.fairplay import verify
from engine.rules import MOVE_INDEX, MOVES, OUTCOMES, Round, Values, outcome, points, round_values, winner

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class ProtocolViolation(Exception):
    """The server answered something the protocol or the rules do not allow."""


class Refused(Exception):
    """The server answered a request with an error; `code` is protocol.md's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


RETRY_CODES = frozenset(("rate_limited", "unavailable"))  # errors worth trying again after a pause


@dataclass
class ClientGame:
    """What a client knows of one game it plays."""

    game_id: str
    token: str | None
    opponent: str
    rounds: list[Round] = field(default_factory=list)
    open_round: int | None = 1
    commit: str | None = None
    winner: str | None = None
    final: dict[str, Any] | None = None

    @property
    def score(self) -> tuple[int, int]:
        return (self.rounds[-1].score_player, self.rounds[-1].score_bot) if self.rounds else (0, 0)

    def values(self) -> Values:
        """The open round's values."""
        assert self.open_round is not None
        return round_values(self.game_id, self.open_round)


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise ProtocolViolation(what)


# The checks of a round run for every answer of a load test: they test plainly and build a message only on failure.


def check_open_round(game: ClientGame, info: dict[str, Any] | None) -> None:
    """Check a `next` object and remember its commitment."""
    if info is None:
        _check(game.winner is not None, "next is null but the game is not over")
        game.open_round = None
        game.commit = None
        return
    n = info["round"]
    if n != len(game.rounds) + 1:
        raise ProtocolViolation(f"next round {n} after {len(game.rounds)} rounds")
    given = info["values"]
    values = (round(given["rock"] * 10), round(given["paper"] * 10), round(given["scissors"] * 10))
    if values != round_values(game.game_id, n):
        raise ProtocolViolation(f"round {n} values {values} break the rules")
    commit = info["commit"]
    _check(isinstance(commit, str) and len(commit) == 64, "commit is not 64 hex digits")
    game.open_round = n
    game.commit = commit


def check_result(game: ClientGame, result: dict[str, Any], player_move: int) -> Round:
    """Check a fresh `result` for the open round and add the round to `game`."""
    n = result["round"]
    _check(result["type"] == "result" and result["game_id"] == game.game_id, "not this game's result")
    if n != game.open_round:
        raise ProtocolViolation(f"result for round {n}, open was {game.open_round}")
    _check(result["player_move"] == MOVES[player_move], "the result names another player move")
    bot = MOVE_INDEX[result["bot_move"]]
    nonce = result["nonce"]
    assert game.commit is not None
    if not verify(game.game_id, n, bot, nonce, game.commit):
        raise ProtocolViolation(f"round {n}: the commitment does not open")
    _check(len(nonce) >= 32, "nonce shorter than 128 bits")
    if result["outcome"] != OUTCOMES[outcome(player_move, bot)]:
        raise ProtocolViolation(f"round {n}: wrong outcome")
    values = round_values(game.game_id, n)
    gained = points(values, player_move, bot)
    given = result["points"]
    if (round(given["player"] * 10), round(given["bot"] * 10)) != gained:
        raise ProtocolViolation(f"round {n}: wrong points")
    score_player, score_bot = game.score
    score = (score_player + gained[0], score_bot + gained[1])
    given = result["score"]
    if (round(given["player"] * 10), round(given["bot"] * 10)) != score:
        raise ProtocolViolation(f"round {n}: wrong score")
    expected_winner = winner(*score)
    if result["winner"] != expected_winner:
        raise ProtocolViolation(f"round {n}: winner {result['winner']} should be {expected_winner}")
    if result["over"] != (expected_winner is not None):
        raise ProtocolViolation(f"round {n}: wrong over flag")
    played = Round(n, values, player_move, bot, score[0], score[1])
    game.rounds.append(played)
    game.winner = expected_winner
    if expected_winner is not None:
        game.final = result
    check_open_round(game, result["next"])
    return played


class Client:
    """One WebSocket connection playing games."""

    def __init__(self, connection: Connection, rate: float = 0.0) -> None:
        self.connection = connection
        self.welcome: dict[str, Any] | None = None
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next_send = 0.0

    @classmethod
    async def open(cls, url: str, rate: float = 0.0, timeout: float = 10.0) -> Client:
        """Connect to `url`; with `rate` > 0 send at most that many messages per second."""
        connection = await Connection.open(url, timeout)
        client = cls(connection, rate)
        welcome = await client.receive()
        _check(welcome.get("type") == "welcome" and welcome.get("protocol") == 1, "no welcome")
        client.welcome = welcome
        return client

    async def receive(self) -> dict[str, Any]:
        try:
            message = _decode(await self.connection.recv())
        except UnexpectedFrame as exc:
            raise ProtocolViolation(str(exc)) from exc
        _check(isinstance(message, dict) and "type" in message, "a frame without a type")
        return message  # type: ignore[no-any-return]

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        if self._interval:
            now = time.monotonic()
            if self._next_send > now:
                await asyncio.sleep(self._next_send - now)
            self._next_send = max(now, self._next_send) + self._interval
        await self.connection.send(_encode(message).decode())
        return await self.receive()

    async def start(self, opponent: str, player: str | None = None, tag: str | None = None) -> ClientGame:
        message: dict[str, Any] = {"type": "start", "opponent": opponent}
        if player is not None:
            message["player"] = player
        if tag is not None:
            message["tag"] = tag
        answer = await self.request(message)
        if answer["type"] == "error":
            raise Refused(answer["code"], answer["message"])
        _check(answer["type"] == "game" and bool(answer.get("token")), "start did not answer a game with a token")
        _check(answer["history"] == [] and answer["score"] == {"player": 0.0, "bot": 0.0}, "a new game is not empty")
        game = ClientGame(answer["game_id"], answer["token"], opponent)
        check_open_round(game, answer["next"])
        return game

    async def move(self, game: ClientGame, move: int) -> tuple[Round | None, dict[str, Any], float]:
        """Play the open round; returns the checked round (None on an error answer), the answer and its latency."""
        assert game.open_round is not None
        sent = time.perf_counter()
        answer = await self.request(
            {"type": "move", "game_id": game.game_id, "round": game.open_round, "move": MOVES[move]}
        )
        latency = time.perf_counter() - sent
        if answer["type"] == "error":
            return None, answer, latency
        return check_result(game, answer, move), answer, latency

    async def close(self) -> None:
        await self.connection.close()

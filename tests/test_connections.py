"""Bounded connections: the guard's counting alone, then a real server with small limits over real sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from conftest import ServerProcess
from test_http import play_to_end
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from clients.client import Client
from inference.settings import Settings
from server import collector
from server.connections import ConnectionGuard, Limits, _release, client_address, limits_for

# -- the guard alone ---------------------------------------------------------------------------------------


def _guard(cap: int = 2, ceiling: int = 4, per_client: int = 0, proxies: tuple[str, ...] = ()) -> ConnectionGuard:
    settings = Settings(trusted_proxies=proxies)
    trusted = limits_for(settings, 1000, 0, 0).trusted_proxies
    return ConnectionGuard(Limits(10.0, cap, ceiling, per_client, trusted))


def test_beyond_the_cap_only_health_is_served_and_beyond_the_ceiling_nothing() -> None:
    guard = _guard(cap=2, ceiling=4)
    tickets = [guard.opened("10.0.0.1") for _ in range(4)]
    assert guard.opened("10.0.0.1") is None  # the ceiling: closed at once
    first, _, third, _ = tickets
    assert first is not None and third is not None
    assert guard.admit(first, b"/api/opponents", "10.0.0.1", None) is None
    assert guard.admit(third, b"/api/opponents", "10.0.0.1", None) == "capacity"
    assert guard.admit(third, b"/ws", "10.0.0.1", None) == "capacity"
    assert guard.admit(third, b"/healthz", "10.0.0.1", None) is None
    assert guard.admit(third, b"/readyz", "10.0.0.1", None) is None
    assert guard.header_timeout(third) < guard.header_timeout(first)
    guard.closed(first)
    assert guard.open == 3 and guard.opened("10.0.0.1") is not None


def test_a_released_connection_counts_towards_the_collectors_next_full_collection() -> None:
    guard = _guard()
    ticket = guard.opened("10.0.0.1")
    before = collector._closed
    _release(guard, ticket)
    _release(guard, None)  # a protocol whose ticket went to the WebSocket it became: nothing more to count
    assert guard.open == 0 and collector._closed == before + 1


def test_the_automatic_cap_leaves_a_reserve_below_the_open_file_limit() -> None:
    limits = limits_for(Settings(), fd_limit=20_000, files_open=100, backlog=2048)
    assert 10_000 < limits.max_connections < limits.ceiling < 20_000 - 2 * 2048
    assert limits_for(Settings(max_connections=50), 20_000, 100, 2048).max_connections == 50
    assert limits_for(Settings(max_connections=10**6), 20_000, 100, 2048).max_connections == limits.ceiling


def test_per_client_cap_counts_the_forwarded_address_only_from_a_trusted_proxy() -> None:
    proxies = limits_for(Settings(trusted_proxies=("10.1.0.0/16",)), 1000, 0, 0).trusted_proxies
    assert client_address("10.9.9.9", b"1.2.3.4", proxies) == "10.9.9.9"  # not a trusted proxy
    assert client_address("10.1.0.5", b"1.2.3.4", proxies) == "1.2.3.4"
    assert client_address("10.1.0.5", b"6.6.6.6, 1.2.3.4, 10.1.0.7", proxies) == "1.2.3.4"  # right-most untrusted
    assert client_address("10.1.0.5", None, proxies) == "10.1.0.5"

    guard = _guard(cap=100, ceiling=200, per_client=2, proxies=("10.1.0.0/16",))
    direct = [guard.opened("10.9.9.9") for _ in range(3)]
    forwarded = [b"1.1.1.1", b"1.1.1.2", b"1.1.1.3"]  # ignored: 10.9.9.9 is not a trusted proxy
    assert [guard.admit(t, b"/ws", "10.9.9.9", f) for t, f in zip(direct, forwarded, strict=True) if t] == [
        None,
        None,
        "client",
    ]
    proxied = [guard.opened("10.1.0.5") for _ in range(4)]
    behind = [b"a", b"a", b"a", b"b"]  # the clients behind the trusted proxy
    verdicts = [guard.admit(t, b"/ws", "10.1.0.5", f) for t, f in zip(proxied, behind, strict=True) if t]
    assert verdicts == [None, None, "client", None]
    assert guard.clients == {"10.9.9.9": 3, "a": 3, "b": 1}
    for t in proxied:
        assert t is not None
        guard.closed(t)
    assert guard.clients == {"10.9.9.9": 3}


# -- a real server --------------------------------------------------------------------------------------


def _get(server: ServerProcess, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(server.http_url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


@contextmanager
def _slow_sockets(server: ServerProcess, n: int) -> Iterator[list[socket.socket]]:
    """`n` connections that sent a request line and one header, and nothing more."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(n):
            s = stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=10))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sockets.append(s)
        yield sockets  # the server accepts connections in order: these are counted before any later one


def _until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    """Whether `condition` holds within `seconds` (for what the server does after a socket closed)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _ws_status(server: ServerProcess, headers: dict[str, str] | None = None) -> int:
    """101 when a WebSocket handshake is accepted (the welcome arrives), else the HTTP status of the refusal."""

    async def attempt() -> int:
        try:
            async with connect(server.ws_url, additional_headers=headers) as ws:
                assert json.loads(await ws.recv())["type"] == "welcome"
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    return asyncio.run(attempt())


def test_a_request_whose_headers_trickle_in_is_closed(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"RPSQUEST_HEADER_TIMEOUT": "1"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=0.3) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + 20
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                s.sendall(b"X-Slow: 1\r\n")  # a header line every 0.3 s: never complete
                closed = s.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                closed = True
        assert closed, "the server kept a request whose headers never completed"
    assert _get(server, "/healthz")[0] == 200


def test_beyond_the_cap_requests_get_503_and_health_still_answers(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_MAX_CONNECTIONS": "3", "RPSQUEST_HEADER_TIMEOUT": "60"})
    with _slow_sockets(server, 3):
        status, body = _get(server, "/api/opponents")
        assert status == 503 and json.loads(body)["error"] == "unavailable"
        assert _ws_status(server) == 503
        assert _get(server, "/healthz")[0] == 200
        assert _get(server, "/readyz")[0] == 200
    assert _until(lambda: _get(server, "/api/opponents")[0] == 200)  # once the server saw them close
    for _ in range(4):  # a closed WebSocket no longer counts: the fourth would be beyond the cap otherwise
        assert _until(lambda: _ws_status(server) == 101)


def test_per_client_cap_is_off_by_default(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        clients = [await Client.open(live_server.ws_url) for _ in range(40)]
        game = await clients[-1].start("logan", tag="sim")
        await play_to_end(clients[-1], game)
        assert game.winner is not None
        for client in clients:
            await client.close()

    asyncio.run(scenario())


def test_per_client_cap_ignores_forwarded_addresses_from_untrusted_peers(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_MAX_CONNECTIONS_PER_CLIENT": "2", "RPSQUEST_TRUSTED_PROXIES": "10.0.0.1"})
    with _slow_sockets(server, 2):
        assert _ws_status(server, {"X-Forwarded-For": "1.2.3.4"}) == 503  # 127.0.0.1 is not the trusted proxy
        assert _get(server, "/api/opponents")[0] == 503
        assert _get(server, "/healthz")[0] == 200
        assert _get(server, "/readyz")[0] == 200
    assert _until(lambda: _ws_status(server) == 101)

    async def play() -> None:  # within the cap a game plays as ever
        client = await Client.open(server.ws_url)
        game = await client.start("brian", tag="sim")
        await play_to_end(client, game)
        assert game.winner is not None
        await client.close()

    asyncio.run(play())


def test_per_client_cap_counts_the_forwarded_address_behind_a_trusted_proxy(
    server_factory: Callable[..., ServerProcess],
) -> None:
    server = server_factory({"RPSQUEST_MAX_CONNECTIONS_PER_CLIENT": "2", "RPSQUEST_TRUSTED_PROXIES": "127.0.0.1"})

    async def scenario() -> list[int]:
        held = [await connect(server.ws_url, additional_headers={"X-Forwarded-For": "1.2.3.4"}) for _ in range(2)]
        try:
            return [
                await asyncio.to_thread(_ws_status, server, {"X-Forwarded-For": "1.2.3.4"}),
                await asyncio.to_thread(_ws_status, server, {"X-Forwarded-For": "5.6.7.8"}),
                await asyncio.to_thread(_ws_status, server),  # the proxy's own address
            ]
        finally:
            for ws in held:
                await ws.close()

    assert asyncio.run(scenario()) == [503, 101, 101]

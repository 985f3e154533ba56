"""The lean client connection (clients/connection.py) against the real server and tiny loopback servers.

The tiny servers (raw TCP, a hand-written handshake and hand-written frames) make what the real server
never does: pings, binary and fragmented frames, invalid UTF-8, abrupt ends, a handshake never answered,
a reader that stops reading.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
from conftest import ServerProcess
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidMessage, InvalidStatus

from clients.connection import Connection, UnexpectedFrame

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run `scenario`; a hang is a failure, not a stuck test."""

    async def bounded() -> T:
        limit = asyncio.timeout(20)
        try:
            async with limit:
                return await scenario
        except TimeoutError:
            assert not limit.expired(), "the scenario hung"
            raise

    return asyncio.run(bounded())


@asynccontextmanager
async def tiny_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback TCP server running `handler` for each connection; yields its ws:// URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/"
    finally:
        server.close()


def open_against(handler: Handler, timeout: float) -> None:
    """Open a connection to a tiny server running `handler` (what it raises is the test's)."""

    async def scenario() -> None:
        async with tiny_server(handler) as url:
            await Connection.open(url, timeout)

    run(scenario())


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the opening handshake."""
    request = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = request.split("\r\n")
    key = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("sec-websocket-key:"))
    accepted = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    writer.write(
        f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accepted}\r\n\r\n".encode()
    )


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame (unmasked) with a payload shorter than 126 bytes."""
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, len(payload)]) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """A client frame (masked, unfragmented): its opcode and unmasked payload."""
    head = await reader.readexactly(2)
    assert head[0] & 0xF0 == 0x80 and head[1] & 0x80, "client frames are final, without extensions, and masked"
    length = head[1] & 0x7F
    if length >= 126:
        length = int.from_bytes(await reader.readexactly(2 if length == 126 else 8), "big")
    mask = await reader.readexactly(4)
    data = await reader.readexactly(length)
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# Against the real server


def test_a_real_session_then_a_clean_close(live_server: ServerProcess) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], ConnectionClosed, ConnectionClosed]:
        connection = await Connection.open(live_server.ws_url, 10)
        welcome = json.loads(await connection.recv())
        await connection.send(json.dumps({"type": "start", "opponent": "brian"}))
        game = json.loads(await connection.recv())
        await connection.close()
        with pytest.raises(ConnectionClosed) as received:
            await connection.recv()
        with pytest.raises(ConnectionClosed) as sent:
            await connection.send("{}")
        return welcome, game, received.value, sent.value

    welcome, game, received, sent = run(scenario())
    assert welcome["type"] == "welcome" and game["type"] == "game"
    assert isinstance(received, ConnectionClosedOK) and isinstance(sent, ConnectionClosedOK)
    assert received.sent is not None and received.sent.code == 1000
    assert received.rcvd is not None and received.rcvd.code == 1000  # the server answered the closing handshake


def test_answers_that_arrive_before_recv_wait_in_order(live_server: ServerProcess) -> None:
    async def scenario() -> list[str]:
        connection = await Connection.open(live_server.ws_url, 10)
        await connection.recv()  # welcome
        for message in ({"type": "start", "opponent": "brian"}, {"type": "nope"}, {"type": "start", "opponent": "x"}):
            await connection.send(json.dumps(message))
        await asyncio.sleep(0.3)  # the three answers are (most likely) all in before the first recv()
        answers = [json.loads(await connection.recv()) for _ in range(3)]
        await connection.close()
        return [a["type"] if a["type"] != "error" else a["code"] for a in answers]

    assert run(scenario()) == ["game", "bad_message", "unknown_opponent"]


def test_the_server_closing_wakes_recv_with_its_close_code(live_server: ServerProcess) -> None:
    async def scenario() -> ConnectionClosed:
        connection = await Connection.open(live_server.ws_url, 10)
        await connection.recv()
        await connection.send(json.dumps({"type": "start", "opponent": "brian", "player": "x" * 5000}))
        with pytest.raises(ConnectionClosed) as closed:
            await connection.recv()
        return closed.value

    closed = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1009  # the frame was too big for the server


def test_a_refused_handshake_raises_the_status(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        await Connection.open(live_server.http_url.replace("http", "ws") + "/nowhere", 10)

    with pytest.raises(InvalidStatus):
        run(scenario())


# Against tiny servers


def test_sent_frames_are_masked_text_frames_of_any_length() -> None:
    received: list[tuple[int, bytes]] = []
    texts = ["short", "é" * 100, "x" * 70_000]  # the three encodings of a payload's length

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        for _ in texts:
            received.append(await read_frame(reader))
        writer.write(frame(0x1, b"done"))
        await reader.read()

    async def scenario() -> str:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            for text in texts:
                await connection.send(text)
            return await connection.recv()

    assert run(scenario()) == "done"
    assert received == [(0x1, text.encode()) for text in texts]


def test_pings_are_answered_between_messages() -> None:
    pongs: list[tuple[int, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(frame(0x9, b"are you there") + frame(0x1, b"first"))
        pongs.append(await read_frame(reader))
        writer.write(frame(0x1, b"second"))
        await reader.read()

    async def scenario() -> list[str]:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            return [await connection.recv(), await connection.recv()]

    assert run(scenario()) == ["first", "second"]  # "second" is sent only once the pong came
    assert pongs == [(0xA, b"are you there")]


def test_a_binary_frame_raises_and_the_next_text_still_arrives() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(frame(0x2, b"\x00\x01") + frame(0x1, b"text"))
        await reader.read()

    async def scenario() -> str:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            with pytest.raises(UnexpectedFrame):
                await connection.recv()
            return await connection.recv()

    assert run(scenario()) == "text"


def test_a_fragmented_message_arrives_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(frame(0x1, b"frag", fin=False) + frame(0x9, b"") + frame(0x0, b"men", fin=False))
        writer.write(frame(0x0, b"ted", fin=True))
        await reader.read()

    async def scenario() -> str:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            return await connection.recv()

    assert run(scenario()) == "fragmented"


def test_invalid_utf8_fails_the_connection_with_1007() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        writer.write(frame(0x1, b"\xff\xfe"))
        await read_frame(reader)  # the client's close frame
        writer.close()

    async def scenario() -> ConnectionClosed:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
            return closed.value

    closed = run(scenario())
    assert closed.sent is not None and closed.sent.code == 1007


@pytest.mark.parametrize("end", ["eof", "reset"])
def test_an_abrupt_end_wakes_a_waiting_recv(end: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        await read_frame(reader)  # sent once the client's recv() is waiting
        if end == "eof":
            writer.close()
        else:
            writer.transport.abort()

    async def scenario() -> ConnectionClosed:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            waiting = asyncio.create_task(connection.recv())
            await asyncio.sleep(0)  # recv() now waits on its future
            await connection.send("go")
            with pytest.raises(ConnectionClosed) as closed:
                await waiting
            return closed.value

    closed = run(scenario())
    assert closed.rcvd is None  # no close frame: an abnormal closure


def test_a_handshake_never_answered_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    with pytest.raises(TimeoutError):
        open_against(handler, 0.3)


def test_a_connection_closed_during_the_handshake_is_refused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    with pytest.raises(InvalidMessage):
        open_against(handler, 10)


def test_a_refusal_is_raised_at_once_even_if_the_server_keeps_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(30)  # neither closes nor reads

    with pytest.raises(InvalidStatus):
        open_against(handler, 5)


def test_send_waits_while_the_server_does_not_read() -> None:
    reading = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accept(reader, writer)
        await reading.wait()
        while await reader.read(1 << 20):
            pass

    async def scenario() -> int:
        async with tiny_server(handler) as url:
            connection = await Connection.open(url, 10)
            message = "x" * (1 << 18)
            sent = 0
            while sent < 400:  # at most 100 MiB: the socket buffers fill long before
                sending = asyncio.create_task(connection.send(message))
                sent += 1
                await asyncio.sleep(0)
                if not sending.done():
                    break
                await sending
            reading.set()
            await sending  # the server reads again: the paused send completes
            await connection.close()
            return sent

    assert run(scenario()) < 400  # some send had to wait

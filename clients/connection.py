"""A lean WebSocket client connection: websockets' sans-I/O `ClientProtocol` on a plain `asyncio.Protocol`.

Made for request/reply clients that keep thousands of connections busy (the load tester): no
tasks, queues or locks per connection, one future per pending receive. Text frames only; a
binary frame raises `UnexpectedFrame` from `recv()`. Frames that arrive before `recv()` is
called wait in order. Pings are answered by the sans-I/O protocol. Once the connection is
closed (close frame, EOF, reset), `recv()` and `send()` raise websockets' `ConnectionClosed`.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections import deque
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.frames import Frame, Opcode
from websockets.protocol import CLOSED, OPEN
from websockets.speedups import apply_mask
from websockets.typing import BytesLike
from websockets.uri import parse_uri

MAX_SIZE = 2**20  # the largest message accepted, in bytes
CLOSE_TIMEOUT = 10.0  # seconds the server has to close TCP after the closing handshake


class _Masks:
    """Masking keys from the system's strong source (RFC 6455, 5.3), 4 KiB a system call."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self._pool, self._at = b"", 0

    def next(self) -> bytes:
        if self._at == len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        at = self._at
        self._at = at + 4
        return self._pool[at : at + 4]


_masks = _Masks()
os.register_at_fork(after_in_child=_masks.forget)  # a forked child must never reuse its parent's masks


class UnexpectedFrame(Exception):
    """The server sent a binary frame: the protocol has text frames only."""


class Connection(asyncio.Protocol):
    """One client connection; build it with `await Connection.open(url, timeout)`."""

    def __init__(self, protocol: ClientProtocol) -> None:
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._messages: deque[str | bytes] = deque()
        self._fragments: list[BytesLike] = []
        self._binary = False  # the kind of the fragmented message in `_fragments`
        self._waiter: asyncio.Future[None] | None = None  # the pending recv()
        self._opened: asyncio.Future[None] = self._loop.create_future()  # the handshake's end
        self._lost: asyncio.Future[None] = self._loop.create_future()  # the transport's end
        self._writable: asyncio.Future[None] | None = None  # set while the transport is paused
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost_exc: Exception | None = None

    @classmethod
    async def open(cls, url: str, timeout: float) -> Connection:
        """Connect and complete the opening handshake within `timeout` seconds (else TimeoutError).

        A refused handshake raises what websockets raises (e.g. InvalidStatus)."""
        uri = parse_uri(url)
        protocol = ClientProtocol(uri, max_size=MAX_SIZE)
        loop = asyncio.get_running_loop()
        connection: Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: cls(protocol), uri.host, uri.port, ssl=True if uri.secure else None
                )
                await connection._opened
        except BaseException:
            if connection is not None:
                connection._abort()
            raise
        return connection

    # The application side

    async def send(self, text: str) -> None:
        """Send one text frame.

        The frame is serialized here rather than by `ClientProtocol.send_text`, which draws each frame's mask
        with a system call; a data frame changes nothing in the protocol's state."""
        if self._protocol.state is not OPEN:
            raise await self._closed()
        payload = text.encode()
        length = len(payload)
        if length < 126:
            head = bytes((0x81, 0x80 | length))  # FIN, text; masked, length
        elif length < 65536:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        mask = _masks.next()
        assert self._transport is not None
        self._transport.write(head + mask + apply_mask(payload, mask))
        if self._writable is not None:
            await asyncio.shield(self._writable)

    async def recv(self) -> str:
        """The next text message, waiting for it if none has arrived yet."""
        while not self._messages:
            if self._lost.done():
                raise self._close_exc()
            assert self._waiter is None, "one recv() at a time"
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._messages.popleft()
        if isinstance(message, bytes):
            raise UnexpectedFrame(f"a binary frame of {len(message)} bytes")
        return message

    async def close(self) -> None:
        """Close with code 1000 and wait (up to CLOSE_TIMEOUT) for the server to close TCP."""
        if self._protocol.state is OPEN:
            self._protocol.send_close(1000)
            self._write()
            self._expect_close()
        await self._closed()

    async def _closed(self) -> ConnectionClosed:
        """Once the transport is lost: why the connection is closed."""
        await asyncio.shield(self._lost)
        return self._close_exc()

    def _close_exc(self) -> ConnectionClosed:
        exc = self._protocol.close_exc
        if exc.__cause__ is None and self._lost_exc is not None:
            exc.__cause__ = self._lost_exc
        return exc

    # The network side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # any loop's transport (uvloop's are not subclasses)
        self._protocol.send_request(self._protocol.connect())
        self._write()

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        self._write()  # a pong, the echo of a close frame
        if not self._opened.done() and (protocol.state is OPEN or protocol.handshake_exc is not None):
            self._handshake_done()
        events = protocol.events_received()
        if events:
            for event in events:
                if isinstance(event, Frame):
                    self._frame(event)
            waiter = self._waiter
            if self._messages and waiter is not None and not waiter.done():
                waiter.set_result(None)
        if protocol.close_expected():
            self._expect_close()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost_exc = exc
        self._protocol.receive_eof()  # idempotent: the protocol's state is now CLOSED
        assert self._protocol.state is CLOSED
        if self._close_timer is not None:
            self._close_timer.cancel()
        for future in (self._opened, self._lost, self._waiter, self._writable):
            if future is not None and not future.done():
                if future is self._opened:
                    future.set_exception(self._handshake_exc() or self._close_exc())
                else:
                    future.set_result(None)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None:
            self._writable.set_result(None)
            self._writable = None

    def _frame(self, frame: Frame) -> None:
        """Keep a data frame's message; control frames are the protocol's business."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            self._binary = opcode is Opcode.BINARY
            if not frame.fin:
                self._fragments = [frame.data]
                return
            data = frame.data
        elif opcode is Opcode.CONT:
            self._fragments.append(frame.data)
            if not frame.fin:
                return
            data, self._fragments = b"".join(self._fragments), []
        else:
            return
        if self._binary:
            self._messages.append(bytes(data))
            return
        try:
            self._messages.append(str(data, "utf-8"))
        except UnicodeDecodeError as exc:
            self._protocol.fail(1007, f"{exc.reason} at position {exc.start}")
            self._write()
            self._expect_close()

    def _handshake_done(self) -> None:
        """The handshake succeeded or failed (then the protocol has half-closed already)."""
        exc = self._handshake_exc()
        if exc is None:
            self._opened.set_result(None)
        else:
            self._opened.set_exception(exc)

    def _handshake_exc(self) -> Exception | None:
        exc = self._protocol.handshake_exc
        if exc is None and self._protocol.state is not OPEN:
            return InvalidHandshake("the connection closed during the opening handshake")
        return exc

    def _write(self) -> None:
        """Write what the protocol has to send; an empty chunk means half-close."""
        transport = self._transport
        assert transport is not None
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    def _expect_close(self) -> None:
        """The server should close TCP now: abort the transport if it has not within CLOSE_TIMEOUT."""
        if self._close_timer is None and not self._lost.done():
            self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._abort)

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

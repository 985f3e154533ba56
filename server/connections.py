"""Bounded connections: a header timeout, a cap on open connections and optional per-client caps.

Every worker process counts its own connections against its own open-file limit, with three thresholds:

- the header timeout: a request's headers must be complete within RPSQUEST_HEADER_TIMEOUT seconds of the
  connection (or of the request's first byte on a kept-alive connection), or the connection is closed;
- the cap (RPSQUEST_MAX_CONNECTIONS, by default 90 % of the ceiling): a connection accepted while the cap is
  reached has OVER_CAP_HEADER_TIMEOUT for its headers; /healthz and /readyz are answered, anything else,
  WebSocket handshakes included, gets 503 and the connection is closed;
- the ceiling: the open-file limit less the process's own files and room for the sockets that accept bursts
  take before they are counted here; a connection beyond it is closed unanswered, so accept() does not run
  out of file descriptors.

`ConnectionGuard` holds the counting and the decisions (no I/O); `GuardedHttp` and `GuardedWebSocket` are
the thin uvicorn protocol classes that consult it (`rpsquest serve` passes them to uvicorn).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from inference.settings import Settings
from server import collector, metrics

log = logging.getLogger("rpsquest.connections")
HEALTH_PATHS = frozenset({b"/healthz", b"/readyz"})
OVER_CAP_HEADER_TIMEOUT = 1.0  # seconds: an over-cap connection can only be a health check or a refusal
OWN_FILES_SLACK = 64  # files the process may open after start (database, model files being loaded)
QUEUED_MESSAGES = 4  # received messages (each at most MAX_FRAME bytes) a connection holds before reads pause
ACCEPT_BURSTS = 2  # asyncio accepts up to `backlog` sockets per turn; two turns can pass before we count them
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """What one worker process allows; see the module docstring."""

    header_timeout: float
    max_connections: int
    ceiling: int
    per_client: int = 0  # 0: no per-client cap
    trusted_proxies: tuple[IPNetwork, ...] = ()


def limits_for(settings: Settings, fd_limit: int, files_open: int, backlog: int) -> Limits:
    """The limits of a process with `fd_limit` open files allowed, `files_open` in use, listening with `backlog`."""
    headroom = files_open + OWN_FILES_SLACK + min(ACCEPT_BURSTS * backlog, fd_limit // 4)
    ceiling = max(fd_limit - headroom, 1)
    automatic = max(ceiling - ceiling // 10, 1)
    return Limits(
        header_timeout=settings.header_timeout,
        max_connections=min(settings.max_connections, ceiling) if settings.max_connections else automatic,
        ceiling=ceiling,
        per_client=settings.max_connections_per_client,
        trusted_proxies=tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies),
    )


def is_trusted(address: str, proxies: Sequence[IPNetwork]) -> bool:
    """True when `address` is in one of the trusted proxies' networks."""
    if not proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str, forwarded_for: bytes | None, proxies: Sequence[IPNetwork]) -> str:
    """The address to count a request against: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies the client is the right-most X-Forwarded-For entry that is not itself a trusted
    proxy (each proxy appends the address it saw; entries further left are whatever the client sent).
    """
    if forwarded_for is None or not is_trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


class Ticket:
    """One open connection as the guard counts it."""

    __slots__ = ("client", "over_cap", "over_client")

    def __init__(self, over_cap: bool) -> None:
        self.over_cap = over_cap  # accepted while the cap was reached
        self.client: str | None = None  # the address it counts against (per-client caps only)
        self.over_client = False  # beyond its client's cap when it was counted there


class ConnectionGuard:
    """Counts one process's open connections and decides which to serve (sans I/O)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self.clients: dict[str, int] = {}

    def opened(self, peer: str) -> Ticket | None:
        """A connection was accepted from `peer`: its ticket, or None to close it at once (ceiling reached)."""
        if self.open >= self.limits.ceiling:
            return None
        ticket = Ticket(over_cap=self.open >= self.limits.max_connections)
        self.open += 1
        if self.limits.per_client and not is_trusted(peer, self.limits.trusted_proxies):
            self._count(ticket, peer)
        return ticket

    def header_timeout(self, ticket: Ticket) -> float:
        """Seconds the connection has to complete a request's headers."""
        if ticket.over_cap:
            return min(OVER_CAP_HEADER_TIMEOUT, self.limits.header_timeout)
        return self.limits.header_timeout

    def admit(self, ticket: Ticket, path: bytes, peer: str, forwarded_for: bytes | None) -> str | None:
        """A request's headers are complete: None to serve it, else why it is refused ("capacity" or "client")."""
        if self.limits.per_client:
            client = client_address(peer, forwarded_for, self.limits.trusted_proxies)
            if client != ticket.client:
                self._uncount(ticket)
                self._count(ticket, client)
        if path in HEALTH_PATHS:
            return None
        if ticket.over_cap:
            return "capacity"
        if ticket.over_client:
            return "client"
        return None

    def closed(self, ticket: Ticket) -> None:
        self.open -= 1
        self._uncount(ticket)

    def _count(self, ticket: Ticket, client: str) -> None:
        count = self.clients.get(client, 0) + 1
        self.clients[client] = count
        ticket.client = client
        ticket.over_client = count > self.limits.per_client

    def _uncount(self, ticket: Ticket) -> None:
        if ticket.client is None:
            return
        left = self.clients[ticket.client] - 1
        if left:
            self.clients[ticket.client] = left
        else:
            del self.clients[ticket.client]
        ticket.client = None


# -- the process's guard and its uvicorn protocols ----------------------------------------------------------


def raise_open_file_limit() -> None:
    """Raise this process's soft open-file limit to its hard limit (child processes inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)


def _files_open() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return OWN_FILES_SLACK


@functools.cache
def process_guard(backlog: int) -> ConnectionGuard:
    """The guard of this worker process, from the environment's settings (built on its first connection)."""
    settings = Settings.from_env()
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limits = limits_for(settings, fd_limit, _files_open(), backlog)
    if settings.max_connections > limits.max_connections:
        log.warning(
            "RPSQUEST_MAX_CONNECTIONS=%d is more than the open-file limit (%d) allows: the cap is %d",
            settings.max_connections, fd_limit, limits.max_connections,
        )  # fmt: skip
    return ConnectionGuard(limits)


_REFUSALS = {
    "capacity": b'{"error":"unavailable","message":"the server is at its connection limit; try again shortly"}',
    "client": b'{"error":"unavailable","message":"too many connections from your address; try again shortly"}',
}


def _refusal_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"5"),
        (b"connection", b"close"),
    ]


def _raw_refusal(body: bytes) -> bytes:
    lines = [b"HTTP/1.1 503 Service Unavailable"] + [b"%s: %s" % h for h in _refusal_headers(body)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_RAW_REFUSALS = {reason: _raw_refusal(body) for reason, body in _REFUSALS.items()}


def _refusal_app(body: bytes) -> ASGIApp:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": _refusal_headers(body)})
        await send({"type": "http.response.body", "body": body})

    return refuse


_REFUSAL_APPS = {reason: _refusal_app(body) for reason, body in _REFUSALS.items()}


def _release(guard: ConnectionGuard, ticket: Ticket | None) -> None:
    if ticket is not None:
        guard.closed(ticket)
        metrics.connections_open.set(guard.open)
        collector.connection_closed()


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guard's header timeout, caps and refusals."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = process_guard(config.backlog)
        self.ticket: Ticket | None = None
        self.header_timer: asyncio.TimerHandle | None = None
        self.refusal: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.ticket = self.guard.opened(self.client[0] if self.client else "")
        if self.ticket is None:
            metrics.connections_refused.labels("ceiling").inc()
            transport.abort()
            return
        metrics.connections_open.set(self.guard.open)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        _release(self.guard, self.ticket)
        self.ticket = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.header_timer is None and self.ticket is not None:
            self._arm()  # a kept-alive connection's next request

    def on_headers_complete(self) -> None:
        self._disarm()
        self.refusal = None
        if self.ticket is not None:
            forwarded = [value for name, value in self.headers if name == b"x-forwarded-for"]
            peer = self.client[0] if self.client else ""
            path = self.url.split(b"?", 1)[0]
            self.refusal = self.guard.admit(self.ticket, path, peer, b",".join(forwarded) if forwarded else None)
        if self.refusal is not None:
            metrics.connections_refused.labels(self.refusal).inc()
        self.app = _REFUSAL_APPS[self.refusal] if self.refusal is not None else self.config.loaded_app
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        if self.refusal is not None:
            self.transport.write(_RAW_REFUSALS[self.refusal])
            self.transport.close()
            return
        ticket, self.ticket = self.ticket, None
        super().handle_websocket_upgrade()
        protocol = self.transport.get_protocol()
        assert isinstance(protocol, GuardedWebSocket), "serve with ws=server.connections:GuardedWebSocket"
        protocol.ticket = ticket

    def _arm(self) -> None:
        assert self.ticket is not None
        self.header_timer = self.loop.call_later(self.guard.header_timeout(self.ticket), self._headers_late)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _headers_late(self) -> None:
        self.header_timer = None
        metrics.connections_refused.labels("header_timeout").inc()
        self.transport.abort()  # a reset: nothing to flush, and no TIME_WAIT left behind for a dropped request


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, releasing the connection's ticket when it closes, pinging only quiet peers,
    and pausing reads only when QUEUED_MESSAGES messages wait for the app: uvicorn pauses after every message and
    resumes when the app takes it, two epoll_ctl calls a round for a client that waits for each answer anyway."""

    ticket: Ticket | None = None
    heard = 0.0  # the loop's time when the peer's last bytes came

    def data_received(self, data: bytes) -> None:
        self.heard = self.loop.time()
        super().data_received(data)

    def send_keepalive_ping(self) -> None:
        """Ping only a peer that has been quiet for a whole interval: one that has just sent something is there.
        A player moving every few seconds is then never pinged, which saves a ping and its pong a connection
        every interval (at 5,000 human-paced sessions, 500 frames a second)."""
        assert self.ping_interval is not None
        quiet = self.loop.time() - self.heard
        if quiet < self.ping_interval:
            self.ping_timer = self.loop.call_later(self.ping_interval - quiet, self.send_keepalive_ping)
            return
        super().send_keepalive_ping()

    def send_receive_event_to_app(self) -> None:
        if self.read_paused or self.queue.qsize() + 1 >= QUEUED_MESSAGES:
            super().send_receive_event_to_app()  # queues the message and pauses reading
            return
        self.read_paused = True  # uvicorn pauses reading unless it believes reads are paused already
        super().send_receive_event_to_app()
        self.read_paused = False

    def connection_lost(self, exc: Exception | None) -> None:
        _release(process_guard(self.config.backlog), self.ticket)
        self.ticket = None
        super().connection_lost(exc)

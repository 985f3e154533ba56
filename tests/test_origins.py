"""Which pages may open a WebSocket: the Origin rules, unit-tested and against a real server's handshake."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

import pytest
from conftest import ServerProcess
from websockets.asyncio.client import connect
from websockets.typing import Origin

from inference.settings import Settings, SettingsError
from server.origins import OriginPolicy

OWN = "rps.example.com"


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, OWN, True),  # not a browser: bots and the load tester send no Origin
        (f"https://{OWN}", OWN, True),  # the page's own origin
        (f"http://{OWN}", OWN, True),  # behind a TLS proxy the server may not know the page's scheme
        ("HTTPS://RPS.Example.COM", OWN, True),
        (f"https://{OWN}:8443", f"{OWN}:8443", True),
        (f"https://{OWN}:8443", OWN, False),  # another port is another origin
        (f"https://{OWN}", None, False),
        ("http://localhost:5173", OWN, True),
        ("http://localhost", OWN, True),
        ("https://127.0.0.1:8000", OWN, True),
        ("http://[::1]:3000", OWN, True),
        ("https://evil.example", OWN, False),
        (f"https://{OWN}.evil.example", OWN, False),
        ("http://localhost.evil.example", OWN, False),
        ("null", OWN, False),  # sandboxed frames and file:// pages
        ("", OWN, False),
        ("ws://localhost:8000", OWN, False),
        ("http://localhost:99999", OWN, False),
        ("http://user@localhost", OWN, False),
        (f"https://{OWN}/path", OWN, False),
    ],
)
def test_default_policy(origin: str | None, host: str | None, allowed: bool) -> None:
    assert OriginPolicy(()).allows(origin, host) is allowed


def test_a_listed_origin_replaces_localhost_but_never_the_pages_own() -> None:
    policy = OriginPolicy(("https://play.example.org", "http://localhost:5173"))
    assert policy.allows("https://play.example.org", OWN)
    assert policy.allows("https://PLAY.example.org", OWN)
    assert policy.allows("http://localhost:5173", OWN)
    assert not policy.allows("http://localhost:3000", OWN)
    assert not policy.allows("https://play.example.org:444", OWN)
    assert policy.allows(f"https://{OWN}", OWN)
    assert policy.allows(None, OWN)


def test_star_allows_every_page() -> None:
    assert OriginPolicy(("*",)).allows("https://evil.example", OWN)
    assert OriginPolicy(("*",)).allows("null", None)


def test_the_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPSQUEST_ALLOWED_ORIGINS", " https://play.example.org , http://[::1]:8000,*")
    assert Settings.from_env().allowed_origins == ("https://play.example.org", "http://[::1]:8000", "*")
    for bad in ("play.example.org", "https://play.example.org/", "ftp://x", "https://x:port"):
        monkeypatch.setenv("RPSQUEST_ALLOWED_ORIGINS", bad)
        with pytest.raises(SettingsError, match="RPSQUEST_ALLOWED_ORIGINS"):
            Settings.from_env()


# -- against a real server ------------------------------------------------------------------------


def handshake(server: ServerProcess, origin: str | None, host: str | None = None) -> int:
    """The HTTP status a WebSocket handshake on /ws gets (101: accepted)."""
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{server.port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, "the server closed without answering"
            head += chunk
    return int(head.split(b" ", 2)[1])


async def _welcome(url: str, origin: str) -> str:
    async with connect(url, origin=Origin(origin)) as ws:
        return str(json.loads(await ws.recv())["type"])


def test_default_origins_at_the_handshake(live_server: ServerProcess) -> None:
    port = live_server.port
    assert handshake(live_server, None) == 101
    assert handshake(live_server, f"http://127.0.0.1:{port}") == 101
    assert handshake(live_server, "http://localhost:5173") == 101
    assert handshake(live_server, "http://[::1]:3000") == 101
    assert handshake(live_server, f"https://{OWN}", host=OWN) == 101
    assert handshake(live_server, "https://evil.example") == 403
    assert handshake(live_server, "https://evil.example", host=OWN) == 403
    assert handshake(live_server, "null") == 403
    assert asyncio.run(_welcome(live_server.ws_url, "http://localhost:5173")) == "welcome"
    assert "origin 'https://evil.example' is not allowed" in live_server.log.read_text()


def test_allowed_origins_setting_at_the_handshake(server_factory: Callable[..., ServerProcess]) -> None:
    listed = server_factory({"RPSQUEST_ALLOWED_ORIGINS": "https://play.example.org"})
    assert handshake(listed, "https://play.example.org") == 101
    assert handshake(listed, f"http://127.0.0.1:{listed.port}") == 101  # its own pages, always
    assert handshake(listed, "http://localhost:5173") == 403
    assert handshake(listed, None) == 101
    anyone = server_factory({"RPSQUEST_ALLOWED_ORIGINS": "*"})
    assert handshake(anyone, "https://evil.example") == 101

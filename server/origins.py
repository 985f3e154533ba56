"""Which web pages may open a WebSocket here: the handshake's Origin header against an allowed list.

A browser names the page that opens a WebSocket in `Origin`; other clients (bots, the load
tester) send none and are let in, since they could send any Origin they like. A page is
allowed when it is the server's own (its host and port are the request's Host header; http or
https alike, since a TLS proxy in front may hide the scheme), or when RPSQUEST_ALLOWED_ORIGINS
lists it; without that setting, pages on localhost, 127.0.0.1 and [::1] on any port are allowed.
`*` allows every page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class OriginPolicy:
    """The allowed origins of RPSQUEST_ALLOWED_ORIGINS (empty: localhost's), and the check."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.any = "*" in allowed
        self.listed = frozenset(o.lower() for o in allowed if o != "*")

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True when a handshake with this Origin and Host header may open a WebSocket."""
        if origin is None or self.any:
            return True
        origin = origin.lower()
        try:
            parts = urlsplit(origin)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            return False  # "null", user info and the like: no browser sends them for a page of ours
        if f"{parts.scheme}://{parts.netloc}" != origin:
            return False  # a path or a query: not an origin
        if host is not None and parts.netloc == host.lower():
            return True
        if self.listed:
            return origin in self.listed
        return parts.hostname in LOCAL_HOSTS

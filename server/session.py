"""The per-connection limits of protocol.md, without I/O: rate limit, bad-message run, ownership."""

from __future__ import annotations

from collections import deque

MAX_BAD_IN_ROW = 20
CLOSE_POLICY = 1008


class Session:
    """One WebSocket connection's state: the games it may move and how it has behaved."""

    def __init__(self, rate_limit: int) -> None:
        self.rate_limit = rate_limit
        self.owned: set[str] = set()
        self.bad_in_row = 0
        self._recent: deque[float] = deque()

    def admit(self, now: float) -> bool:
        """Count a message arriving at `now` (seconds); False when it exceeds the rate limit."""
        if self.rate_limit <= 0:
            return True
        recent = self._recent
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= self.rate_limit:
            return False
        recent.append(now)
        return True

    def bad(self) -> bool:
        """Count a bad message; True when the connection must now be closed (1008)."""
        self.bad_in_row += 1
        return self.bad_in_row >= MAX_BAD_IN_ROW

    def good(self) -> None:
        self.bad_in_row = 0

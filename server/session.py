"""The per-connection limits of protocol.md, without I/O: rate limit, bad-message run, ownership, games in play."""

from __future__ import annotations

from collections import deque
from collections.abc import Container

MAX_BAD_IN_ROW = 20
CLOSE_POLICY = 1008


class Session:
    """One WebSocket connection's state: the games it may move and how it has behaved."""

    def __init__(self, rate_limit: int, max_games: int) -> None:
        self.rate_limit = rate_limit
        self.max_games = max_games
        self.owned: set[str] = set()  # games this connection may move
        self.playing: set[str] = set()  # of those, the ones that were open when last counted
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

    def take(self, game_id: str, playing: bool = True) -> None:
        """The connection started or resumed `game_id` (`playing` while the game is open)."""
        self.owned.add(game_id)
        if playing:
            self.playing.add(game_id)

    def has_room(self, held: Container[str]) -> bool:
        """Whether one more game fits under `max_games`. A game counts while the process `held`s it in
        memory: it stops counting once it ends or leaves memory idle."""
        self.playing = {g for g in self.playing if g in held}
        return len(self.playing) < self.max_games

    def bad(self) -> bool:
        """Count a bad message; True when the connection must now be closed (1008)."""
        self.bad_in_row += 1
        return self.bad_in_row >= MAX_BAD_IN_ROW

    def good(self) -> None:
        self.bad_in_row = 0

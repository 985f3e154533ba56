"""Commit-reveal: the bot's move is bound before the player moves (game.md, Fair play)."""

from __future__ import annotations

import hashlib
import hmac

from engine.rules import MOVES

NONCE_BYTES = 16


def commitment(game_id: str, round_number: int, bot_move: int, nonce: str) -> str:
    """hex(SHA-256("G:n:BOTMOVE:NONCE"))."""
    text = f"{game_id}:{round_number}:{MOVES[bot_move]}:{nonce}"
    return hashlib.sha256(text.encode()).hexdigest()


def verify(game_id: str, round_number: int, bot_move: int, nonce: str, commit: str) -> bool:
    """True when `nonce` and `bot_move` open `commit`."""
    return hmac.compare_digest(commitment(game_id, round_number, bot_move, nonce), commit)

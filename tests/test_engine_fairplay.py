"""engine.fairplay against game.md, Fair play: commit = hex(SHA-256("G:n:BOTMOVE:NONCE"))."""

from __future__ import annotations

import hashlib
import random
import secrets

from engine.fairplay import NONCE_BYTES, commitment, verify
from engine.rules import MOVES


def _reference(game_id: str, n: int, bot_move_name: str, nonce: str) -> str:
    return hashlib.sha256(f"{game_id}:{n}:{bot_move_name}:{nonce}".encode()).hexdigest()


def test_commitment_hand_example() -> None:
    nonce = "00112233445566778899aabbccddeeff"
    expected = hashlib.sha256(b"demo:1:rock:00112233445566778899aabbccddeeff").hexdigest()
    assert commitment("demo", 1, 0, nonce) == expected
    assert commitment("demo", 1, 2, nonce) == hashlib.sha256(f"demo:1:scissors:{nonce}".encode()).hexdigest()


def test_commitment_format_matches_independent_sha256() -> None:
    rng = random.Random(1)
    for _ in range(300):
        game_id = f"g-{rng.getrandbits(40):010x}"
        n = rng.randint(1, 20)
        move = rng.randrange(3)
        nonce = f"{rng.getrandbits(128):032x}"
        commit = commitment(game_id, n, move, nonce)
        assert commit == _reference(game_id, n, MOVES[move], nonce)
        assert len(commit) == 64
        assert all(c in "0123456789abcdef" for c in commit)


def test_nonce_is_at_least_128_bits() -> None:
    assert NONCE_BYTES * 8 >= 128


def test_verify_accepts_the_opening() -> None:
    for move in range(3):
        nonce = secrets.token_hex(NONCE_BYTES)
        commit = _reference("game-1", 4, MOVES[move], nonce)
        assert verify("game-1", 4, move, nonce, commit)


def test_verify_rejects_wrong_move_nonce_round_or_game() -> None:
    rng = random.Random(2)
    for _ in range(100):
        game_id = f"g-{rng.getrandbits(40):010x}"
        n = rng.randint(1, 20)
        move = rng.randrange(3)
        nonce = f"{rng.getrandbits(128):032x}"
        commit = commitment(game_id, n, move, nonce)
        assert verify(game_id, n, move, nonce, commit)
        for other in range(3):
            if other != move:
                assert not verify(game_id, n, other, nonce, commit)
        other_nonce = f"{(int(nonce, 16) ^ 1):032x}"
        assert not verify(game_id, n, move, other_nonce, commit)
        assert not verify(game_id, n + 1, move, nonce, commit)
        assert not verify(game_id, n - 1, move, nonce, commit)
        assert not verify(game_id + "x", n, move, nonce, commit)
        assert not verify(game_id, n, move, nonce, commit[:-1] + ("0" if commit[-1] != "0" else "1"))

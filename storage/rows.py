"""Records as table rows and back, the same for every backend: what a round inserts, what a game reads."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import numpy as np

from engine.features import features
from engine.rules import MOVES, OUTCOMES, outcome, points, round_values
from storage.records import Decision, GameRecord, ModelPrediction, RoundRecord, prediction_counts

W = TypeVar("W")  # a job of a storage backend's writer that is not a round

# The columns a game is read with (its player's name joined in), then its rounds', in order.
GAME_COLUMNS = (
    "g.id, g.opponent, g.family, g.alias, g.version, g.opening, g.tag, p.name, g.token_hash, g.created, g.updated,"
    " g.pending, g.abandoned, g.key_hash FROM games g LEFT JOIN players p ON p.id = g.player_id"
)
ROUND_COLUMNS = (
    "round, rock_value, paper_value, scissors_value, player_move, bot_move, nonce, source, p_rock, p_paper,"
    " p_scissors, ev_rock, ev_paper, ev_scissors, features, models, score_player, score_bot, created, pending"
    " FROM rounds"
)
ROUND_WIDTH = 27  # values in a `rounds` row

_json_models = msgspec.json.Decoder(dict[str, ModelPrediction])
_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()
_packed_models = msgspec.msgpack.Decoder(dict[str, tuple[str, bytes]])
_F32, _F64 = struct.Struct("<3f"), struct.Struct("<3d")
_decision_decoder = msgspec.msgpack.Decoder(Decision)


class _Pending(msgspec.Struct, array_like=True, gc=False):
    """A decision as stored: a msgpack array, its probabilities and predictions packed as a round's, and no
    features: they are the engine's function of the game's rounds, computed again when the game is read."""

    round: int
    bot_move: int
    nonce: str
    source: str
    probs: bytes
    ev: bytes
    models: bytes


_pending_decoder = msgspec.msgpack.Decoder(_Pending)


def encode_pending(pending: Decision | None) -> bytes | None:
    """A game's open decision as stored (schema version 9 on; a msgpack map of the whole Decision before)."""
    if pending is None:
        return None
    d = pending
    return _msgpack.encode(
        _Pending(d.round, d.bot_move, d.nonce, d.source, pack_probs(d.probs), pack_probs(d.ev), pack_models(d.models))
    )


def decode_pending(stored: bytes | None, game_id: str, played: Sequence[RoundRecord]) -> Decision | None:
    """The stored open decision of game `game_id`, the round after `played`, in either form: packed, its features
    computed from `played` as the server computed them, or a msgpack map (stored before schema version 9)."""
    if stored is None:
        return None
    if stored[0] & 0xF0 == 0x80:  # a msgpack fixmap: the Decision's fields by name, features included
        return _decision_decoder.decode(stored)
    p = _pending_decoder.decode(stored)
    vector = features([r.as_round() for r in played], round_values(game_id, p.round)).tobytes()
    return Decision(p.round, p.bot_move, p.nonce, p.source, unpack_probs(p.probs), unpack_probs(p.ev), vector,
                    unpack_models(p.models))  # fmt: skip


def pack_probs(probs: tuple[float, float, float]) -> bytes:
    """Three probabilities as float32 (12 bytes) when that keeps them exactly (a model's output does), else
    as float64 (24 bytes)."""
    packed = _F32.pack(*probs)
    return packed if _F32.unpack(packed) == probs else _F64.pack(*probs)


def unpack_probs(packed: bytes) -> tuple[float, float, float]:
    a, b, c = (_F32 if len(packed) == _F32.size else _F64).unpack(packed)
    return (a, b, c)


def pack_features(raw: bytes) -> bytes:
    """A feature vector (float32 bytes, mostly zeros) packed exactly: its length n (a byte), a bitmap of its
    non-zero values (bit for bit: -0.0 is kept), those values, padded so that the length is never a multiple
    of 4 (a raw vector's always is). The raw bytes when packing would not make them shorter."""
    words = np.frombuffer(raw, dtype=np.uint32)
    n, kept = len(words), words != 0
    head = bytes([n]) + np.packbits(kept, bitorder="little").tobytes()
    packed = head + (b"\0" if len(head) % 4 == 0 else b"") + words[kept].tobytes()
    return packed if n < 256 and len(packed) < len(raw) else raw


def unpack_features(stored: bytes) -> bytes:
    """A feature vector's float32 bytes from either stored form (raw before schema version 7, or packed)."""
    if len(stored) % 4 == 0:
        return stored
    n = stored[0]
    bitmap = (n + 7) // 8
    start = 1 + bitmap + (1 if (1 + bitmap) % 4 == 0 else 0)
    kept = np.unpackbits(np.frombuffer(stored, dtype=np.uint8, count=bitmap, offset=1), count=n, bitorder="little")
    words = np.zeros(n, dtype=np.uint32)
    words[kept.astype(bool)] = np.frombuffer(stored, dtype=np.uint32, offset=start)
    return words.tobytes()


def pack_models(models: dict[str, ModelPrediction]) -> bytes:
    """A round's predictions as stored: msgpack {alias: [version, pack_probs(probs)]}, exact, a third of the
    JSON stored before schema version 7 for a model's float32 probabilities."""
    return _msgpack.encode({alias: (m.version, pack_probs(m.probs)) for alias, m in models.items()})


def unpack_models(stored: str | bytes) -> dict[str, ModelPrediction]:
    """A round's predictions in either stored form: packed, or JSON (rows stored before schema version 7,
    as text on SQLite, as bytes on PostgreSQL whose migration 7 only changed the column's type)."""
    if isinstance(stored, str) or stored[:1] == b"{":
        return _json_models.decode(stored)
    return {a: ModelPrediction(v, unpack_probs(p)) for a, (v, p) in _packed_models.decode(stored).items()}


def models_json(stored: str | bytes) -> str:
    """A round's predictions in either stored form as JSON text (for SQL that reads them with json_each)."""
    return stored if isinstance(stored, str) else _json.encode(unpack_models(stored)).decode()


def round_row(game: GameRecord, played: RoundRecord) -> tuple[Any, ...]:
    """The `rounds` row of a played round, in the table's column order, with the game's next decision
    (`game.pending`, None once over): the last round's row holds a game's progress, so that storing a round
    only appends (the games row is written when the game starts and when it ends)."""
    d = played.decision
    gained_player, gained_bot = points(played.values, played.player_move, d.bot_move)
    return (
        game.id,
        d.round,
        *played.values,
        MOVES[played.player_move],
        MOVES[d.bot_move],
        OUTCOMES[outcome(played.player_move, d.bot_move)],
        gained_player,
        gained_bot,
        played.score_player,
        played.score_bot,
        game.family,
        game.alias,
        game.version,
        d.source,
        *d.probs,
        *d.ev,
        pack_models(d.models),
        pack_features(d.features),
        d.nonce,
        played.created,
        encode_pending(game.pending),
    )


def game_record(row: Sequence[Any], rounds: Sequence[Sequence[Any]]) -> GameRecord:
    """A game from its GAME_COLUMNS row and its rounds' ROUND_COLUMNS rows, in round order. When it moved last
    is its last round's; so is its open decision, unless that round holds none: stored before schema version 9
    (or by a server before it), whose games row then holds it, as it does before the first round. A finished
    game's decision is None either way."""
    last = rounds[-1] if rounds else None
    played = [
        RoundRecord(
            decision=Decision(
                round=r[0],
                bot_move=MOVES.index(r[5]),
                nonce=r[6],
                source=r[7],
                probs=(r[8], r[9], r[10]),
                ev=(r[11], r[12], r[13]),
                features=unpack_features(bytes(r[14])),
                models=unpack_models(r[15]),
            ),
            values=(r[1], r[2], r[3]),
            player_move=MOVES.index(r[4]),
            score_player=r[16],
            score_bot=r[17],
            created=r[18],
        )
        for r in rounds
    ]
    return GameRecord(
        id=row[0],
        opponent=row[1],
        family=row[2],
        alias=row[3],
        version=row[4],
        opening=row[5],
        tag=row[6],
        player=row[7],
        token_hash=row[8],
        created=row[9],
        updated=row[10] if last is None else last[18],
        rounds=played,
        pending=decode_pending(row[11] if last is None or last[19] is None else last[19], row[0], played),
        abandoned=bool(row[12]),
        key_hash=row[13],
    )


# When a game's last round was played (NULL before its first), in SQL both backends speak on `games`: an open
# game's progress is its last round's row, a finished game's row has it.
LAST_PLAYED = (
    "CASE WHEN games.state = 'over' THEN games.updated"
    " ELSE (SELECT MAX(r.created) FROM rounds r WHERE r.game_id = games.id) END"
)

# What a played round writes besides its row, in SQL both backends speak (PostgreSQL's placeholders differ).
INSERT_ROUND = f"INSERT INTO rounds VALUES ({', '.join('?' * ROUND_WIDTH)})"
UPDATE_OVER = (
    "UPDATE games SET state = 'over', winner = ?, score_player = ?, score_bot = ?, rounds = ?, pending = NULL,"
    " updated = ?, finished = ? WHERE id = ?"
)
COUNT_PREDICTIONS = (
    "INSERT INTO prediction_stats VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (family, alias, version, kind, tag)"
    " DO UPDATE SET predictions = prediction_stats.predictions + excluded.predictions,"
    " correct = prediction_stats.correct + excluded.correct"
)
COUNT_GAMES = (
    "INSERT INTO arm_stats VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (family, alias, version, tag, winner)"
    " DO UPDATE SET games = arm_stats.games + excluded.games"
)


@dataclass
class Totals:
    """What a transaction's rounds add to the live totals: predictions (key -> [count, correct]) and finished
    games (key -> count). They are written last, in key order: processes updating the same rows then take
    their locks in one order, so they wait for each other rather than deadlock."""

    predictions: dict[tuple[str, str, str, str, str], list[int]] = field(default_factory=dict)
    games: dict[tuple[str, str, str, str, str], int] = field(default_factory=dict)

    @classmethod
    def of(cls, writes: Iterable[RoundWrite]) -> Totals:
        totals = cls()
        for write in writes:
            for family, alias, version, kind, tag, correct in write.counted:
                total = totals.predictions.setdefault((family, alias, version, kind, tag), [0, 0])
                total[0] += 1
                total[1] += int(correct)
            if write.arm is not None:
                totals.games[write.arm] = totals.games.get(write.arm, 0) + 1
        return totals

    def statements(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """(SQL, rows for executemany) that add these totals, in key order."""
        out: list[tuple[str, list[tuple[Any, ...]]]] = []
        if self.predictions:
            out.append((COUNT_PREDICTIONS, [(*k, n, c) for k, (n, c) in sorted(self.predictions.items())]))
        if self.games:
            out.append((COUNT_GAMES, [(*k, n) for k, n in sorted(self.games.items())]))
        return out


def settle(jobs: Sequence[tuple[object, asyncio.Future[Any]]], outcomes: Sequence[tuple[bool, Any]]) -> None:
    """Resolve each queued job's future with its outcome, (True, result) or (False, exception), as a backend's
    writer does after a transaction (a job whose caller went away is skipped)."""
    for (_, future), (ok, value) in zip(jobs, outcomes, strict=True):
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def segments(works: Sequence[W | RoundWrite]) -> list[tuple[list[RoundWrite], W | None]]:
    """A transaction's jobs, in order, as runs of consecutive rounds (stored with one statement per table), each
    followed by the one other job that came after it (None after the last run)."""
    out: list[tuple[list[RoundWrite], W | None]] = []
    rounds: list[RoundWrite] = []
    for work in works:
        if isinstance(work, RoundWrite):
            rounds.append(work)
        else:
            out.append((rounds, work))
            rounds = []
    out.append((rounds, None))
    return out


class RoundWrite(msgspec.Struct, frozen=True, gc=False):
    """A played round as its rows: the `rounds` row and, when it ended the game, the game's UPDATE_OVER values,
    with what it adds to the live totals: its predictions (prediction_counts) and, when it ended the game, its
    arm's key (family, alias, version, tag, winner)."""

    row: tuple[Any, ...]
    over: tuple[Any, ...] | None
    counted: tuple[tuple[str, str, str, str, str, bool], ...]
    arm: tuple[str, str, str, str, str] | None

    @classmethod
    def of(cls, game: GameRecord, played: RoundRecord, winner: str | None) -> RoundWrite:
        """`game.pending` is the game's next decision (None once over)."""
        over: tuple[Any, ...] | None = None
        arm: tuple[str, str, str, str, str] | None = None
        if winner is not None:
            n = played.decision.round
            over = (winner, played.score_player, played.score_bot, n, played.created, played.created, game.id)
            arm = (game.family, game.alias, game.version, game.tag, winner)
        return cls(round_row(game, played), over, tuple(prediction_counts(game, played)), arm)


def round_statements(writes: Sequence[RoundWrite]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(SQL, rows for executemany) that store `writes`: one statement of each kind for the whole group."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = [(INSERT_ROUND, [w.row for w in writes])]
    over = [w.over for w in writes if w.over is not None]
    if over:
        out.append((UPDATE_OVER, over))
    return out

"""Records as table rows and back, the same for every backend: what a round inserts, what a game reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from engine.rules import MOVES, OUTCOMES, outcome, points
from storage.records import Decision, GameRecord, ModelPrediction, RoundRecord

# The columns a game is read with (its player's name joined in), then its rounds', in order.
GAME_COLUMNS = (
    "g.id, g.opponent, g.family, g.alias, g.version, g.opening, g.tag, p.name, g.token_hash, g.created, g.updated,"
    " g.pending, g.abandoned, g.key_hash FROM games g LEFT JOIN players p ON p.id = g.player_id"
)
ROUND_COLUMNS = (
    "round, rock_value, paper_value, scissors_value, player_move, bot_move, nonce, source, p_rock, p_paper,"
    " p_scissors, ev_rock, ev_paper, ev_scissors, features, models, score_player, score_bot, created FROM rounds"
)
ROUND_WIDTH = 26  # values in a `rounds` row

models_encoder = msgspec.json.Encoder()
models_decoder = msgspec.json.Decoder(dict[str, ModelPrediction])
_decision_encoder = msgspec.msgpack.Encoder()
_decision_decoder = msgspec.msgpack.Decoder(Decision)


def encode_pending(pending: Decision | None) -> bytes | None:
    return None if pending is None else _decision_encoder.encode(pending)


def round_row(game: GameRecord, played: RoundRecord) -> tuple[Any, ...]:
    """The `rounds` row of a played round, in the table's column order."""
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
        models_encoder.encode(d.models).decode(),
        d.features,
        d.nonce,
        played.created,
    )


def game_record(row: Sequence[Any], rounds: Sequence[Sequence[Any]]) -> GameRecord:
    """A game from its GAME_COLUMNS row and its rounds' ROUND_COLUMNS rows, in round order."""
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
        updated=row[10],
        rounds=[
            RoundRecord(
                decision=Decision(
                    round=r[0],
                    bot_move=MOVES.index(r[5]),
                    nonce=r[6],
                    source=r[7],
                    probs=(r[8], r[9], r[10]),
                    ev=(r[11], r[12], r[13]),
                    features=bytes(r[14]),
                    models=models_decoder.decode(r[15]),
                ),
                values=(r[1], r[2], r[3]),
                player_move=MOVES.index(r[4]),
                score_player=r[16],
                score_bot=r[17],
                created=r[18],
            )
            for r in rounds
        ],
        pending=None if row[11] is None else _decision_decoder.decode(row[11]),
        abandoned=bool(row[12]),
        key_hash=row[13],
    )
